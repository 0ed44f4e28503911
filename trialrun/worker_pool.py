"""Worker processes for the local executor: every core runs episodes, one process writes.

The parent hands each worker keys in small chunks (a bounded window, pulled lazily from the
plan's iterator, so memory stays flat in the plan's size) and gets back each episode's
summary and its store rows, built where it ran; the runner's `on_result` stores them, so the
store keeps one writer and its exactly-once guarantee. Each worker rebuilds the plan once
from its scenarios' text (`RunPlan.from_sources`), runs `concurrency / workers` episodes at
once on its own event loop, and opens the store by URL only for what an episode reads or
queues in it (a reviewer's queue item, the LLM judge's cache).

A worker that dies (killed, out of memory, a crash in native code) is an infrastructure
fault for the episodes it had in flight: they go to a fresh worker, and after
`max_attempts` deaths come back as `error` episodes, never scored.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import nullcontext
from multiprocessing.connection import Connection
from typing import Any

import anyio

from trialrun.executors import (
    ExecutorOptions,
    OnResult,
    Shipped,
    infra_error_result,
    run_to_ship,
    settle_heap,
    shipped_result,
)
from trialrun.plan import RunPlan
from trialrun.trajectory import EpisodeKey

log = logging.getLogger("trialrun")

# Results go back in batches: at most this many, or this long after the first one waits.
BATCH = 32
BATCH_DELAY_S = 0.05


class WorkerPool:
    def __init__(self, plan: RunPlan, run_id: str, options: ExecutorOptions, workers: int,
                 store_url: str | None) -> None:
        self.plan = plan
        self.run_id = run_id
        self.options = options
        self.n = workers
        self.per_worker = max(1, math.ceil(options.concurrency / workers))
        # Keys handed to a worker and not yet back: its concurrency plus a chunk queued, so
        # it never waits for the next chunk.
        self.chunk = BATCH
        self.window = self.per_worker + 2 * self.chunk
        self.store_url = store_url
        self.procs: list[Any] = []
        self.failure = ""
        self.suspects: deque[EpisodeKey] = deque()  # in flight when a worker died
        self.deaths: dict[str, int] = {}

    def _init_message(self) -> tuple[Any, ...]:
        o = self.options
        return ("init", list(sys.path), self.plan.sources(), self.plan.overrides,
                self.plan.limit, self.run_id, self.store_url,
                o.model_copy(update={"concurrency": self.per_worker}).model_dump())

    def _spawn(self) -> tuple[subprocess.Popen[bytes], _Link]:
        """A fresh interpreter running `worker_main` (not multiprocessing's spawn, which
        re-imports the caller's main script: a script without a main guard would run again),
        talking over two pipes of its own (stdout stays the user's). `-P`: the working
        directory is not put first on its path, so a folder named `trialrun` there (a
        checkout of another version) cannot stand in for the parent's trialrun."""
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        proc = subprocess.Popen([sys.executable, "-P", "-m", "trialrun.worker_pool",
                                 str(p2c_r), str(c2p_w)], pass_fds=(p2c_r, c2p_w),
                                stdin=subprocess.DEVNULL)
        os.close(p2c_r)
        os.close(c2p_w)
        link = _Link(Connection(p2c_w, readable=False), Connection(c2p_r, writable=False))
        link.send(self._init_message())
        return proc, link

    async def _ready(self, proc: Any, conn: Any) -> str:
        """'' once the worker has built its plan, else why it could not."""
        try:
            msg = await anyio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
        except (EOFError, OSError):
            return f"exit code {await anyio.to_thread.run_sync(_wait, proc)}"
        return "" if msg[0] == "ready" else msg[1]

    async def start(self) -> bool:
        """Start every worker; False (and `failure`) if one cannot build the plan."""
        started = [self._spawn() for _ in range(self.n)]
        self.procs = started
        answers = [await self._ready(p, c) for p, c in started]
        bad = next((a for a in answers if a), "")
        if bad:
            self.failure = bad
            self.close()
            return False
        return True

    def close(self) -> None:
        for _proc, conn in self.procs:
            try:
                conn.send(("stop",))
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 2
        for proc, conn in self.procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(2)
            conn.close()
        self.procs = []

    async def run(self, keys: Iterator[EpisodeKey], on_result: OnResult) -> None:
        try:
            async with anyio.create_task_group() as tg:
                for slot in range(self.n):
                    tg.start_soon(self._drive, slot, keys, on_result)
        finally:
            self.close()

    def _take(self, keys: Iterator[EpisodeKey], n: int) -> list[EpisodeKey]:
        out: list[EpisodeKey] = []
        for key in keys:  # one shared iterator: each key goes to exactly one worker
            out.append(key)
            if len(out) >= n:
                break
        return out

    async def _drive(self, slot: int, keys: Iterator[EpisodeKey], on_result: OnResult
                     ) -> None:
        """Feed one worker and take its results; replace it if it dies. After a death, the
        episodes it had in flight run one at a time (`alone`), so that only an episode that
        kills its worker by itself is charged for it."""
        proc, conn = self.procs[slot]
        inflight: dict[str, EpisodeKey] = {}
        alone: EpisodeKey | None = None
        while True:
            try:
                if alone is None and self.suspects and not inflight:
                    alone = self.suspects.popleft()
                    inflight[str(alone)] = alone
                    conn.send(("run", [(_key_tuple(alone), self._paused(alone))]))
                elif alone is None and not self.suspects \
                        and len(inflight) + self.chunk <= self.window:
                    chunk = self._take(keys, self.window - len(inflight))
                    if chunk:
                        inflight.update((str(k), k) for k in chunk)
                        conn.send(("run", [(_key_tuple(k), self._paused(k)) for k in chunk]))
                if not inflight:
                    if self.suspects:
                        continue
                    return  # nothing left to hand out and nothing out: this worker is done
                msg = await anyio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
            except (EOFError, OSError):
                proc, conn = await self._replace(slot, proc, inflight, alone, on_result)
                alone = None
                continue
            for shipped in msg[1]:
                result = shipped_result(shipped)
                if inflight.pop(str(result.key), None) is alone:
                    alone = None
                out = on_result(result)
                if out is not None:
                    await out

    def _paused(self, key: EpisodeKey) -> str | None:
        paused = self.plan.resume_from.get(str(key))
        return paused.model_dump_json() if paused is not None else None

    async def _replace(self, slot: int, proc: Any, inflight: dict[str, EpisodeKey],
                       alone: EpisodeKey | None, on_result: OnResult) -> tuple[Any, Any]:
        """A worker died: an infrastructure fault. Its episodes in flight run again, each
        alone; one that kills its worker alone `max_attempts` times comes back as an `error`
        episode, never scored. A fresh worker takes over."""
        code = await anyio.to_thread.run_sync(_wait, proc)
        self.procs[slot][1].close()
        log.warning("worker process %s died (exit code %s) with %d episode(s) in flight",
                    proc.pid, code, len(inflight))
        if alone is None:
            self.suspects.extend(inflight.values())
        else:
            name = str(alone)
            deaths = self.deaths[name] = self.deaths.get(name, 0) + 1
            if deaths < self.options.max_attempts:
                self.suspects.append(alone)
            else:
                out = on_result(infra_error_result(
                    self.plan.scenarios[alone.scenario], alone,
                    f"the worker process running this episode died (exit code {code}), "
                    f"{deaths} time(s)", deaths))
                if out is not None:
                    await out
        inflight.clear()
        new = self._spawn()
        self.procs[slot] = new
        why = await self._ready(*new)
        if why:
            raise RuntimeError(f"a replacement worker process could not start: {why}")
        return new


def _key_tuple(k: EpisodeKey) -> tuple[str, str, int, int]:
    return (k.scenario, k.task, k.seed, k.trial)


def _wait(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


class _Link:
    """Both ends of a worker's two pipes, used as one duplex connection."""

    def __init__(self, out: Connection, into: Connection) -> None:
        self.out, self.into = out, into

    def send(self, obj: Any) -> None:
        self.out.send(obj)

    def recv(self) -> Any:
        return self.into.recv()

    def close(self) -> None:
        self.out.close()
        self.into.close()


# --- the worker process ----------------------------------------------------------------------
def worker_main(read_fd: int, write_fd: int) -> None:
    """A worker process: build the plan, then run the keys it is sent until told to stop."""
    # Ctrl-C reaches the whole process group: the parent decides what happens (it stops
    # the workers and marks the run interrupted).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = _Link(Connection(write_fd, readable=False), Connection(read_fd, writable=False))
    try:
        anyio.run(_serve, conn)
    except (EOFError, OSError):
        pass  # the parent went away


async def _serve(conn: Any) -> None:
    from trialrun.scope import EpisodeScope, episode_scope

    _, path, sources, overrides, limit, run_id, url, opts = conn.recv()
    sys.path[:] = path  # the parent's: plugins named `module:Class` import alike
    try:
        plan = RunPlan.from_sources(sources, overrides, limit)
        options = ExecutorOptions.model_validate(opts)
        store = None
        if url:
            from trialrun.store import Store

            store = Store(url)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which runs in-process
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready",))
    settle_heap()  # a worker lives for one run
    episode_scope.set(EpisodeScope(store=store, run_id=run_id))
    send, receive = anyio.create_memory_object_stream[tuple[EpisodeKey, str | None]](math.inf)
    outbox: list[Shipped] = []
    first_wait = [0.0]

    def flush() -> None:
        if outbox:
            try:
                conn.send(("results", list(outbox)))
            except OSError:
                pass  # the parent is gone: nothing can be stored; `--resume` reruns these
            outbox.clear()

    async def listen() -> None:
        async with send:
            while True:
                try:
                    msg = await anyio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
                except (EOFError, OSError):
                    return  # the parent is gone: finish (and close) what is in flight
                if msg[0] != "run":
                    return
                for (scenario, task, seed, trial), paused in msg[1]:
                    send.send_nowait((EpisodeKey(scenario=scenario, task=task, seed=seed,
                                                 trial=trial), paused))

    busy = [0]  # episodes under way in this worker

    async def flush_old() -> None:  # results never wait long for a batch to fill
        while True:
            await anyio.sleep(BATCH_DELAY_S)
            if outbox and time.monotonic() - first_wait[0] >= BATCH_DELAY_S:
                flush()

    async def work() -> None:
        async for key, paused in receive:
            busy[0] += 1
            outbox.append(await run_to_ship(plan, key, run_id, options, paused))
            busy[0] -= 1
            now = time.monotonic()
            if len(outbox) == 1:
                first_wait[0] = now
            if len(outbox) >= BATCH or now - first_wait[0] >= BATCH_DELAY_S or (
                    busy[0] == 0 and receive.statistics().current_buffer_used == 0):
                flush()  # a full batch, an old one, or the last episode this worker holds

    judge = nullcontext()
    if store is not None:
        from trialrun.graders.judge import JudgeCache, use_judge_cache

        judge = use_judge_cache(JudgeCache(store))
    with judge:
        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            tg.start_soon(flush_old)
            async with receive:
                async with anyio.create_task_group() as workers:
                    for _ in range(options.concurrency):
                        workers.start_soon(work)
            tg.cancel_scope.cancel()
    flush()


if __name__ == "__main__":
    worker_main(int(sys.argv[1]), int(sys.argv[2]))
