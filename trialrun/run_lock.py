"""One process runs a run at a time: a lease in the run's row of the store.

Taking the lock is one conditional UPDATE (free, lapsed, or held by a process of this host
that is gone), so two processes, or two hosts on one PostgreSQL, cannot both win. The
holder renews the lease from a thread; a holder killed with SIGKILL leaves a lease that
frees itself: at once for a process of the same host (its pid is gone), after `lease_s`
for one elsewhere.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import or_, update
from sqlmodel import Session

from trialrun.errors import NotFound, RunBusy

if TYPE_CHECKING:
    from trialrun.store import Store

HOST = socket.gethostname()


def _holder(owner: str) -> tuple[int | None, str]:
    """(pid, host) of an owner string "pid@host/nonce"."""
    who = owner.split("/", 1)[0]
    pid, _, host = who.partition("@")
    return (int(pid) if pid.isdigit() else None), host


def _gone(owner: str) -> bool:
    """The holder is a process of this host that no longer exists."""
    pid, host = _holder(owner)
    if pid is None or host != HOST:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class RunLock:
    """`with store.lock_run(run_id):` — see Store.lock_run."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.owner = f"{os.getpid()}@{HOST}/{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _update(self, *where: object, **values: object) -> int:
        from trialrun.store import RunRow

        with Session(self.store.engine) as s:
            n = s.execute(update(RunRow).where(RunRow.id == self.run_id, *where)
                          .values(**values)).rowcount
            s.commit()
            return n

    def acquire(self) -> None:
        from trialrun.store import RunRow

        now = time.time()
        if self._update(or_(RunRow.owner.is_(None), RunRow.heartbeat.is_(None),
                            RunRow.heartbeat < now - self.store.lease_s),
                        owner=self.owner, heartbeat=now):
            return self._renew_in_background()
        with Session(self.store.engine) as s:
            row = s.get(RunRow, self.run_id)
        if row is None:
            raise NotFound(f"no run {self.run_id!r} in {self.store.safe_url}")
        held = row.owner or ""
        # Its holder died on this host: take it over, if no one else did first.
        if held and _gone(held) and self._update(RunRow.owner == held, owner=self.owner,
                                                 heartbeat=now):
            return self._renew_in_background()
        pid, host = _holder(held)
        ago = max(0.0, now - (row.heartbeat or now))
        who = f"process {pid} on {host}" if pid is not None else held or "another process"
        raise RunBusy(f"run {self.run_id} is busy: {who} is running it (alive {ago:.0f}s ago). "
                      "Wait for it to end, or stop it; a lock whose process died frees itself "
                      f"(at once on {host}, within {self.store.lease_s:.0f}s elsewhere)")

    def _renew_in_background(self) -> None:
        from trialrun.store import RunRow

        def renew() -> None:
            while not self._stop.wait(self.store.lease_s / 4):
                try:
                    self._update(RunRow.owner == self.owner, heartbeat=time.time())
                except Exception:  # noqa: BLE001, S112 - the run's own writes report the store's faults
                    continue

        self._thread = threading.Thread(target=renew, name=f"lock-{self.run_id}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        from trialrun.store import RunRow

        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._update(RunRow.owner == self.owner, owner=None, heartbeat=None)
        except Exception:  # noqa: BLE001, S110 - a full disk: the lease lapses by itself
            pass

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def shown_status(row: object, lease_s: float) -> str:
    """A run's status as people should read it: a run stored as "running" whose holder is
    gone (killed, its lease lapsed) is "interrupted" — `--resume` goes on with it."""
    status = getattr(row, "status", "")
    if status != "running":
        return status
    owner, beat = getattr(row, "owner", None), getattr(row, "heartbeat", None)
    if not owner or beat is None or beat < time.time() - lease_s or _gone(owner):
        return "interrupted"
    return status
