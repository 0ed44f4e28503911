"""Human checkpoint policies and the humans who answer them.

A policy decides, before a decision takes effect, whether a human must approve it. A human
answers approve/deny: simulated (recall, false-deny rate, seconds and cost per review,
fatigue), scripted (answers in order, for tests), an oracle, or a recording (exact replay).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from trialrun.scenarios.schema import CheckpointSpec, HumanSpec
from trialrun.trajectory import Decision


@dataclass
class ReviewRequest:
    decision: Decision
    step: int  # index of the step in the episode
    irreversible: bool
    reviews_so_far: int


class CheckpointPolicy:
    """Which decisions a human reviews. Per-node overrides via `policy: nodes`."""

    def __init__(self, spec: CheckpointSpec) -> None:
        self.spec = spec
        self.nodes = set(spec.nodes)
        self.decisions_seen = 0

    @property
    def name(self) -> str:
        return self.spec.policy

    def should_review(self, req: ReviewRequest) -> bool:
        d = req.decision
        if d.kind in ("ask_human", "finish"):
            return False  # asking is the agent's own escalation; finishing has no effect
        self.decisions_seen += 1
        s = self.spec
        match s.policy:
            case "never":
                return False
            case "always":
                return True
            case "every_n":
                return self.decisions_seen % s.n == 0
            case "before_irreversible":
                return req.irreversible
            case "below_confidence":
                return d.confidence is None or d.confidence < s.threshold
            case "budget":
                # Spend a fixed review budget on the riskiest decisions: irreversible first,
                # then low confidence.
                if req.reviews_so_far >= s.budget:
                    return False
                return req.irreversible or (d.confidence is not None and
                                            d.confidence < s.threshold)
            case "nodes":
                return d.node in self.nodes
        return False


@dataclass
class HumanAnswer:
    approved: bool
    seconds: float
    cost: float
    reviewer: str


class Human:
    """Base class: answers approve/deny at checkpoints and replies to ask_human."""

    kind = "human"

    def __init__(self, spec: HumanSpec) -> None:
        self.spec = spec

    def review(self, decision: Decision, correct: bool | None) -> HumanAnswer:
        raise NotImplementedError

    def _answer(self, approved: bool) -> HumanAnswer:
        return HumanAnswer(approved, self.spec.seconds_per_review, self.spec.cost_per_review,
                           self.kind)


class SimulatedHuman(Human):
    """Catches a wrong decision with probability `recall` (falling with fatigue over
    consecutive reviews) and wrongly denies a right one with `false_deny_rate`."""

    kind = "simulated"

    def __init__(self, spec: HumanSpec, rng: random.Random) -> None:
        super().__init__(spec)
        self.rng = rng
        self.consecutive = 0

    def review(self, decision: Decision, correct: bool | None) -> HumanAnswer:
        recall = self.spec.recall * (1.0 - self.spec.fatigue) ** self.consecutive
        self.consecutive += 1
        u = self.rng.random()  # always drawn, so the RNG stream does not depend on truth
        if correct is False:
            return self._answer(approved=u >= recall)
        return self._answer(approved=u >= self.spec.false_deny_rate)

    def rest(self) -> None:
        self.consecutive = 0


class ScriptedHuman(Human):
    kind = "scripted"

    def __init__(self, spec: HumanSpec) -> None:
        super().__init__(spec)
        self.answers = list(spec.answers)

    def review(self, decision: Decision, correct: bool | None) -> HumanAnswer:
        answer = self.answers.pop(0) if self.answers else "approve"
        return self._answer(answer == "approve")


class OracleHuman(Human):
    """Denies exactly the wrong decisions: the upper bound a checkpoint can buy."""

    kind = "oracle"

    def review(self, decision: Decision, correct: bool | None) -> HumanAnswer:
        return self._answer(correct is not False)


class RecordedHuman(Human):
    """Plays back recorded answers in order (exact replay), then hands over to `then` (a
    fork goes on with a live human past the recording)."""

    kind = "recorded"

    def __init__(self, spec: HumanSpec, answers: list[HumanAnswer],
                 then: Human | None = None) -> None:
        super().__init__(spec)
        self.answers = list(answers)
        self.then = then

    def review(self, decision: Decision, correct: bool | None) -> HumanAnswer:
        if self.answers:
            return self.answers.pop(0)
        if self.then is None:
            raise RuntimeError("replay diverged: more reviews than the recording holds")
        return self.then.review(decision, correct)


def make_human(spec: HumanSpec, rng: random.Random) -> Human:
    match spec.type:
        case "simulated":
            return SimulatedHuman(spec, rng)
        case "scripted":
            return ScriptedHuman(spec)
        case "oracle":
            return OracleHuman(spec)
    raise ValueError(f"unknown human type {spec.type!r}")
