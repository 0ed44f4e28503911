"""Run a plan's episodes on a Ray cluster (`trialrun run ... --executor ray [--address ADDR]`).

The guarantees are the local executor's. The driver (the `trialrun run` process) still
plans, and still stores each result in the runner's `on_result` as it arrives, so each
planned episode is stored exactly once and `run --resume` works from the store as always.
Workers are Ray actors, one per CPU of the cluster by default. Each rebuilds the plan once
from the scenarios' text (`RunPlan.from_sources`: what a resume does) and runs the episodes
it is sent with `run_with_retries`, the local executor's own loop, so a model or container
fault is retried on the worker.

A worker that dies mid-episode (killed, out of memory, its node lost) loses only the
results it had not returned. Ray restarts it and the driver sends each lost episode again,
alone, after the usual backoff. An episode that keeps killing its worker becomes an `error`
episode after `max_attempts`: recorded, never scored, run again by `--resume`. In-flight
episodes are bounded by `concurrency`, and keys are drawn lazily from the plan, so the
driver's memory does not grow with the plan.

What a worker gets of the run's scope: the run id, and the store's URL (an SQLite path made
absolute), which it opens only if an episode needs it: a reviewer human queueing a decision,
an LLM judge's shared cache. A worker refuses a store it cannot reach or that does not hold
the run (an SQLite file on another machine), so a reviewer's item never lands in a
stranger's database. A run whose scenarios need the store is refused at the start when the
store is in memory. Sandboxed worlds start their containers on the worker's node.

Ray is an optional extra (`pip install 'trialrun[ray]'`), imported only when this executor
runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic import Field

from trialrun.errors import BadInput, InfraError
from trialrun.executors import (
    Executor,
    ExecutorOptions,
    OnResult,
    Shipped,
    infra_error_result,
    run_to_ship,
    settle_heap,
    shipped_result,
)
from trialrun.plan import RunPlan
from trialrun.registry import register
from trialrun.trajectory import EpisodeKey, EpisodeResult

log = logging.getLogger("trialrun")

INSTALL = "the ray executor needs Ray: pip install 'trialrun[ray]'"
_WAIT_S = 0.5  # longest the driver blocks in ray.wait (a cancelled run stops within this)
READY_TIMEOUT_S = 300.0  # for the workers to start (an autoscaler may be adding nodes)


class RayOptions(ExecutorOptions):
    address: str | None = Field(None, description="the cluster to join, e.g. 127.0.0.1:6379 "
                                "or ray://head:10001; unset: RAY_ADDRESS, else a Ray started "
                                "on this machine for the run")
    workers: int | None = Field(None, ge=1, description="worker processes (Ray actors, one "
                                "CPU each); unset: one per CPU of the cluster")  # `--workers`
    batch: int | None = Field(None, ge=1, description="episodes per Ray call; unset: "
                              "concurrency / (2 × workers), at most 32")


def import_ray() -> Any:
    """Ray, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BadInput(INSTALL) from None
    return ray


@register("executor", "ray")
class RayExecutor(Executor):
    """Episodes as calls on Ray actors; results stored by the driver as they come back."""

    Options = RayOptions
    options: RayOptions

    def __init__(self, options: ExecutorOptions | dict[str, Any] | None = None) -> None:
        if isinstance(options, ExecutorOptions) and not isinstance(options, RayOptions):
            options = options.model_dump()  # the runner's common options, no address
        super().__init__(options)
        # Refuse before anything runs (the runner builds its executor first).
        import_ray()
        reachable(self.options.address or os.environ.get("RAY_ADDRESS"))

    def check(self, plan: RunPlan, store: Any) -> None:
        refuse_unsupported(plan, shared_store_url(store))

    async def run(self, plan: RunPlan, todo: Iterable[EpisodeKey], run_id: str,
                  on_result: OnResult) -> None:
        from trialrun.scope import episode_scope

        ray = import_ray()
        store_url = shared_store_url(episode_scope.get().store)
        refuse_unsupported(plan, store_url)  # `check` again: a caller may skip it
        started = connect(ray, self.options.address)
        actors: list[Any] = []
        try:
            workers = self.options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            batch = self.options.batch or max(1, min(32, self.options.concurrency
                                                     // (2 * workers)))
            if self.options.concurrency < workers:
                log.warning("-j %d runs at most %d episode(s) at once: %d of the %d Ray "
                            "workers will wait; raise -j", self.options.concurrency,
                            self.options.concurrency, workers - self.options.concurrency,
                            workers)
            actors = start_workers(ray, plan, run_id, store_url, self.options, workers)
            await _Dispatch(ray, plan, run_id, iter(todo), actors, self.options, batch,
                            on_result).run()
        finally:
            for actor in actors:
                try:
                    ray.kill(actor, no_restart=True)
                except Exception:  # noqa: BLE001 - the cluster may be gone; it ends them
                    pass
            if started:
                ray.shutdown()


def connect(ray: Any, address: str | None) -> bool:
    """Join the cluster (or start a local Ray); True if this call connected, so the run
    disconnects at its end (a caller's own `ray.init` is left alone)."""
    if ray.is_initialized():
        return False
    try:
        # Workers' prints stay in the session's logs: the driver's terminal has the progress.
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                 **({} if address or os.environ.get("RAY_ADDRESS")
                    else {"include_dashboard": False}))
    except Exception as e:  # noqa: BLE001 - Ray's own errors vary by version: one line each
        where = address or os.environ.get("RAY_ADDRESS") or "a local Ray"
        hint = "; the cluster uses token auth: set RAY_AUTH_MODE=token here too" \
            if "auth" in str(e).lower() else ""
        raise InfraError(f"ray: cannot connect to {where}: {first_line(e)}{hint}") from None
    return True


def reachable(address: str | None) -> None:
    """A HOST:PORT that nothing answers at fails here in seconds: Ray itself retries the
    connection for minutes."""
    import socket

    if not address or "://" in address or address in ("auto", "local") or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except (OSError, ValueError) as e:
        raise InfraError(f"ray: nothing answers at {address} ({e}): is the cluster's head "
                         "running there (`ray start --head`)?") from None


def shared_store_url(store: Any) -> str | None:
    """The store's URL as a worker can open it (an SQLite path made absolute), or None for
    an in-memory store, which no other process can see."""
    if store is None:
        return None
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            return None
        url = url.set(database=os.path.abspath(url.database))
    return url.render_as_string(hide_password=False)


def refuse_unsupported(plan: RunPlan, store_url: str | None) -> None:
    if store_url is not None:
        return
    for name, sp in plan.scenarios.items():
        if getattr(sp.loaded.human_cls, "name", "") == "reviewer":
            raise BadInput(f"--executor ray: scenario {name!r} has a reviewer human, who "
                           "answers through the run's store, and an in-memory store cannot "
                           "be shared with workers: use an SQLite file or PostgreSQL")


def start_workers(ray: Any, plan: RunPlan, run_id: str, store_url: str | None,
                  opts: RayOptions, n: int) -> list[Any]:
    """`n` actors, each with the plan rebuilt; a worker that cannot build it (a plugin not
    installed on its node) stops the run here, in one line, before any episode."""
    from trialrun.agents.tape import current_tape

    spec = {"sources": plan.sources(), "overrides": plan.overrides, "limit": plan.limit,
            "run_id": run_id, "store_url": store_url,
            "options": ExecutorOptions.model_validate(opts.model_dump(
                include=set(ExecutorOptions.model_fields))).model_dump()}
    tape = current_tape.get()  # --replay-from: the recording goes to every worker, once
    tape_ref = ray.put(tape) if tape is not None else None
    per_actor = max(1, opts.concurrency)
    worker_cls = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0,
                            max_concurrency=per_actor)(EpisodeWorker)
    actors = [worker_cls.remote(spec, tape_ref) for _ in range(n)]
    try:
        ray.get([a.ready.remote() for a in actors], timeout=READY_TIMEOUT_S)
    except (ray.exceptions.RayError, TimeoutError) as e:
        for a in actors:
            ray.kill(a, no_restart=True)
        if isinstance(e, TimeoutError):  # ray's GetTimeoutError is one
            cpus = int(ray.cluster_resources().get("CPU", 0))
            raise InfraError(f"ray: {n} worker(s) of one CPU each did not start within "
                             f"{READY_TIMEOUT_S:.0f} s (the cluster has {cpus} CPU(s)): "
                             "ask for fewer with --workers") from None
        raise InfraError(f"ray: a worker could not start: {first_line(e)}") from None
    return actors


def first_line(e: BaseException) -> str:
    cause = getattr(e, "cause", None) or e  # a RayTaskError wraps the worker's exception
    text = f"{type(cause).__name__}: {cause}".strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # A worker's traceback ends with the error itself; keep that line.
    return lines[-1] if lines and lines[0].startswith("Traceback") else (lines[0] if lines
                                                                       else type(e).__name__)


# --- the driver's side: keys out, results in, lost episodes sent again ----------------------
@dataclass
class _Call:
    actor: int
    keys: list[EpisodeKey]
    lost: list[int]  # per key: how many times a worker died under it


@dataclass
class _Dispatch:
    ray: Any
    plan: RunPlan
    run_id: str
    keys: Iterator[EpisodeKey]
    actors: list[Any]
    opts: RayOptions
    batch: int
    on_result: OnResult
    inflight: dict[Any, _Call] = field(default_factory=dict)
    load: list[int] = field(default_factory=list)  # episodes in flight per actor
    running: int = 0  # sum(load)
    retry: deque[tuple[float, EpisodeKey, int]] = field(default_factory=deque)
    exhausted: bool = False

    async def run(self) -> None:
        self.load = [0] * len(self.actors)
        while True:
            self._fill()
            if not self.inflight:
                if not self.retry:
                    return
                await anyio.sleep(max(0.0, self.retry[0][0] - time.monotonic()))
                continue
            refs = list(self.inflight)
            timeout = _WAIT_S if not self.retry else max(
                0.0, min(_WAIT_S, self.retry[0][0] - time.monotonic()))

            def wait(ray: Any = self.ray, refs: list[Any] = refs, run_id: str = self.run_id,
                     timeout: float = timeout) -> list[tuple[Any, Any, BaseException | None]]:
                """Calls that ended, with their results fetched (off the event loop)."""
                try:
                    done, rest = ray.wait(refs, num_returns=1, timeout=timeout)
                    if done and rest:  # everything else already back, in the same round
                        more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                        done += more
                except Exception as e:  # noqa: BLE001 - the cluster itself, not a worker
                    raise InfraError(f"ray: lost the cluster ({first_line(e)}); finished "
                                     "episodes are stored: go on with `trialrun run "
                                     f"--resume {run_id} --executor ray`") from None
                out = []
                for ref in done:
                    try:
                        out.append((ref, ray.get(ref), None))
                    except ray.exceptions.RayError as e:  # the worker died, or its node
                        out.append((ref, None, e))
                return out

            for ref, payloads, lost in await anyio.to_thread.run_sync(
                    wait, abandon_on_cancel=True):
                await self._collect(self.inflight.pop(ref), payloads, lost)

    def _in_flight(self) -> int:
        return self.running + len(self.retry)

    def _fill(self) -> None:
        now = time.monotonic()
        # Lost episodes first, each alone: one that kills its worker takes no other with it.
        while self.retry and self.retry[0][0] <= now:
            _, key, lost = self.retry.popleft()
            self._submit([key], [lost])
        while not self.exhausted and self._in_flight() < self.opts.concurrency:
            room = min(self.batch, self.opts.concurrency - self._in_flight())
            keys = [k for _, k in zip(range(room), self.keys, strict=False)]
            if len(keys) < room:
                self.exhausted = True
            if keys:
                self._submit(keys, [0] * len(keys))

    def _submit(self, keys: list[EpisodeKey], lost: list[int]) -> None:
        actor = min(range(len(self.actors)), key=self.load.__getitem__)
        paused = {str(k): self.plan.resume_from[str(k)].model_dump_json()
                  for k in keys if str(k) in self.plan.resume_from}
        ref = self.actors[actor].run.remote(
            [(k.scenario, k.task, k.seed, k.trial, n) for k, n in zip(keys, lost, strict=True)],
            paused)
        self.inflight[ref] = _Call(actor, keys, lost)
        self.load[actor] += len(keys)
        self.running += len(keys)

    async def _collect(self, call: _Call, payloads: Any, lost_with: BaseException | None
                       ) -> None:
        self.load[call.actor] -= len(call.keys)
        self.running -= len(call.keys)
        if lost_with is not None:
            why = f"ray worker lost: {first_line(lost_with)}"
            for key, lost in zip(call.keys, call.lost, strict=True):
                lost += 1
                if lost < self.opts.max_attempts:
                    delay = self.opts.retry_backoff_s * 2 ** (lost - 1)
                    self.retry.append((time.monotonic() + delay, key, lost))
                else:
                    await self._deliver(infra_error_result(
                        self.plan.scenarios[key.scenario], key, why, lost))
            self.retry = deque(sorted(self.retry, key=lambda r: r[0]))
            return
        for shipped in payloads:
            await self._deliver(shipped_result(shipped))

    async def _deliver(self, result: EpisodeResult) -> None:
        out = self.on_result(result)
        if out is not None:
            await out


# --- the worker's side: a Ray actor (wrapped with ray.remote at run time) ------------------
class EpisodeWorker:
    """The plan rebuilt once per worker process; episodes of a call run concurrently on the
    actor's event loop, as the local executor runs them."""

    def __init__(self, spec: dict[str, Any], tape: Any = None) -> None:
        from trialrun.graders.judge import JudgeCache

        self.run_id: str = spec["run_id"]
        self.plan = RunPlan.from_sources(spec["sources"], spec["overrides"], spec["limit"],
                                         origin=f"<run {self.run_id}>")
        self.options = ExecutorOptions.model_validate(spec["options"])
        self.store = WorkerStore(spec["store_url"], self.run_id) if spec["store_url"] else None
        self.judge_cache = JudgeCache(self.store)  # kept across calls, as the driver's is
        self.tape = tape
        settle_heap()  # an actor lives for one run

    async def ready(self) -> int:
        return os.getpid()

    async def run(self, keys: list[tuple[str, str, int, int, int]],
                  paused: dict[str, str]) -> list[Shipped]:
        """Per key (scenario, task, seed, trial, tries lost with a worker before): the
        result as `run_to_ship` packs it (no steps; its store rows, built here, so the
        driver only inserts them)."""
        from trialrun.agents.tape import use_tape
        from trialrun.graders.judge import use_judge_cache
        from trialrun.scope import EpisodeScope, episode_scope

        out: list[Any] = [None] * len(keys)

        async def one(i: int, key: EpisodeKey, lost: int) -> None:
            out[i] = await run_to_ship(self.plan, key, self.run_id, self.options,
                                       paused.get(str(key)) or None, lost)

        token = episode_scope.set(EpisodeScope(store=self.store, run_id=self.run_id))
        try:
            with ExitStack() as stack:
                stack.enter_context(use_judge_cache(self.judge_cache))
                if self.tape is not None:
                    stack.enter_context(use_tape(self.tape))
                async with anyio.create_task_group() as tg:
                    for i, (scenario, task, seed, trial, lost) in enumerate(keys):
                        tg.start_soon(one, i, EpisodeKey(scenario=scenario, task=task,
                                                         seed=seed, trial=trial), lost)
        finally:
            episode_scope.reset(token)
        return out


class WorkerStore:
    """The run's store as a worker sees it: opened on first use (most episodes never touch
    it), and only if it is the driver's: an SQLite file that is not on this machine, or a
    database without the run, is an infrastructure error, not a fresh empty store."""

    def __init__(self, url: str, run_id: str) -> None:
        self._url = url
        self._run_id = run_id
        self._store: Any = None

    def _open(self) -> Any:
        if self._store is None:
            from sqlalchemy.engine import make_url

            from trialrun.store import Store

            url = make_url(self._url)
            where = url.render_as_string(hide_password=True)
            if url.get_backend_name() == "sqlite" and not os.path.exists(url.database or ""):
                raise InfraError(f"the run's store {where} is not on this worker's machine: "
                                 "a cluster of several machines needs a shared store "
                                 "(PostgreSQL)")
            store = Store(self._url)
            try:
                store.get_run(self._run_id)
            except KeyError:
                raise InfraError(f"the store {where} a worker opened does not hold run "
                                 f"{self._run_id}: use one store every node reaches") from None
            self._store = store
        return self._store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._open(), name)


__all__ = ["INSTALL", "EpisodeWorker", "RayExecutor", "RayOptions", "import_ray",
           "shared_store_url"]
