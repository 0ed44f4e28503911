"""The humans who answer approve/deny at checkpoints.

A human is a plugin (`@register("human", name)`) with its options as `Options`. `review` is
async, so a real reviewer who answers minutes later is awaited without blocking the loop.
Built in: simulated (recall, false-deny rate, seconds and cost per review, fatigue), scripted
(answers in order, for tests), oracle (denies exactly the wrong decisions), and recorded
(plays back an episode's answers, for exact replay and forks).
"""

from __future__ import annotations

import random
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from trialrun.errors import InfraError
from trialrun.registry import register
from trialrun.scope import episode_scope
from trialrun.trajectory import Decision
from trialrun.waits import reset_unless_declared

DenyChoice = Literal["retry", "takeover", "abort"]


class HumanAnswer(BaseModel):
    approved: bool
    seconds: float
    cost: float
    reviewer: str
    # A real reviewer's deny may choose what happens instead (within `deny_choices`) and, for
    # a takeover, give the corrected action. Left out of dumps: recorded answers
    # (`start_from`, replays) carry the four fields above.
    action: DenyChoice | None = Field(None, exclude=True)
    takeover: Decision | None = Field(None, exclude=True)


def deny_choices(on_deny: DenyChoice) -> list[DenyChoice]:
    """What a reviewer may choose on a deny, given the scenario's `on_deny`: stopping the
    episode is always allowed; a retry where the scenario lets the agent retry or lets a
    person take over; taking over only where the scenario says `takeover`. The scenario's own
    choice comes first (the default)."""
    allowed: list[DenyChoice] = {"abort": ["abort"], "retry": ["retry", "abort"],
                                 "takeover": ["takeover", "retry", "abort"]}[on_deny]
    return allowed


class HumanOptions(BaseModel):
    """What every human has: the time and money a review costs."""

    model_config = ConfigDict(extra="forbid")

    seconds_per_review: float = Field(30.0, ge=0, description="simulated seconds per review "
                                      "or ask_human answer")
    cost_per_review: float = Field(0.0, ge=0, description="money per review")


class Human:
    """Base class: answers approve/deny for one decision. `correct` is the world's verdict on
    the decision (None: unknown); simulated humans use it, real ones never see it."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[HumanOptions]] = HumanOptions
    # Whether `review` may wait on something outside this process (as `Agent.waits`).
    waits: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        reset_unless_declared(cls, ("review",))

    def __init__(self, options: HumanOptions | dict[str, Any] | None = None,
                 rng: random.Random | None = None) -> None:
        if not isinstance(options, self.Options):
            options = self.Options.model_validate(options or {})
        self.options: Any = options
        self.rng = rng or random.Random(0)

    async def review(self, decision: Decision, correct: bool | None) -> HumanAnswer:
        raise NotImplementedError

    def _answer(self, approved: bool) -> HumanAnswer:
        return HumanAnswer(approved=approved, seconds=self.options.seconds_per_review,
                           cost=self.options.cost_per_review, reviewer=self.name)


class SimulatedOptions(HumanOptions):
    recall: float = Field(0.9, ge=0, le=1, description="P(deny | decision wrong)")
    false_deny_rate: float = Field(0.05, ge=0, le=1, description="P(deny | decision right)")
    fatigue: float = Field(
        0.0, ge=0, le=1, description="recall lost per consecutive review (multiplicative)")

    @property
    def specificity(self) -> float:
        return 1.0 - self.false_deny_rate


@register("human", "simulated")
class SimulatedHuman(Human):
    """Catches a wrong decision with probability `recall` (falling with fatigue over
    consecutive reviews) and wrongly denies a right one with `false_deny_rate`."""

    waits = False  # answers at once, in this process

    Options = SimulatedOptions

    def __init__(self, options: SimulatedOptions | dict[str, Any] | None = None,
                 rng: random.Random | None = None) -> None:
        super().__init__(options, rng)
        self.consecutive = 0

    async def review(self, decision: Decision, correct: bool | None) -> HumanAnswer:
        return self.review_now(correct)

    def review_now(self, correct: bool | None) -> HumanAnswer:
        o = self.options
        recall = o.recall * (1.0 - o.fatigue) ** self.consecutive
        self.consecutive += 1
        u = self.rng.random()  # always drawn, so the RNG stream does not depend on truth
        if correct is False:
            return self._answer(approved=u >= recall)
        return self._answer(approved=u >= o.false_deny_rate)


class AwaitingReview(Exception):  # noqa: N818 - a state, not a failure
    """A real reviewer has not answered yet: the episode pauses durably (its record so far
    is stored) and goes on with `trialrun run --resume` once the item is answered."""

    def __init__(self, item_id: str) -> None:
        super().__init__(f"waiting for review {item_id}")
        self.item_id = item_id


class ReviewerOptions(HumanOptions):
    deadline_s: float | None = Field(None, gt=0, description="wall seconds an item may wait; "
                                     "then `fallback` answers it (recorded as expired)")
    fallback: Literal["approve", "deny"] = Field("deny", description="the answer past the "
                                                 "deadline")


@register("human", "reviewer")
class ReviewerHuman(Human):
    """A real person, through the store's review queue (`trialrun review`, or the web app):
    the first time a decision needs review it is queued and the episode pauses; once
    answered, the resumed episode finds the answer here. Never sees the world's verdict."""

    Options = ReviewerOptions
    options: ReviewerOptions

    async def review(self, decision: Decision, correct: bool | None) -> HumanAnswer:
        scope = episode_scope.get()
        if scope.store is None or scope.run_id is None or scope.key is None \
                or scope.step is None:
            raise InfraError("a reviewer human answers through a run's store: run the "
                             "scenario with `trialrun run`")
        item = scope.store.add_review(scope.run_id, scope.key, scope.step,
                                      decision.model_dump_json(exclude_none=True),
                                      scope.reason, self.options.deadline_s)
        if item.overdue:
            item = scope.store.answer_review(item.id, self.options.fallback == "approve",
                                             "fallback", "past its deadline", "expired")
        if item.status == "pending":
            raise AwaitingReview(item.id)
        return HumanAnswer(approved=bool(item.approved), seconds=self.options.seconds_per_review,
                           cost=self.options.cost_per_review, reviewer=item.reviewer or "reviewer",
                           **_deny_choice(item))


def _deny_choice(item: Any) -> dict[str, Any]:
    """A denied item's chosen action and corrected decision, for the episode loop (which
    checks the action against the scenario's `on_deny`)."""
    if item.approved or not getattr(item, "action", ""):
        return {}
    takeover = Decision.model_validate_json(item.takeover) \
        if item.action == "takeover" and item.takeover else None
    return {"action": item.action, "takeover": takeover}


class ScriptedOptions(HumanOptions):
    answers: list[Literal["approve", "deny"]] = Field(
        default_factory=list, description="answers in order; approve once they run out")


@register("human", "scripted")
class ScriptedHuman(Human):
    Options = ScriptedOptions
    waits = False

    def __init__(self, options: ScriptedOptions | dict[str, Any] | None = None,
                 rng: random.Random | None = None) -> None:
        super().__init__(options, rng)
        self.answers = list(self.options.answers)

    async def review(self, decision: Decision, correct: bool | None) -> HumanAnswer:
        answer = self.answers.pop(0) if self.answers else "approve"
        return self._answer(answer == "approve")


@register("human", "oracle")
class OracleHuman(Human):
    """Denies exactly the wrong decisions: the upper bound a checkpoint can buy."""

    waits = False

    async def review(self, decision: Decision, correct: bool | None) -> HumanAnswer:
        return self._answer(correct is not False)


class RecordedHuman(Human):
    """Plays back recorded answers in order (exact replay), then hands over to `then` (a
    fork goes on with a live human past the recording)."""

    name = "recorded"

    def __init__(self, answers: list[HumanAnswer], then: Human | None = None) -> None:
        super().__init__()
        self.answers = list(answers)
        self.then = then
        self.waits = getattr(then, "waits", True) if then is not None else False

    async def review(self, decision: Decision, correct: bool | None) -> HumanAnswer:
        if self.answers:
            return self.answers.pop(0)
        if self.then is None:
            raise RuntimeError("replay diverged: more reviews than the recording holds")
        return await self.then.review(decision, correct)
