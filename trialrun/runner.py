"""Plan episodes (scenario × task × seed × trial) and run them concurrently under a bound.

Each episode is committed to the store when it ends. Infrastructure faults (a model API that
fails, a container that will not start, a harness timeout) are retried with backoff and, if
they persist, stored as `error` episodes: never scored, and run again by `--resume`.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from trialrun.episode import EpisodePlan, InfraError, run_episode
from trialrun.sandbox.backend import SandboxFault, SandboxUnavailable, sandbox_labels
from trialrun.scenarios.loader import LoadedScenario, load_scenario_source
from trialrun.store import Store
from trialrun.trajectory import EndReason, EpisodeKey, EpisodeResult


@dataclass
class RunOptions:
    concurrency: int = 8
    max_attempts: int = 3
    retry_backoff_s: float = 0.5
    limit: int | None = None  # run at most this many planned episodes (for smoke tests)
    trials: int | None = None  # override every scenario's trials
    seeds: int | None = None  # override every scenario's seeds with range(seeds)
    sandbox: str | None = None  # "docker" or "local": where sandboxed worlds run

    def overrides(self) -> dict[str, int | str]:
        return {k: v for k, v in (("trials", self.trials), ("seeds", self.seeds),
                                  ("sandbox", self.sandbox)) if v}


def apply_overrides(loaded: list[LoadedScenario], overrides: dict[str, int | str]) -> None:
    """Command-line overrides, stored with the run so a resume applies them again."""
    from trialrun.sandbox.world import world_class

    counts = {k: v for k, v in overrides.items() if k in ("trials", "seeds")}
    for ls in loaded:
        sc = ls.scenario
        backend = overrides.get("sandbox")
        if backend and world_class(sc.world.type).uses_sandbox:
            current = sc.world.sandbox
            spec: dict | str = backend
            if isinstance(current, dict):
                # image, dockerfile and pool mean nothing to the local backend
                keep = {k: v for k, v in current.items()
                        if backend == "docker" or k not in ("image", "dockerfile", "pool")}
                spec = {**keep, "backend": backend}
            sc = sc.model_copy(update={"world": sc.world.model_copy(update={"sandbox": spec})})
        if counts:
            sc = sc.model_copy(update=counts)
        ls.scenario = sc


@dataclass
class RunSummary:
    run_id: str
    planned: int
    ran: int = 0
    skipped: int = 0  # already done in an earlier, interrupted invocation
    errors: int = 0
    wall_s: float = 0.0
    results: list[EpisodeResult] = field(default_factory=list)


def plan_keys(loaded: list[LoadedScenario]) -> list[EpisodeKey]:
    keys = []
    for ls in loaded:
        sc = ls.scenario
        for task in ls.tasks:
            for seed in sc.seed_list:
                for trial in range(sc.trials):
                    keys.append(EpisodeKey(scenario=sc.name, task=task["id"], seed=seed,
                                           trial=trial))
    return keys


def scenarios_of_run(store: Store, run_id: str) -> list[LoadedScenario]:
    """The scenarios exactly as the run loaded them (edits to the files since do not count)."""
    run = store.get_run(run_id)
    loaded = [load_scenario_source(src, f"<run {run.id}>/{name}")
              for name, src in json.loads(run.scenarios).items()]
    apply_overrides(loaded, json.loads(run.options).get("overrides", {}))
    return loaded


async def run_episodes(
    store: Store,
    loaded: list[LoadedScenario],
    *,
    targets: list[str] | None = None,
    resume: str | None = None,
    options: RunOptions | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
    keep_results: bool = False,
) -> RunSummary:
    opts = options or RunOptions()
    t0 = time.perf_counter()
    if resume:
        run = store.get_run(resume)
        run_id = run.id
        loaded = scenarios_of_run(store, run_id)
        store.drop_errors(run_id)  # errors are not outcomes: run those episodes again
        done = store.done_keys(run_id)
        store.set_status(run_id, "running")
    else:
        apply_overrides(loaded, opts.overrides())
        keys = plan_keys(loaded)
        run_id = store.create_run(targets or [], {ls.name: ls.source for ls in loaded},
                                  len(keys), {"concurrency": opts.concurrency,
                                              "overrides": opts.overrides()})
        done = set()
    plans = {ls.name: EpisodePlan.build(ls) for ls in loaded}
    keys = plan_keys(loaded)
    if opts.limit is not None:
        keys = keys[: opts.limit]
    todo = [k for k in keys if str(k) not in done]
    summary = RunSummary(run_id=run_id, planned=len(keys), skipped=len(keys) - len(todo))
    limiter = anyio.CapacityLimiter(max(1, opts.concurrency))

    async def one(key: EpisodeKey) -> None:
        # Containers are labelled with the run and episode (prune and ls read the labels);
        # the context variable reaches worker threads that start them.
        sandbox_labels.set({"run": run_id, "episode": str(key)})
        async with limiter:
            result = await _with_retries(plans[key.scenario], key, opts)
        store.save_episode(run_id, result)
        summary.ran += 1
        summary.errors += result.end_reason == EndReason.error
        if keep_results:
            summary.results.append(result)
        if on_episode:
            on_episode(result)

    try:
        async with anyio.create_task_group() as tg:
            for key in todo:
                tg.start_soon(one, key)
    except BaseException:
        store.set_status(run_id, "interrupted")
        raise
    store.set_status(run_id, "complete")
    summary.wall_s = time.perf_counter() - t0
    return summary


async def _with_retries(plan: EpisodePlan, key: EpisodeKey, opts: RunOptions) -> EpisodeResult:
    last = ""
    for attempt in range(1, opts.max_attempts + 1):
        try:
            result = await run_episode(plan, key)
            result.attempts = attempt
            return result
        except SandboxUnavailable as e:  # no engine or no image: retrying will not help
            last = f"sandbox unavailable: {e}"
            break
        except (InfraError, SandboxFault) as e:
            last = f"{e}"
        except Exception as e:  # noqa: BLE001 - a harness bug must not kill the whole run
            last = f"harness: {type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"
        if attempt < opts.max_attempts:
            await anyio.sleep(opts.retry_backoff_s * 2 ** (attempt - 1))
    return EpisodeResult(key=key, agent=plan.loaded.scenario.agent.label,
                         end_reason=EndReason.error, success=None, error=last,
                         attempts=attempt, end_note="infrastructure error")
