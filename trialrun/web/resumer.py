"""`trialrun serve --resume-answered`: the server goes on with runs whose reviews are answered.

Every few seconds it looks at the runs "waiting for review"; a run all of whose waiting items
are answered (or past their deadline, which the fallback answers) is claimed with one
conditional UPDATE of its status ('waiting for review' -> 'running') and resumed with
`run_episodes(..., resume=run_id)` in a thread of its own (agents and in-process worlds must
not hold up the pages). The claim keeps two servers apart, and a server away from a run that
a `trialrun run --resume` has set 'running'; the run's lock (`Store.lock_run`, a lease taken
by whoever runs it) keeps a server and a CLI resume that start at the same moment apart: the
second gets RunBusy and leaves the run to the first.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from trialrun.store import Store, claim_run, runs_with_status

__all__ = ["Resumer", "ready_to_resume"]

WAITING = "waiting for review"


def ready_to_resume(store: Store, run_id: str) -> bool:
    """Every paused episode of the run can go on: no item waits for a person any more."""
    if not store.count_paused(run_id):
        return False
    return all(item.overdue for item in store.reviews(run_id, "pending"))


class Resumer:
    """Polls the store in a daemon thread; each resume runs in a thread of its own."""

    def __init__(self, store: Store, interval_s: float = 2.0) -> None:
        self.store = store
        self.interval_s = interval_s
        self.stop = threading.Event()
        self.active: dict[str, threading.Thread] = {}
        self.done: list[tuple[str, Any]] = []  # (run id, summary or the error), for tests
        self.lock = threading.Lock()
        # Runs a resume left ready to resume again (their paused episodes failed to go on):
        # not retried by this server, or it would try every few seconds for ever.
        self.stuck: set[str] = set()
        self.thread = threading.Thread(target=self._loop, name="trialrun-resumer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop polling and wait for the resumes under way (they store as they go)."""
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout)
        for t in list(self.active.values()):
            t.join(timeout)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - a store hiccup must not end the poller
                print(f"trialrun serve: resuming answered runs: {type(e).__name__}: {e}",
                      file=sys.stderr, flush=True)
            self.stop.wait(self.interval_s)

    def tick(self) -> list[str]:
        """Claim and start every run that is ready; the run ids started."""
        started = []
        for run_id in runs_with_status(self.store, WAITING):
            with self.lock:
                if run_id in self.active or run_id in self.stuck \
                        or not ready_to_resume(self.store, run_id):
                    continue
                if not claim_run(self.store, run_id, (WAITING,)):
                    continue  # another process claimed it first
                t = threading.Thread(target=self._resume, args=(run_id,), daemon=True,
                                     name=f"trialrun-resume-{run_id}")
                self.active[run_id] = t
            t.start()
            started.append(run_id)
        return started

    def _resume(self, run_id: str) -> None:
        import anyio

        from trialrun.runner import RunOptions, run_episodes

        try:
            summary = anyio.run(lambda: run_episodes(
                self.store, [], resume=run_id, options=RunOptions(concurrency=4)))
            self.done.append((run_id, summary))
            print(f"trialrun serve: resumed run {run_id}: {summary.ran} episode(s) went on, "
                  f"{summary.paused} paused again", file=sys.stderr, flush=True)
            if ready_to_resume(self.store, run_id):
                self.stuck.add(run_id)
                print(f"trialrun serve: run {run_id}: {summary.errors} paused episode(s) "
                      f"failed to go on; not retried here: `trialrun run --resume {run_id}`",
                      file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - said in one line; the run stays resumable
            self.done.append((run_id, e))
            if type(e).__name__ == "RunBusy":  # another process holds the run's lock: it
                print(f"trialrun serve: run {run_id} is being run by another process; left "
                      "to it", file=sys.stderr, flush=True)  # sets the status when done
                return
            claim_run(self.store, run_id, ("running",), "interrupted")
            print(f"trialrun serve: resuming run {run_id} failed: {type(e).__name__}: {e}; "
                  f"`trialrun run --resume {run_id}` tries again", file=sys.stderr, flush=True)
        finally:
            with self.lock:
                self.active.pop(run_id, None)
