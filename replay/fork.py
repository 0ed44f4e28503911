"""Forks: a stored episode replayed up to step k, then a changed agent goes on live from there.

The world is rebuilt by replaying the recorded prefix (same seed, same decisions, the recorded
human answers), so at step k it is exactly where the recorded agent left it; the fork's agent
adopts the prefix as its own (`Agent.adopt`: a seeded agent draws its randomness as recorded,
an LLM agent gets the recorded turns in its conversation, with no model call) and decides
live from step k, with a live human past the recorded answers. The fork is stored as an
episode of a fork run, linked to its parent (`parent`, `fork_at`).

`at` picks the step: a number, `first-error` (the earliest step a trusted grader failed) or
`decisive` (the earliest step whose correction saves the episode: counterfactual replay).
Forking with the agent unchanged reproduces the parent exactly; that is checked, and a fork
whose replayed prefix differs from the record says so (`prefix_identical`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from trialrun.agents.self_driving import CannotAdopt
from trialrun.episode import run_episode
from trialrun.errors import InfraError, TrialrunError
from trialrun.executors import ExecutorOptions, run_with_retries
from trialrun.humans import RecordedHuman
from trialrun.plan import ScenarioPlan
from trialrun.replay.counterfactual import attribute_episode
from trialrun.replay.exact import RecordedAgent, recorded_answers
from trialrun.replay.rerun import plan_to_rerun, refuse_paused
from trialrun.store import Store
from trialrun.trajectory import EpisodeKey, EpisodeResult

__all__ = ["ForkError", "ForkResult", "fork_episode", "fork_episodes", "fork_point"]


class ForkError(TrialrunError):
    """A fork that cannot be made (no such step, no error to fork at, an agent that cannot
    take over a recorded prefix)."""


class ForkResult(BaseModel):
    parent_id: str
    episode_id: str  # the stored fork
    at: int
    parent_success: bool | None
    success: bool | None
    prefix_identical: bool  # the replayed prefix matched the record step for step
    error: str | None = None  # an infrastructure error, retried: the fork is not scored

    @property
    def rescued(self) -> bool:
        return self.parent_success is False and self.success is True


async def fork_point(store: Store, plan: ScenarioPlan, episode_id: str,
                     parent: EpisodeResult, at: int | str) -> int:
    """The step a fork starts at: a number, `first-error` or `decisive`."""
    if at == "first-error":
        first = parent.first_error
        if first is None:
            raise ForkError(f"episode {episode_id} has no graded error to fork at")
        return first.index
    if at == "decisive":
        att = await attribute_episode(store, plan, episode_id)
        if att.decisive_step is None:
            raise ForkError(f"episode {episode_id}: no single corrected step saves it, so it "
                            "has no decisive step (fork at first-error or at a number)")
        return att.decisive_step
    k = int(at)
    if not 0 <= k <= len(parent.steps):
        raise ForkError(f"episode {episode_id} has steps 0..{len(parent.steps) - 1}; cannot "
                        f"fork at {k}")
    return k


async def _fork_one(parent: EpisodeResult, plan: ScenarioPlan, k: int) -> EpisodeResult:
    prefix = parent.steps[:k]
    reviews = sum(1 for s in prefix if s.checkpoint and s.checkpoint.reviewed)
    agent = RecordedAgent([s.decision for s in prefix], then=plan.new_agent())
    human = RecordedHuman(recorded_answers(parent)[:reviews],
                          then=plan.new_human(parent.key, salt=f"fork:{k}"))
    result = await run_episode(plan, _fork_key(parent, plan), agent=agent, human=human,
                               agent_label=plan.scenario.agent.label)
    return result.model_copy(update={"fork_at": k})


def _fork_key(parent: EpisodeResult, plan: ScenarioPlan) -> EpisodeKey:
    return EpisodeKey(scenario=plan.scenario.name, task=parent.key.task, seed=parent.key.seed,
                      trial=parent.key.trial)


def _identical(parent: EpisodeResult, fork: EpisodeResult, k: int) -> bool:
    if len(fork.steps) < k:
        return False
    return all(a.decision == b.decision and a.state_digest == b.state_digest
               for a, b in zip(parent.steps[:k], fork.steps[:k], strict=True))


async def fork_episodes(store: Store, episode_ids: list[str], at: int | str,
                        agent: dict[str, Any] | None = None,
                        on_fork: Callable[[ForkResult], None] | None = None
                        ) -> tuple[str, list[ForkResult]]:
    """Fork each episode at `at` with `agent` (a scenario `agent:` mapping; None: the same
    agent), store the forks as one run, and return its id and the results."""
    from trialrun.graders.judge import JudgeCache, use_judge_cache
    from trialrun.variants import agent_variants

    if not episode_ids:
        raise ForkError("nothing to fork")
    rows = [store.get_episode(e) for e in episode_ids]
    for row in rows:
        refuse_paused(row, "fork")
    run_ids = {r.run_id for r in rows}
    parents: dict[tuple[str, str], ScenarioPlan] = {}  # the runs' plans, read once
    plans: dict[tuple[str, str], ScenarioPlan] = {}  # the forks': the changed agent
    for run_id in run_ids:
        for name, sp in plan_to_rerun(store, run_id, "forked").scenarios.items():
            parents[(run_id, name)] = sp
            try:
                plans[(run_id, name)] = sp if agent is None else ScenarioPlan.build(
                    agent_variants([sp.loaded], [agent])[0])
            except ValueError as e:  # the agent does not resolve or its params do not fit
                raise ForkError(f"--agent {e}") from None
    sources = {p.scenario.name: p.loaded.source for p in plans.values()}
    fork_run = store.create_run(
        [f"fork {e}" for e in episode_ids], sources, len(episode_ids),
        {"fork_of": sorted(run_ids), "at": at, "agent": agent})
    out: list[ForkResult] = []
    try:
        for ep_id, row in zip(episode_ids, rows, strict=True):
            parent = store.load_episode(ep_id)
            k = await fork_point(store, parents[(row.run_id, row.scenario)], ep_id, parent, at)
            plan = plans[(row.run_id, row.scenario)]
            refused: list[str] = []  # an agent that cannot take over a prefix: say so, stop

            async def attempt(parent: EpisodeResult = parent, plan: ScenarioPlan = plan,
                              k: int = k, refused: list[str] = refused) -> EpisodeResult:
                try:
                    return await _fork_one(parent, plan, k)
                except InfraError as e:
                    if isinstance(e.__cause__, CannotAdopt):
                        refused.append(str(e))
                    raise

            with use_judge_cache(JudgeCache(store)):  # the prefix's judge answers, free
                # A model or container fault is retried, then stored as this fork's error
                # (never scored); the other forks go on.
                fork = await run_with_retries(plan, _fork_key(parent, plan), ExecutorOptions(),
                                              run=attempt)
            if refused:
                raise ForkError(f"fork of {ep_id} at step {k}: {refused[0]}")
            fork = fork.model_copy(update={"parent": ep_id, "fork_at": k})
            fork_id = store.save_episode(fork_run, fork)
            res = ForkResult(parent_id=ep_id, episode_id=fork_id, at=k,
                             parent_success=parent.success, success=fork.success,
                             prefix_identical=fork.error is not None
                             or _identical(parent, fork, k), error=fork.error)
            out.append(res)
            if on_fork:
                on_fork(res)
    except BaseException:
        store.set_status(fork_run, "interrupted")
        raise
    store.set_status(fork_run, "complete")
    return fork_run, out


async def fork_episode(store: Store, episode_id: str, at: int | str,
                       agent: dict[str, Any] | None = None) -> ForkResult:
    _, [res] = await fork_episodes(store, [episode_id], at, agent)
    return res
