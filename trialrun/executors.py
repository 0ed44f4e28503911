"""Executors run a plan's episodes: where and how many at once, nothing else.

An executor takes the keys still to run and hands each result to `on_result` as it ends; it
never decides what to run (the plan does), never writes the store (the runner does, in the
callback) and never computes statistics. `LocalExecutor` runs episodes on this machine's
event loop with bounded concurrency; a cluster executor plugs in here through the registry
(`@register("executor", name)`) without touching the loop or the store.

Infrastructure faults (a model API that fails, a container that will not start, a harness
bug) are retried with exponential backoff; if they persist the episode comes back as an
`error` episode: recorded, never scored, and run again by `--resume`.
"""

from __future__ import annotations

import gc
import logging
import os
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar

import anyio
import anyio.lowlevel
from pydantic import BaseModel, ConfigDict, Field

from trialrun.episode import run_episode
from trialrun.errors import BadInput, InfraError
from trialrun.plan import RunPlan, ScenarioPlan
from trialrun.registry import register
from trialrun.sandbox.backend import SandboxFault, SandboxUnavailable, sandbox_labels
from trialrun.scope import episode_scope
from trialrun.trajectory import EndReason, EpisodeKey, EpisodeResult

log = logging.getLogger("trialrun")

OnResult = Callable[[EpisodeResult], Awaitable[None] | None]


class ExecutorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(8, ge=1, description="episodes in flight at once, in all")
    max_attempts: int = Field(3, ge=1, description="tries per episode on infrastructure faults")
    retry_backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles")
    workers: int | None = Field(None, ge=1, description="worker processes (local executor); "
                                "None: picked from the plan and the machine")
    full_results: bool = Field(True, description="hand `on_result` whole episodes; False: "
                               "their summary (no steps) and the store rows built where they ran")


class Executor:
    """Base class: `run` every key of `todo` (keys of `plan`), calling `on_result` once per
    key with its result, infrastructure errors included."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[ExecutorOptions]] = ExecutorOptions

    def __init__(self, options: ExecutorOptions | dict[str, Any] | None = None) -> None:
        if not isinstance(options, self.Options):
            options = self.Options.model_validate(options or {})
        self.options: Any = options

    def check(self, plan: RunPlan, store: Any) -> None:
        """Refuse, with a `BadInput`, what this executor cannot run, before the run starts."""

    async def run(self, plan: RunPlan, todo: Iterable[EpisodeKey], run_id: str,
                  on_result: OnResult) -> None:
        raise NotImplementedError


@register("executor", "local")
class LocalExecutor(Executor):
    """Episodes on this machine. In this process's event loop, a fixed pool of `concurrency`
    workers pulls keys from the plan's iterator, so memory grows with the concurrency, not
    the plan. With `workers` > 1, worker processes run them (`trialrun.worker_pool`) so
    CPU-bound worlds use every core; this process alone writes the store."""

    def check(self, plan: RunPlan, store: Any) -> None:
        _, why = self.processes_for(plan, store)
        if why and self.options.workers is not None and self.options.workers > 1:
            raise BadInput(f"--workers {self.options.workers}: {why}; drop --workers")

    async def run(self, plan: RunPlan, todo: Iterable[EpisodeKey], run_id: str,
                  on_result: OnResult) -> None:
        store = episode_scope.get().store
        self.check(plan, store)
        workers, _ = self.processes_for(plan, store)
        if workers > 1:
            from trialrun.worker_pool import WorkerPool

            pool = WorkerPool(plan, run_id, self.options, workers, getattr(store, "url", None))
            todo = iter(todo)
            if await pool.start():
                await pool.run(todo, on_result)
                return
            log.warning("worker processes could not start (%s): running in this process",
                        pool.failure)
        if plan.planned >= AUTO_PROCESSES_FROM:
            settle_heap()
        await self.run_here(plan, todo, run_id, on_result)

    def processes_for(self, plan: RunPlan, store: Any) -> tuple[int, str]:
        """How many worker processes to use, and why not several when it is one. Asked for
        (`workers`), that many; else the machine's cores for a plan big enough to pay for
        their start (~0.3 s each) whose worlds compute in-process (containers and model APIs
        wait on I/O, which one event loop already overlaps)."""
        from trialrun.agents.tape import current_tape

        url = getattr(store, "url", None)
        if current_tape.get() is not None:
            return 1, "a replayed recording is served from this process"
        if store is not None and (url is None or _in_memory(url)):
            return 1, "an in-memory store cannot be shared with worker processes"
        # `concurrency` is the total in flight: never more workers than episodes at once.
        if self.options.workers is not None:
            return min(self.options.workers, self.options.concurrency), ""
        cores = os.cpu_count() or 1
        if cores < 2 or plan.planned < AUTO_PROCESSES_FROM:
            return 1, ""
        if any(p.world_cls.uses_sandbox or p.world_cls.blocking
               for p in plan.scenarios.values()):
            return 1, ""
        return min(cores, MAX_AUTO_WORKERS, self.options.concurrency), ""

    async def run_here(self, plan: RunPlan, todo: Iterable[EpisodeKey], run_id: str,
                       on_result: OnResult) -> None:
        keys = iter(todo)

        async def worker() -> None:
            for n, key in enumerate(keys):  # one shared iterator: each key to one worker
                if n % 8 == 7:
                    # Episodes of an in-process world may never wait on anything: without a
                    # turn of the event loop now and then, the loop never drops the cancelled
                    # wall-time timers of finished episodes (memory would grow with the plan)
                    # and Ctrl-C, the progress bar and other tasks would wait for the run.
                    await anyio.lowlevel.checkpoint()
                # Containers are labelled with the run and episode (prune and ls read the
                # labels); the context variable reaches worker threads that start them.
                sandbox_labels.set({"run": run_id, "episode": str(key)})
                result = await run_with_retries(plan.scenarios[key.scenario], key,
                                                self.options, plan.resume_from.get(str(key)))
                out = on_result(result)
                if out is not None:
                    await out

        async with anyio.create_task_group() as tg:
            for _ in range(self.options.concurrency):
                tg.start_soon(worker)


# A plan this big runs in worker processes by default (smaller ones finish before the
# processes would have started); at most this many of them unless asked.
AUTO_PROCESSES_FROM = 2000
MAX_AUTO_WORKERS = 8


def settle_heap() -> None:
    """Before a long run: what exists now (modules, the plan) lives as long as the process,
    so the collector stops walking it (`gc.freeze`). Its full collections otherwise visit
    every object of every module again and again, for nothing: ~1 µs a step of retail."""
    gc.freeze()


def _in_memory(url: str) -> bool:
    return url.startswith("sqlite") and url.split("///", 1)[-1] in ("", ":memory:") \
        or url in ("sqlite://", "sqlite:///:memory:")


async def run_with_retries(plan: ScenarioPlan, key: EpisodeKey, opts: ExecutorOptions,
                           paused: EpisodeResult | None = None,
                           run: Callable[[], Awaitable[EpisodeResult]] | None = None
                           ) -> EpisodeResult:
    """One episode; infrastructure faults retried, then returned as an `error` episode.
    `paused`: the record of this episode's pause for a reviewer, replayed before it goes on;
    `run`: how to run it instead (e.g. a fork: a recorded prefix, then a changed agent)."""
    last = ""
    attempt = 0
    for attempt in range(1, opts.max_attempts + 1):
        try:
            result = await (run() if run is not None else run_episode(plan, key)
                            if paused is None else resume_paused(plan, key, paused))
            if result.attempts != attempt:  # a model's assignment costs more than a compare
                result.attempts = attempt
            return result
        except SandboxUnavailable as e:  # no engine or no image: retrying will not help
            last = f"sandbox unavailable: {e}"
            break
        except (InfraError, SandboxFault) as e:
            last = f"{e}"
            if getattr(e.__cause__, "retryable", True) is False:
                break  # e.g. a replay tape's miss: trying again cannot help
        except Exception as e:  # noqa: BLE001 - a harness bug must not kill the whole run
            last = f"harness: {type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"
        if attempt < opts.max_attempts:
            await anyio.sleep(opts.retry_backoff_s * 2 ** (attempt - 1))
    return infra_error_result(plan, key, last, attempt)


def infra_error_result(plan: ScenarioPlan, key: EpisodeKey, error: str, attempts: int
                       ) -> EpisodeResult:
    """An episode that infrastructure faults kept from ending: recorded, never scored, run
    again by `--resume`."""
    return EpisodeResult(key=key, agent=plan.scenario.agent.label, end_reason=EndReason.error,
                         success=None, error=error, attempts=attempts, policy=plan.policy_label,
                         end_note="infrastructure error")


# An episode run away from the store (a worker process, a Ray actor) travels back pickled,
# without its steps and outcome grades but with its store rows built where it ran (so the one
# writer only inserts them), and, when the driver keeps whole results, as JSON too.
Shipped = tuple[EpisodeResult, str | None]


async def run_to_ship(plan: RunPlan, key: EpisodeKey, run_id: str, opts: ExecutorOptions,
                      paused: str | None = None, lost: int = 0) -> Shipped:
    """Run one episode in a worker (`run_with_retries`) and pack it to send back. `paused`:
    the JSON of its pause record; `lost`: tries already lost with workers that died."""
    from trialrun.store import episode_rows

    sandbox_labels.set({"run": run_id, "episode": str(key)})
    result = await run_with_retries(
        plan.scenarios[key.scenario], key, opts,
        EpisodeResult.model_validate_json(paused) if paused is not None else None)
    result.attempts += lost  # tries lost with a worker count as tries
    full = result.model_dump_json() if opts.full_results else None
    result._rows = episode_rows(run_id, result)
    result.steps = []  # emptied in place: they travel as rows (the worker is done with it)
    result.outcome_grades = []
    return result, full


def shipped_result(shipped: Shipped) -> EpisodeResult:
    """The driver's side of `run_to_ship`: what `on_result` stores, rows included."""
    summary, full = shipped
    if full is None:
        return summary
    result = EpisodeResult.model_validate_json(full)
    result._rows = summary._rows
    return result


async def resume_paused(plan: ScenarioPlan, key: EpisodeKey, paused: EpisodeResult
                        ) -> EpisodeResult:
    """Go on from a pause: the recorded decisions (the paused one included) are replayed and
    adopted by a fresh agent, recorded answers serve the reviews before it, and the paused
    review is asked again of the scenario's human, who now finds its answer."""
    from trialrun.humans import RecordedHuman
    from trialrun.replay.exact import RecordedAgent, recorded_answers
    from trialrun.scope import episode_scope

    agent = RecordedAgent([s.decision for s in paused.steps], then=plan.new_agent())
    human = RecordedHuman(recorded_answers(paused), then=plan.new_human(key))
    token = episode_scope.set(episode_scope.get().with_(resuming=True))
    try:
        return await run_episode(plan, key, agent=agent, human=human,
                                 agent_label=paused.agent)
    finally:
        episode_scope.reset(token)
