"""Exact replay of a stored episode: same scenario text, seed, decisions and human answers.

The replay re-runs the world from its seed, plays the recorded decisions back through the
same episode loop, answers checkpoints with the recorded human answers, and compares every
step's state digest and tool result with the record. A divergence means the world is not
deterministic under its seed (or the code changed): exactly what a regression case checks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import BaseModel

from trialrun.agents.base import Agent, AgentContext, Feedback
from trialrun.episode import run_episode
from trialrun.humans import HumanAnswer, RecordedHuman
from trialrun.replay.rerun import plan_to_rerun, refuse_paused
from trialrun.store import Store
from trialrun.trajectory import Decision, EpisodeResult, Observation


class RecordedAgent(Agent):
    """Plays back recorded decisions in order, then hands over to `then` (a fork).

    The successor adopts every recorded decision (`Agent.adopt`) and sees its feedback, so
    that past the record it goes on from where the recording was: a seeded agent has drawn
    its randomness as in the recording, an LLM agent has the recorded turns in its
    conversation (no model call for them)."""

    name = "recorded"

    def __init__(self, decisions: list[Decision], then: Agent | None = None) -> None:
        super().__init__()
        self.decisions = list(decisions)
        self.then = then
        self.waits = getattr(then, "waits", True) if then is not None else False

    @asynccontextmanager
    async def running(self, ctx: AgentContext, first: Observation) -> AsyncIterator[None]:
        await self.start(ctx, first)
        if self.then is None:
            yield
            return
        async with self.then.running(ctx, first):  # the successor's own life
            yield

    async def decide(self, obs: Observation) -> Decision:
        if self.decisions:
            decision = self.decisions.pop(0)
            if self.then is not None:
                await self.then.adopt(decision, obs)
            return decision
        if self.then is None:
            return Decision(kind="finish", node="finish", text="end of recording")
        return await self.then.decide(obs)

    async def feedback(self, fb: Feedback) -> None:
        if self.then is not None:  # keep the successor's view of the episode up to date
            await self.then.feedback(fb)



class StepDiff(BaseModel):
    index: int
    what: str
    recorded: str
    replayed: str


class ReplayReport(BaseModel):
    episode_id: str
    identical: bool
    steps: int
    differences: list[StepDiff]
    recorded_success: bool | None
    replayed_success: bool | None


def recorded_answers(ep: EpisodeResult) -> list[HumanAnswer]:
    return [HumanAnswer(approved=bool(st.checkpoint.approved), seconds=st.checkpoint.seconds,
                        cost=st.checkpoint.cost, reviewer=st.checkpoint.reviewer,
                        action=None if st.checkpoint.action == "proceed"
                        else st.checkpoint.action, takeover=st.checkpoint.takeover)
            for st in ep.steps if st.checkpoint and st.checkpoint.reviewed]


def compare(original: EpisodeResult, replayed: EpisodeResult) -> list[StepDiff]:
    diffs: list[StepDiff] = []
    for a, b in zip(original.steps, replayed.steps, strict=False):
        for what, x, y in (
            ("decision", a.decision.model_dump_json(), b.decision.model_dump_json()),
            ("state digest", a.state_digest, b.state_digest),
            ("result", a.result.model_dump_json() if a.result else "",
             b.result.model_dump_json() if b.result else ""),
            ("grades", str([(g.grader, g.passed) for g in a.grades]),
             str([(g.grader, g.passed) for g in b.grades])),
        ):
            if x != y:
                diffs.append(StepDiff(index=a.index, what=what, recorded=x[:200],
                                      replayed=y[:200]))
    if len(original.steps) != len(replayed.steps):
        diffs.append(StepDiff(index=min(len(original.steps), len(replayed.steps)),
                              what="length", recorded=str(len(original.steps)),
                              replayed=str(len(replayed.steps))))
    if original.final_digest != replayed.final_digest:
        diffs.append(StepDiff(index=len(replayed.steps), what="final state",
                              recorded=original.final_digest, replayed=replayed.final_digest))
    return diffs


async def replay_episode(store: Store, episode_id: str) -> tuple[ReplayReport, EpisodeResult]:
    row = store.get_episode(episode_id)
    refuse_paused(row, "replay")
    original = store.load_episode(episode_id)
    plan = plan_to_rerun(store, row.run_id, "replayed").scenarios[row.scenario]
    agent = RecordedAgent([st.decision for st in original.steps])
    human = RecordedHuman(recorded_answers(original))
    from trialrun.graders.judge import JudgeCache, use_judge_cache

    with use_judge_cache(JudgeCache(store)):  # a judge's recorded answers, no new requests
        replayed = await run_episode(plan, original.key, agent=agent, human=human,
                                     agent_label=original.agent)
    diffs = compare(original, replayed)
    return ReplayReport(episode_id=episode_id, identical=not diffs, steps=len(replayed.steps),
                        differences=diffs, recorded_success=original.success,
                        replayed_success=replayed.success), replayed
