"""Grader protocol and registry.

A node grader scores one decision at a node as it happens; an outcome grader scores the end
of the episode. Each grade says passed/score, why, and how far it is trusted (`trusted` for
deterministic checks, `noisy` for LLM judges). Grader options are a pydantic model, checked
when the scenario loads, so a typo in a grader option is a load error with a line number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from trialrun.sandbox.world import Verdict
from trialrun.trajectory import Decision, Grade, ToolResult, Trust


class GraderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class StepContext:
    """What a node grader sees: the decision, the world's verdict before it took effect,
    the tool result, and the world state after it."""

    node: str
    decision: Decision
    verdict: Verdict | None
    result: ToolResult | None
    task: dict[str, Any]
    state: dict[str, Any] | None = None  # filled lazily: reading state can be costly

    def expr_context(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "tool": self.decision.tool,
            "args": self.decision.args,
            "text": self.decision.text or "",
            "kind": self.decision.kind,
            "result": self.result.output if self.result else None,
            "ok": bool(self.result and self.result.ok),
            "task": self.task,
            "state": self.state or {},
        }


@dataclass
class OutcomeContext:
    task: dict[str, Any]
    outcome: dict[str, Any]  # World.outcome(): state, messages, success, score...
    end_reason: str
    steps: int
    extra: dict[str, Any] = field(default_factory=dict)

    def expr_context(self) -> dict[str, Any]:
        return {**self.outcome, "task": self.task, "end_reason": self.end_reason,
                "steps": self.steps}


class Grader:
    type: ClassVar[str] = ""
    trust: ClassVar[Trust] = Trust.trusted
    Options: ClassVar[type[GraderOptions]] = GraderOptions
    # Which contexts the grader supports: "node", "outcome" or both.
    scopes: ClassVar[frozenset[str]] = frozenset({"node", "outcome"})
    needs_state: ClassVar[bool] = False

    def __init__(self, options: GraderOptions, name: str | None = None) -> None:
        self.options = options
        self.name = name or self.type

    def grade_step(self, ctx: StepContext) -> Grade | None:
        raise NotImplementedError

    def grade_outcome(self, ctx: OutcomeContext) -> Grade:
        raise NotImplementedError

    def grade(self, passed: bool, reason: str = "", score: float | None = None,
              node: str | None = None) -> Grade:
        return Grade(grader=self.name, passed=passed, score=float(passed) if score is None
                     else score, reason=reason, trust=self.trust, node=node)


_GRADERS: dict[str, type[Grader]] = {}


def register_grader(cls: type[Grader]) -> type[Grader]:
    _GRADERS[cls.type] = cls
    return cls


def grader_class(name: str) -> type[Grader]:
    from trialrun.graders import builtin  # noqa: F401 - registers the built-in graders

    if name in _GRADERS:
        return _GRADERS[name]
    if ":" in name:
        from trialrun.sandbox.world import load_class

        cls = load_class(name, "grader")
        if isinstance(cls, type) and issubclass(cls, Grader):
            return cls
        raise LookupError(f"grader {name!r} is not a subclass of trialrun.graders.base.Grader")
    raise LookupError(f"unknown grader {name!r}; known: {', '.join(sorted(_GRADERS))}")


def build_grader(type_: str, options: dict[str, Any], name: str | None = None) -> Grader:
    cls = grader_class(type_)
    return cls(cls.Options.model_validate(options), name=name)
