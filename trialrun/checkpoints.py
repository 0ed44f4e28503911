"""Checkpoint policies: before a decision takes effect, must a human approve it?

A policy is a plugin (`@register("checkpoint", name)`) with its options as `Options`; one
instance serves one episode, so a policy may count what it has seen. The loop asks it once
per decision that would change the world (asking a human and finishing never are reviewed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from trialrun.registry import register
from trialrun.trajectory import Decision


@dataclass
class ReviewRequest:
    """What a policy sees: the decision, its place in the episode, and why it may matter."""

    decision: Decision
    step: int  # index of the step in the episode
    irreversible: bool
    reviews_so_far: int


class PolicyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckpointPolicy:
    """Base class: `should_review` answers for one decision; `reason` says why, for the
    reviewer and the record ("irreversible", "confidence 0.42 < 0.8", "every 3rd")."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[PolicyOptions]] = PolicyOptions
    # The option a short label carries ("every_n:3"); lists are joined with "+".
    label_option: ClassVar[str | None] = None

    def __init__(self, options: PolicyOptions | dict[str, Any] | None = None) -> None:
        if not isinstance(options, self.Options):
            options = self.Options.model_validate(options or {})
        self.options: Any = options
        self.decisions_seen = 0

    def should_review(self, req: ReviewRequest) -> str | None:
        """None: let it through; otherwise the reason a human must look."""
        raise NotImplementedError

    @classmethod
    def label(cls, options: PolicyOptions) -> str:
        """The policy as one short string, stored with every episode ("every_n:3")."""
        if cls.label_option is None:
            return cls.name
        value = getattr(options, cls.label_option)
        return f"{cls.name}:{'+'.join(value) if isinstance(value, list) else value}"


def parse_label(label: str) -> tuple[str, dict[str, Any]]:
    """`every_n:3` -> ("every_n", {"n": "3"}): the inverse of `CheckpointPolicy.label`, for
    the command line. The options are validated by the policy's model by the caller."""
    from trialrun.registry import resolve

    name, sep, arg = label.partition(":")
    cls = resolve("checkpoint", name)
    if not sep:
        return name, {}
    if cls.label_option is None:
        raise ValueError(f"policy {name!r} takes no argument")
    field = cls.Options.model_fields[cls.label_option]
    value: Any = [n for n in arg.split("+") if n] if field.annotation == list[str] else arg
    return name, {cls.label_option: value}


@register("checkpoint", "never")
class Never(CheckpointPolicy):
    def should_review(self, req: ReviewRequest) -> str | None:
        return None


@register("checkpoint", "always")
class Always(CheckpointPolicy):
    def should_review(self, req: ReviewRequest) -> str | None:
        return "every decision is reviewed"


class EveryNOptions(PolicyOptions):
    n: int = Field(5, ge=1, description="review every n-th decision")


@register("checkpoint", "every_n")
class EveryN(CheckpointPolicy):
    Options = EveryNOptions
    label_option = "n"

    def should_review(self, req: ReviewRequest) -> str | None:
        self.decisions_seen += 1
        n = self.options.n
        return f"every {n} decisions" if self.decisions_seen % n == 0 else None


@register("checkpoint", "before_irreversible")
class BeforeIrreversible(CheckpointPolicy):
    def should_review(self, req: ReviewRequest) -> str | None:
        return "irreversible action" if req.irreversible else None


class ThresholdOptions(PolicyOptions):
    threshold: float = Field(0.8, ge=0, le=1, description="review below this confidence")


@register("checkpoint", "below_confidence")
class BelowConfidence(CheckpointPolicy):
    Options = ThresholdOptions
    label_option = "threshold"

    def should_review(self, req: ReviewRequest) -> str | None:
        c = req.decision.confidence
        if c is None:
            return "no confidence reported"
        return f"confidence {c:.2f} < {self.options.threshold}" \
            if c < self.options.threshold else None


class BudgetOptions(ThresholdOptions):
    budget: int = Field(5, ge=0, description="at most this many reviews per episode")


@register("checkpoint", "budget")
class Budget(CheckpointPolicy):
    """Spend a fixed review budget on the riskiest decisions: irreversible first, then low
    confidence."""

    Options = BudgetOptions
    label_option = "budget"

    def should_review(self, req: ReviewRequest) -> str | None:
        if req.reviews_so_far >= self.options.budget:
            return None
        if req.irreversible:
            return "irreversible action (within the review budget)"
        c = req.decision.confidence
        if c is not None and c < self.options.threshold:
            return f"confidence {c:.2f} < {self.options.threshold} (within the review budget)"
        return None


class NodesOptions(PolicyOptions):
    nodes: list[str] = Field(min_length=1, description="review every decision at these nodes")


@register("checkpoint", "nodes")
class Nodes(CheckpointPolicy):
    Options = NodesOptions
    label_option = "nodes"

    def __init__(self, options: NodesOptions | dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.nodes = frozenset(self.options.nodes)

    def should_review(self, req: ReviewRequest) -> str | None:
        return f"node {req.decision.node} is checked" if req.decision.node in self.nodes \
            else None
