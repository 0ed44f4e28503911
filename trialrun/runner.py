"""Run scenarios: plan once, run the plan's episodes on an executor, store each as it ends.

This is the entry point of a run (`trialrun run`, tests, benchmarks). The plan decides what
runs, the executor runs it, the store keeps it: an episode is committed when it ends, so a
killed run resumes with `resume=RUN_ID` without losing or repeating finished episodes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from trialrun.errors import BadInput, NotFound
from trialrun.executors import Executor, ExecutorOptions
from trialrun.plan import RunPlan
from trialrun.registry import resolve
from trialrun.scenarios.loader import LoadedScenario
from trialrun.scope import EpisodeScope, episode_scope
from trialrun.store import Store
from trialrun.trajectory import EndReason, EpisodeResult

FLUSH_EVERY_S = 0.1  # the longest a finished episode waits to be committed


@dataclass
class RunOptions:
    concurrency: int = 8
    max_attempts: int = 3
    retry_backoff_s: float = 0.5
    limit: int | None = None  # run at most this many planned episodes (for smoke tests)
    trials: int | None = None  # override every scenario's trials
    seeds: int | None = None  # override every scenario's seeds with range(seeds)
    sandbox: str | None = None  # "docker" or "local": where sandboxed worlds run
    executor: str = "local"
    # Worker processes of the local executor (`--workers`): None picks (processes for big
    # runs on a multi-core machine, see `LocalExecutor.processes_for`), 1 runs in this
    # process. `concurrency` stays the total in flight, shared by the workers.
    workers: int | None = None
    address: str | None = None  # the cluster of a cluster executor (`--address`, Ray)

    def overrides(self) -> dict[str, int | str]:
        """What changes the plan; stored with the run so a resume plans the same episodes."""
        return {k: v for k, v in (("trials", self.trials), ("seeds", self.seeds),
                                  ("sandbox", self.sandbox)) if v}

    def executor_options(self, full_results: bool = True) -> ExecutorOptions:
        return ExecutorOptions(concurrency=self.concurrency, max_attempts=self.max_attempts,
                               retry_backoff_s=self.retry_backoff_s, workers=self.workers,
                               full_results=full_results)


@dataclass
class RunSummary:
    run_id: str
    planned: int
    ran: int = 0
    skipped: int = 0  # already done in an earlier, interrupted invocation
    errors: int = 0
    paused: int = 0  # waiting for a real reviewer: `resume` goes on once answered
    wall_s: float = 0.0
    results: list[EpisodeResult] = field(default_factory=list)


def _executor(opts: RunOptions, full_results: bool) -> Executor:
    """The run's executor, given the common options and what only some take (`address`)."""
    klass = resolve("executor", opts.executor)
    fields = opts.executor_options(full_results).model_dump()
    if opts.address:
        if "address" not in klass.Options.model_fields:
            raise BadInput(f"--address {opts.address}: the {opts.executor} executor runs on "
                           "this machine and takes no address (did you mean --executor ray?)")
        fields["address"] = opts.address
    return klass(klass.Options.model_validate(fields))


def plan_of_run(store: Store, run_id: str) -> RunPlan:
    """The run's plan exactly as it was made: its stored scenario text and overrides (edits
    to the files since do not count)."""
    run = store.get_run(run_id)
    options = json.loads(run.options)
    return RunPlan.from_sources(json.loads(run.scenarios), options.get("overrides", {}),
                                options.get("limit"), origin=f"<run {run.id}>")


def scenarios_of_run(store: Store, run_id: str) -> list[LoadedScenario]:
    return [p.loaded for p in plan_of_run(store, run_id).scenarios.values()]


async def run_episodes(
    store: Store,
    loaded: list[LoadedScenario],
    *,
    targets: list[str] | None = None,
    resume: str | None = None,
    options: RunOptions | None = None,
    on_start: Callable[[str, int, int], None] | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
    keep_results: bool = False,
) -> RunSummary:
    """Plan, run and store; `on_start(run_id, planned, already_done)` comes before the first
    episode, `on_episode(result)` after each is stored. The run is locked while it runs: a
    second `--resume` of it (another process, another host) is refused as busy."""
    with ExitStack() as held:
        return await _run_episodes(store, loaded, held, targets=targets, resume=resume,
                                   options=options, on_start=on_start, on_episode=on_episode,
                                   keep_results=keep_results)


async def _run_episodes(
    store: Store,
    loaded: list[LoadedScenario],
    held: ExitStack,
    *,
    targets: list[str] | None,
    resume: str | None,
    options: RunOptions | None,
    on_start: Callable[[str, int, int], None] | None,
    on_episode: Callable[[EpisodeResult], None] | None,
    keep_results: bool,
) -> RunSummary:
    opts = options or RunOptions()
    t0 = time.perf_counter()
    executor = _executor(opts, keep_results)
    if resume:
        try:
            run_id = store.get_run(resume).id
        except KeyError as e:
            raise NotFound(str(e.args[0])) from None
        held.enter_context(store.lock_run(run_id))  # before anything of the run changes
        from trialrun.replay.rerun import plan_to_rerun

        plan = plan_to_rerun(store, run_id, "resumed")  # an imported run has no world
        executor.check(plan, store)
        store.drop_errors(run_id)  # errors are not outcomes: run those episodes again
        # Paused episodes whose review is answered go on from where they stopped.
        plan.resume_from = store.paused_ready(run_id)
        done = store.done_keys(run_id) - set(plan.resume_from)
        store.set_status(run_id, "running")
    else:
        plan = RunPlan.build(loaded, opts.overrides(), opts.limit)
        executor.check(plan, store)  # e.g. --workers with an in-memory store: before the run
        run_id = store.create_run(targets or [], plan.sources(), plan.planned,
                                  {"concurrency": opts.concurrency, "overrides": plan.overrides,
                                   "limit": opts.limit, "executor": opts.executor})
        held.enter_context(store.lock_run(run_id))
        done = set()
    todo = (k for k in plan.keys() if str(k) not in done)
    summary = RunSummary(run_id=run_id, planned=plan.planned,
                         skipped=len(done))
    if on_start:
        on_start(run_id, plan.planned, len(done))

    def on_result(result: EpisodeResult) -> None:
        key = str(result.key)
        error = result.end_reason == EndReason.error
        summary.errors += error
        # A resumed pause that failed keeps its record (the prefix to go on from): the next
        # resume tries again. Otherwise the resumed episode takes the pause's place.
        if not (error and key in plan.resume_from):
            if key in plan.resume_from:
                store.flush()
                store.drop_paused(run_id, key)
            store.save_episode(run_id, result)
            summary.ran += 1
            summary.paused += result.end_reason == EndReason.paused
            if keep_results:
                summary.results.append(result)
        if on_episode:
            on_episode(result)

    from trialrun.graders.judge import JudgeCache, use_judge_cache

    # The tail of a burst of episodes is committed without waiting for the next episode.
    stop = threading.Event()

    def commit_now_and_then() -> None:
        while not stop.wait(FLUSH_EVERY_S):
            store.flush(later=True)

    committer = threading.Thread(target=commit_now_and_then, name="trialrun-commit",
                                 daemon=True)
    token = episode_scope.set(EpisodeScope(store=store, run_id=run_id))
    try:
        # Episodes that end many a second are committed in groups (at most FLUSH_EVERY_S
        # apart): a kill loses only those not yet committed, which `--resume` runs again.
        with use_judge_cache(JudgeCache(store)), store.batched(FLUSH_EVERY_S):
            committer.start()
            try:
                await executor.run(plan, todo, run_id, on_result)
            finally:
                stop.set()
                committer.join()
    except BaseException:
        store.set_status(run_id, "interrupted")
        raise
    finally:
        episode_scope.reset(token)
    waiting = store.count_paused(run_id)
    store.set_status(run_id, "waiting for review" if waiting else "complete")
    summary.wall_s = time.perf_counter() - t0
    return summary


def run(targets: list[str] | str, db: str = "sqlite:///trialrun.db",
        options: RunOptions | None = None) -> RunSummary:
    """Load scenario files, folders or built-in suites and run them (the synchronous entry
    point for scripts and notebooks; `trialrun run` is the same from the command line)."""
    from trialrun.scenarios.loader import load_targets

    names = [targets] if isinstance(targets, str) else list(targets)
    loaded = load_targets(names)
    store = Store(db)
    import anyio

    return anyio.run(lambda: run_episodes(store, loaded, targets=names, options=options))
