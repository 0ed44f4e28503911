"""One process runs a run at a time (issue 14): two `--resume` of one run at once — the second
is refused in one line naming the process and host that hold it; a holder killed with SIGKILL
does not block the run forever."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.helpers import RETAIL, run_source
from trialrun.errors import RunBusy
from trialrun.store import RunRow, Store

HOLD = """
import sys, time
from trialrun.store import Store
with Store(sys.argv[1]).lock_run(sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def stored(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    summary = run_source(store, (RETAIL / "refund_in_window.yaml").read_text(), seeds=2)
    return store, summary.run_id


def _hold(store: Store, run_id: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, store.url, run_id],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def test_a_second_holder_is_refused_and_the_first_frees_it(stored):
    store, run_id = stored
    with store.lock_run(run_id):
        with pytest.raises(RunBusy, match=rf"run {run_id} is busy: process {os.getpid()} on "
                                          rf"{socket.gethostname()}"):
            with store.lock_run(run_id):
                pass
    with store.lock_run(run_id):  # released: free again
        pass
    assert store.get_run(run_id).owner is None


def test_a_holder_killed_on_this_host_frees_the_run_at_once(stored):
    store, run_id = stored
    p = _hold(store, run_id)
    try:
        with pytest.raises(RunBusy, match=f"process {p.pid} on"):
            store.lock_run(run_id).acquire()
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    with store.lock_run(run_id):  # its pid is gone: no waiting for the lease
        assert store.get_run(run_id).owner.startswith(f"{os.getpid()}@")


def test_a_holder_elsewhere_blocks_until_its_lease_lapses(stored):
    store, run_id = stored
    store.lease_s = 0.5
    from sqlmodel import Session

    with Session(store.engine) as s:  # a process on another host, alive a moment ago
        row = s.get(RunRow, run_id)
        row.owner, row.heartbeat = "4242@elsewhere/abcd", time.time()
        s.add(row)
        s.commit()
    with pytest.raises(RunBusy, match="process 4242 on elsewhere"):
        store.lock_run(run_id).acquire()
    time.sleep(0.6)
    with store.lock_run(run_id):
        pass


def test_the_holder_renews_its_lease(stored):
    store, run_id = stored
    store.lease_s = 0.4
    with store.lock_run(run_id):
        first = store.get_run(run_id).heartbeat
        time.sleep(0.5)  # past a lease: renewed meanwhile, so still held
        assert store.get_run(run_id).heartbeat > first
        with pytest.raises(RunBusy):
            store.lock_run(run_id).acquire()


def _runner_locks() -> bool:
    import inspect

    import trialrun.runner

    return "lock_run" in inspect.getsource(trialrun.runner)


@pytest.mark.skipif(not _runner_locks(), reason="run_episodes does not take the run lock yet")
def test_two_resumes_of_one_run_the_second_says_busy(stored, tmp_path):
    from tests.test_cli import trialrun

    store, run_id = stored
    p = _hold(store, run_id)
    try:
        out = trialrun("run", "--resume", run_id, "--db", store.url, "--no-progress",
                       cwd=tmp_path)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert out.returncode == 2, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and f"run {run_id} is busy: process {p.pid} on " in lines[0]
    assert "Traceback" not in out.stderr and "ExceptionGroup" not in out.stderr
    again = trialrun("run", "--resume", run_id, "--db", store.url, "--no-progress",
                     cwd=tmp_path)
    assert again.returncode in (0, 1), again.stderr  # the holder died: free at once


def test_a_run_whose_holder_died_is_listed_as_interrupted(stored):
    """`trialrun runs` must not show a killed run as running forever: stored "running" with
    its holder gone reads "interrupted" (what `--resume` is for); a live holder reads
    "running"."""
    store, run_id = stored

    def listed() -> str:
        out = subprocess.run([sys.executable, "-m", "trialrun.cli", "runs", "--db", store.url],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "COLUMNS": "200"}).stdout
        return next(line for line in out.splitlines() if run_id in line)

    store.set_status(run_id, "running")
    holder = _hold(store, run_id)
    try:
        assert "running" in listed()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    line = listed()
    assert "interrupted" in line and "running" not in line
