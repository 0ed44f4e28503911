"""Shapes that keep a big run cheap, asserted as behaviour, not speed: the plan is counted by
arithmetic and enumerated lazily (a billion planned episodes with --limit cost nothing), the
executor holds keys in proportion to its concurrency, not the plan, and batched commits
store every finished episode exactly once."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator

import anyio
import pytest
import yaml

from tests.helpers import RETAIL
from trialrun.executors import ExecutorOptions, LocalExecutor
from trialrun.plan import RunPlan
from trialrun.runner import RunOptions, run_episodes
from trialrun.scenarios.loader import load_scenario_source
from trialrun.scope import EpisodeScope, episode_scope
from trialrun.store import Store
from trialrun.trajectory import EpisodeKey, EpisodeResult


def retail(seeds: int, trials: int = 1) -> str:
    doc = yaml.safe_load((RETAIL / "known_error_rates.yaml").read_text())
    doc["seeds"], doc["trials"] = seeds, trials
    return yaml.safe_dump(doc)


def test_a_billion_planned_episodes_with_a_limit_plan_in_no_time_and_memory(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    loaded = [load_scenario_source(retail(100_000, 10_000), "huge.yaml")]
    plan = RunPlan.build(loaded)
    assert plan.planned == 1_000_000_000  # counted, not enumerated
    tracemalloc.start()
    t = time.perf_counter()
    summary = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(limit=20,
                                                                                workers=1)))
    took = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert summary.planned == 20 and summary.ran == 20
    assert store.get_run(summary.run_id).planned == 20
    assert [e.key for e in store.episodes(summary.run_id)].__len__() == 20
    assert peak < 30 * 2**20, f"planning held {peak / 2**20:.0f} MiB"
    assert took < 30  # a generous bound: enumerating the plan would take many minutes


class CountingKeys:
    """The keys still to run, counting how many the executor has taken so far."""

    def __init__(self, keys: Iterator[EpisodeKey]) -> None:
        self.keys, self.taken = keys, 0

    def __iter__(self) -> CountingKeys:
        return self

    def __next__(self) -> EpisodeKey:
        key = next(self.keys)
        self.taken += 1
        return key


@pytest.mark.parametrize("workers", [1, 2])
def test_keys_in_flight_are_bounded_by_the_concurrency_not_the_plan(tmp_path, workers):
    plan = RunPlan.build([load_scenario_source(retail(600), "r.yaml")])
    keys = CountingKeys(plan.keys())
    done: list[EpisodeResult] = []
    most = 0

    def on_result(result: EpisodeResult) -> None:
        nonlocal most
        done.append(result)
        most = max(most, keys.taken - len(done))

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    executor = LocalExecutor(ExecutorOptions(concurrency=4, workers=workers,
                                             full_results=False))

    async def go() -> None:
        token = episode_scope.set(EpisodeScope(store=store, run_id="r"))
        try:
            await executor.run(plan, keys, "r", on_result)
        finally:
            episode_scope.reset(token)

    anyio.run(go)
    assert len(done) == 600 and len({str(r.key) for r in done}) == 600
    if workers == 1:
        assert most <= 4
    else:  # each worker's window: its share of -j and two batches queued
        from trialrun.worker_pool import BATCH

        assert most <= workers * (2 + 2 * BATCH)
    # Without keep_results nothing accumulates: summaries, no steps.
    assert all(not r.steps for r in done) if workers > 1 else True


def test_batched_commits_store_every_episode_once_and_a_run_reads_them_all(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    seen: list[int] = []
    loaded = [load_scenario_source(retail(300), "r.yaml")]
    summary = anyio.run(lambda: run_episodes(
        store, loaded, options=RunOptions(workers=1),
        on_episode=lambda r: seen.append(len(seen))))
    keys = [e.key for e in store.episodes(summary.run_id)]
    assert len(seen) == 300 and len(keys) == len(set(keys)) == 300
    assert store.get_run(summary.run_id).status == "complete"
    # A resume finds everything committed: nothing runs again.
    again = anyio.run(lambda: run_episodes(store, [], resume=summary.run_id,
                                           options=RunOptions(workers=1)))
    assert again.ran == 0 and again.skipped == 300


def test_a_commit_that_fails_is_never_reported_as_stored(tmp_path):
    """An insert that fails inside a batch (here: a key stored twice) fails the run; the
    other episodes of the batch are stored, none twice."""
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    run_id = store.create_run([], {}, 3, {})
    plan = RunPlan.build([load_scenario_source(retail(3), "r.yaml")])
    from trialrun.trajectory import EndReason

    results = [EpisodeResult(key=k, agent="a", end_reason=EndReason.finished, success=True)
               for k in plan.keys()]
    with pytest.raises(Exception, match="UNIQUE"), store.batched(max_delay_s=60):
        store.save_episode(run_id, results[0])
        store.save_episode(run_id, results[1])
        store.save_episode(run_id, results[0])  # the same key again
        store.save_episode(run_id, results[2])
    keys = sorted(e.key for e in store.episodes(run_id))
    assert keys == sorted(str(r.key) for r in results)


def _peak_mib(tmp_path, episodes: int) -> float:
    store = Store(f"sqlite:///{tmp_path / f'peak{episodes}.db'}")
    loaded = [load_scenario_source(retail(episodes), "r.yaml")]
    tracemalloc.start()
    try:
        anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(workers=1)))
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_a_runs_memory_is_flat_in_the_number_of_planned_episodes(tmp_path):
    """In-process episodes that never wait must still let the event loop drop what finished
    episodes left (their cancelled wall-time timers): 8x the episodes, the same peak."""
    _peak_mib(tmp_path, 50)  # imports and caches, once
    small, big = _peak_mib(tmp_path, 300), _peak_mib(tmp_path, 2400)
    assert big - small < 0.75, f"{small:.1f} MiB for 300 episodes, {big:.1f} MiB for 2400"


def test_an_in_memory_store_takes_every_episode_of_a_run_that_lasts(monkeypatch):
    """An in-memory SQLite database is one per thread: a timed commit from another thread
    found no tables there. Such a store commits each episode at once, in the run's thread."""
    from trialrun.sandbox.worlds.retail import RetailWorld

    reset = RetailWorld.reset

    def slow_reset(self):  # long enough for the commit timer to run between episodes
        time.sleep(0.002)
        return reset(self)

    monkeypatch.setattr(RetailWorld, "reset", slow_reset)
    store = Store("sqlite://")
    loaded = [load_scenario_source(retail(300), "r.yaml")]
    summary = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(workers=1)))
    assert summary.ran == 300 and len(store.episodes(summary.run_id)) == 300
