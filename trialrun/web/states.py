"""World states step by step, rebuilt for the web app: the store keeps a state digest per step,
not the state, so the states are rebuilt by replaying the recorded decisions and answers into
a fresh world (in-process worlds are deterministic from their options, task and seed).

The replay is the episode loop itself (`run_episode` with the recorded agent and human, no
graders), so every effect (a tool, a message, a takeover, the clock a review costs) happens
as it did. Each replayed state's digest is checked against the recorded one: a difference
(the world is not deterministic, or its code changed since the run) is said on the page.
A decision waiting for review is approved in the replay, which shows what it would change.
Sandboxed worlds (containers, files) are not replayed for a page.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections import OrderedDict
from typing import Any

from pydantic import BaseModel, Field

from trialrun.humans import Human
from trialrun.state_diff import StateDiff, diff_states
from trialrun.store import ReviewRow, Store
from trialrun.trajectory import Decision, EpisodeResult

__all__ = ["EpisodeStates", "StateCache"]

MAX_STEPS = 2000  # longer episodes are not replayed for a page
SANDBOXED = "state not available for sandboxed worlds (their state lives in a container)"


class EpisodeStates(BaseModel):
    available: bool
    reason: str = ""  # why not available
    diffs: dict[int, StateDiff] = Field(default_factory=dict)  # step index -> its changes
    before: dict[int, str] = Field(default_factory=dict)  # step index -> state before, JSON
    diverged_at: int | None = None  # the first step whose replayed digest differs


class _Approver(Human):
    """Approves the decision still waiting for review: the replay shows what it would do."""

    name = "preview"
    waits = False

    async def review(self, decision: Decision, correct: bool | None) -> Any:
        from trialrun.humans import HumanAnswer

        return HumanAnswer(approved=True, seconds=0.0, cost=0.0, reviewer="preview")


def _answers(result: EpisodeResult, items: list[ReviewRow]) -> list[Any]:
    """The recorded answers, with a real reviewer's chosen action and corrected decision
    (kept on the review item) where they took over."""
    from trialrun.humans import HumanAnswer

    by_step = {it.step: it for it in items}
    out = []
    for st in result.steps:
        cp = st.checkpoint
        if cp is None or not cp.reviewed:
            continue
        item = by_step.get(st.index)
        takeover = getattr(cp, "takeover", None)  # recorded with the step (newer records)
        if takeover is None and cp.action == "takeover" and item is not None and item.takeover:
            takeover = Decision.model_validate_json(item.takeover)
        out.append(HumanAnswer(approved=bool(cp.approved), seconds=cp.seconds, cost=cp.cost,
                               reviewer=cp.reviewer,
                               action=None if cp.approved or cp.action == "proceed"
                               else cp.action, takeover=takeover))
    return out


async def rebuild(plan: Any, result: EpisodeResult, items: list[ReviewRow],
                  keep_before: set[int]) -> EpisodeStates:
    """Replay `result` into a fresh world of `plan` (a ScenarioPlan): each step's state diff,
    and the state before the steps in `keep_before` (as pretty JSON)."""
    from trialrun.episode import run_episode
    from trialrun.humans import RecordedHuman
    from trialrun.plan import ScenarioPlan
    from trialrun.replay.exact import RecordedAgent

    world_cls = plan.world_cls
    if world_cls.uses_sandbox or world_cls.blocking:
        return EpisodeStates(available=False, reason=SANDBOXED)
    if len(result.steps) > MAX_STEPS:
        return EpisodeStates(available=False, reason=f"state not replayed for an episode of "
                             f"more than {MAX_STEPS} steps")
    out = EpisodeStates(available=True)
    seen: list[tuple[Any, str]] = []  # (state, digest): after reset, then after each step
    n = len(result.steps)

    def watch(world: Any) -> Any:
        reset, digest = world.reset, world.digest

        def on_reset() -> Any:
            obs = reset()
            seen.append((copy.deepcopy(world.state()), ""))
            return obs

        def on_digest() -> str:
            d = digest()
            if len(seen) <= n:  # the steps; later calls are the episode's end
                seen.append((copy.deepcopy(world.state()), d))
            return d

        world.reset, world.digest = on_reset, on_digest
        return world

    quiet = dataclasses.replace(plan, node_graders={}, outcome_graders=[])
    quiet.new_world = lambda key: watch(ScenarioPlan.new_world(plan, key))  # type: ignore
    agent = RecordedAgent([s.decision for s in result.steps])
    human = RecordedHuman(_answers(result, items), then=_Approver())
    await run_episode(quiet, result.key, agent=agent, human=human, agent_label=result.agent)
    for i, st in enumerate(result.steps):
        if i + 1 >= len(seen):
            break
        (before, _), (after, digest) = seen[i], seen[i + 1]
        out.diffs[st.index] = diff_states(before, after)
        if st.index in keep_before:
            out.before[st.index] = json.dumps(before, indent=2, ensure_ascii=False,
                                              sort_keys=True, default=str)
        # The paused step's record has no digest of its own effect (it did not run yet).
        ran = st.result is not None or st.checkpoint is None or st.checkpoint.reviewed
        if out.diverged_at is None and ran and st.state_digest and digest != st.state_digest:
            out.diverged_at = st.index
    return out


class StateCache:
    """Rebuilt states by (episode id, steps): a page is replayed once; plans by run."""

    def __init__(self, store: Store, size: int = 64) -> None:
        self.store = store
        self.size = size
        self.states: OrderedDict[tuple[str, int, str], EpisodeStates] = OrderedDict()
        self.plans: OrderedDict[str, Any] = OrderedDict()

    def plan(self, run_id: str) -> Any:
        if run_id not in self.plans:
            from trialrun.runner import plan_of_run

            self.plans[run_id] = plan_of_run(self.store, run_id)
            while len(self.plans) > 8:
                self.plans.popitem(last=False)
        return self.plans[run_id]

    async def get(self, episode_id: str, run_id: str, result: EpisodeResult,
                  items: list[ReviewRow], keep_before: set[int] | None = None
                  ) -> EpisodeStates:
        answered = ",".join(f"{i.step}:{i.status}" for i in items)
        key = (episode_id, len(result.steps), answered)
        hit = self.states.get(key)
        if hit is not None and set(keep_before or ()) <= set(hit.before):
            self.states.move_to_end(key)
            return hit
        try:
            plan = self.plan(run_id).scenarios.get(result.key.scenario)
        except Exception as e:  # noqa: BLE001 - an imported run, or scenarios that no longer load
            return EpisodeStates(available=False, reason=f"state not available: the run's "
                                 f"scenarios cannot be rebuilt ({type(e).__name__}: {e})"[:300])
        if plan is None:
            return EpisodeStates(available=False, reason="state not available: the run's "
                                 "scenario is not stored with it")
        try:
            states = await rebuild(plan, result, items, set(keep_before or ()))
        except Exception as e:  # noqa: BLE001 - a world that fails to replay: say so, no 500
            states = EpisodeStates(available=False, reason=f"state not available: the replay "
                                   f"failed ({type(e).__name__}: {e})"[:300])
        self.states[key] = states
        while len(self.states) > self.size:
            self.states.popitem(last=False)
        return states
