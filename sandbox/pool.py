"""A bounded pool of warm, started containers that hides start-up latency.

`acquire(spec, labels)` hands out a docker sandbox: from the pool when `spec.pool > 0` and a
warm one is ready, else a freshly started one. Closing a pooled sandbox gives it back to a
background worker that resets it (kills every process, empties workspace, /tmp and
/dev/shm, checks that nothing is left); only a container that passed the reset, had no
violation and has time left before its expiry goes back to the idle list. Anything else
is removed and replaced. So an episode never gets another episode's container un-reset.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
import uuid
from collections import deque

from trialrun.sandbox.backend import SandboxFault, SandboxSpec
from trialrun.sandbox.docker_backend import EXPIRY_GRACE_S, DockerSandbox, container_name

IDLE_TTL_S = 3600.0  # how long a warm container may wait in the pool
_WORKERS = 2  # threads that start and reset containers in the background


def pool_key(spec: SandboxSpec, image: str, run: str) -> str:
    """Containers are interchangeable iff image, limits, env and run are the same."""
    blob = "\n".join([image, spec.limits.model_dump_json(), repr(sorted(spec.env.items())), run])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_STOP = object()  # tells a worker to exit


class Pool:
    """Up to `size` containers cycle: idle -> handed out -> reset -> idle.

    The pool starts containers so that idle + being started/reset + handed out reaches
    `size`; when more episodes run at once than that, extras start cold and join the pool
    on their release if it has room.
    """

    def __init__(self, spec: SandboxSpec, image: str, size: int, run_labels: dict[str, str]):
        # The pool's containers do no setup: files and setup commands are per episode.
        self.spec = spec.model_copy(update={"setup": [], "files": {}})
        self.image = image
        self.size = size
        self.run_labels = {**run_labels, "pool": "1"}
        self.lifetime = IDLE_TTL_S + spec.limits.episode_timeout_s + EXPIRY_GRACE_S
        self.idle: deque[DockerSandbox] = deque()
        self.pending = 0  # containers being started or reset
        self.out = 0  # containers handed out to episodes
        self.cv = threading.Condition()
        self.jobs: queue.Queue = queue.Queue()  # None: start one; a box: reset it; _STOP
        self.stopped = False
        self.errors: list[str] = []
        self.workers = [
            threading.Thread(target=self._work, name=f"trialrun-pool-{i}", daemon=True)
            for i in range(_WORKERS)
        ]
        for w in self.workers:
            w.start()
        with self.cv:
            self._top_up_locked()

    # --- handing out and taking back -----------------------------------------------
    def acquire(self, labels: dict[str, str] | None) -> DockerSandbox:
        need = self.spec.limits.episode_timeout_s + 60
        box = None
        with self.cv:
            while self.idle:
                cand = self.idle.popleft()
                if cand.expires - time.time() >= need:
                    box = cand
                    break
                self.pending += 1
                self.jobs.put(cand)  # too close to expiry: the worker removes it
            self.out += 1
            self._top_up_locked()
        name = container_name(labels)
        try:
            if box is None:  # nothing warm: start one now (the cold path)
                box = self._new(name)
            else:
                try:
                    box.rename(name)
                except Exception:  # noqa: BLE001 - the name is cosmetic; labels hold the run
                    pass
        except BaseException:
            with self.cv:
                self.out -= 1
            raise
        box.closed = False
        box.begin_episode(labels)
        return box

    def release(self, box: DockerSandbox) -> bool:
        """Take a closed sandbox back to reset it; False: the caller removes it."""
        with self.cv:
            self.out -= 1
            if self.stopped or box.dirty:
                self._top_up_locked()
                return False
            self.pending += 1
            self.jobs.put(box)
        return True

    # --- background work -----------------------------------------------------------
    def _new(self, name: str | None = None) -> DockerSandbox:
        box = DockerSandbox(
            self.spec, self.run_labels, self.image, lifetime=self.lifetime,
            name=name or f"trialrun-pool-{uuid.uuid4().hex[:8]}",
        )
        box.pool = self
        return box

    def _top_up_locked(self) -> None:
        if self.stopped:
            return
        for _ in range(self.size - len(self.idle) - self.pending - self.out):
            self.pending += 1
            self.jobs.put(None)

    def _work(self) -> None:
        while (job := self.jobs.get()) is not _STOP:
            box: DockerSandbox | None = None
            if not self.stopped:
                try:
                    box = self._new() if job is None else self._recycle(job)
                except SandboxFault as e:
                    self.errors.append(str(e))
                    time.sleep(0.5)  # the daemon is struggling: do not spin
            elif job is not None:
                job.destroy()
            with self.cv:
                self.pending -= 1
                if box is not None and not self.stopped and len(self.idle) < self.size:
                    self.idle.append(box)
                    box = None
                self._top_up_locked()
                self.cv.notify_all()
            if box is not None:
                box.destroy()

    def _recycle(self, box: DockerSandbox) -> DockerSandbox | None:
        left = box.expires - time.time()
        if box.dirty or left < self.spec.limits.episode_timeout_s + 60 or not box.reset():
            box.destroy()
            return None
        try:
            box.rename(f"trialrun-pool-{uuid.uuid4().hex[:8]}")
        except Exception:  # noqa: BLE001 - cosmetic
            pass
        return box

    def wait_ready(self, n: int | None = None, timeout: float = 60.0) -> bool:
        """Block until `n` (default: size) containers are idle; False on timeout."""
        n = self.size if n is None else n
        deadline = time.monotonic() + timeout
        with self.cv:
            while len(self.idle) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(left)
        return True

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop the workers (letting each finish its job) and remove idle containers."""
        with self.cv:
            self.stopped = True
            idle, self.idle = list(self.idle), deque()
        for _ in self.workers:
            self.jobs.put(_STOP)
        for box in idle:
            box.destroy()
        deadline = time.monotonic() + timeout
        for w in self.workers:
            if w is not threading.current_thread():
                w.join(max(0.0, deadline - time.monotonic()))


_pools: dict[str, Pool] = {}
_pools_lock = threading.Lock()


def acquire(spec: SandboxSpec, labels: dict[str, str] | None = None) -> DockerSandbox:
    """A started docker sandbox for one episode: warm from a pool if `spec.pool > 0`."""
    from trialrun.sandbox.image import resolve_image

    image = resolve_image(spec)
    if spec.pool == 0:
        return DockerSandbox(spec, labels, image)
    labels = dict(labels or {})
    run = labels.get("run") or labels.get("trialrun.run") or ""
    key = pool_key(spec, image, run)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = Pool(spec, image, spec.pool, {"run": run} if run else {})
    return pool.acquire(labels)


def shutdown_pools() -> None:
    """Remove every warm container of this process (the runner calls this at the end)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for p in pools:
        p.shutdown()
