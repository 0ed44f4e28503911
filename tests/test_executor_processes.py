"""Worker processes for the local executor: the same episodes and results as one process, each
planned episode stored exactly once even when a worker is killed mid-run, a worker that keeps
dying is an infrastructure error (never scored) that `--resume` runs again, paused reviews go
on in a worker, and what cannot cross a process boundary is refused in one line."""

from __future__ import annotations

import anyio
import pytest
import yaml

from tests.helpers import RETAIL
from trialrun.errors import BadInput
from trialrun.runner import RunOptions, run_episodes
from trialrun.scenarios.loader import load_scenario_source
from trialrun.store import Store


def crash_source(seeds: int = 40, **world) -> str:
    return yaml.safe_dump({
        "name": "crash", "world": {"type": "tests.crash_world:CrashWorld", **world},
        "tasks": [{"id": "count"}], "agent": {"type": "tests.crash_world:CountAgent"},
        "seeds": seeds})


def go(store: Store, text: str, resume: str | None = None, keep: bool = True, **opts):
    loaded = [] if resume else [load_scenario_source(text, "inline.yaml")]
    return anyio.run(lambda: run_episodes(store, loaded, resume=resume, keep_results=keep,
                                          options=RunOptions(retry_backoff_s=0.0, **opts)))


def stored(store: Store, run_id: str) -> dict[str, tuple]:
    """Every stored episode of a run by key: its outcome and its steps' state digests."""
    out = {}
    for e in store.episodes(run_id):
        steps = store.load_episode(e.id).steps
        out[e.key] = (e.end_reason, e.success, e.n_steps, e.final_digest,
                      tuple(s.state_digest for s in steps), tuple(s.passed for s in steps))
    return out


def test_two_processes_store_what_one_process_stores(tmp_path):
    retail = (RETAIL / "known_error_rates.yaml").read_text().replace("seeds: 20", "seeds: 60")
    one, two = Store(f"sqlite:///{tmp_path / 'one.db'}"), Store(f"sqlite:///{tmp_path / 'two.db'}")
    a = go(one, retail, workers=1, keep=False)
    b = go(two, retail, workers=2, concurrency=4)
    assert a.ran == b.ran == 60 and a.errors == b.errors == 0
    assert stored(one, a.run_id) == stored(two, b.run_id)
    # keep_results hands back whole episodes, steps included, from the workers.
    assert len(b.results) == 60 and all(r.steps for r in b.results)
    assert {str(r.key): r.final_digest for r in b.results} == \
           {k: v[3] for k, v in stored(two, b.run_id).items()}


def test_a_killed_worker_loses_nothing_and_repeats_nothing(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    text = crash_source(40, crash_seeds=[5, 23], marker_dir=str(tmp_path))
    summary = go(store, text, workers=2, concurrency=4)
    assert (tmp_path / "crashed-5").exists() and (tmp_path / "crashed-23").exists()
    keys = [e.key for e in store.episodes(summary.run_id)]
    assert len(keys) == len(set(keys)) == 40  # every planned episode, once
    assert summary.errors == 0  # the episodes in flight ran again on a fresh worker
    # ... with the results one process gives (no worker died there: markers exist now).
    again = go(store, text, workers=1)
    assert stored(store, summary.run_id) == stored(store, again.run_id)


def test_a_worker_that_keeps_dying_is_an_infrastructure_error_then_resumed(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    text = crash_source(12, crash_seeds=[7])
    first = go(store, text, workers=2, concurrency=2, max_attempts=2)
    errors = [e for e in store.episodes(first.run_id) if e.end_reason == "error"]
    assert [e.seed for e in errors] == [7] and errors[0].success is None
    assert "worker process" in errors[0].error and "died" in errors[0].error
    # Other episodes sharing the dead worker's window were retried, not failed.
    assert len(store.episodes(first.run_id)) == 12 and first.errors >= 1
    # --resume runs the error again (it fails again here) and stores nothing twice.
    go(store, "", resume=first.run_id, workers=2, concurrency=2, max_attempts=1)
    keys = [e.key for e in store.episodes(first.run_id)]
    assert len(keys) == len(set(keys)) == 12


def test_a_paused_review_goes_on_in_a_worker(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    doc = yaml.safe_load((RETAIL / "cancel_pending.yaml").read_text())
    doc["agent"] = {"type": "scripted:retail"}
    doc["checkpoints"] = {"policy": "before_irreversible", "on_deny": "abort",
                          "human": {"type": "reviewer"}}
    doc["seeds"], doc["trials"] = 4, 1
    # The reviewer's queue lives in the store: workers queue items through it.
    first = go(store, yaml.safe_dump(doc), workers=2, concurrency=2)
    assert first.paused == 4 and store.get_run(first.run_id).status == "waiting for review"
    items = store.reviews(first.run_id, "pending")
    assert len(items) == 4
    for i, item in enumerate(items):
        store.answer_review(item.id, i % 2 == 0, "ana")
    second = go(store, "", resume=first.run_id, workers=2, concurrency=2)
    assert second.ran == 4 and second.paused == 0
    ends = sorted(e.end_reason for e in store.episodes(first.run_id))
    assert ends == ["aborted", "aborted", "finished", "finished"]
    assert store.get_run(first.run_id).status == "complete"


def test_what_cannot_cross_a_process_boundary_is_refused_or_runs_here(tmp_path):
    text = crash_source(4)
    with pytest.raises(BadInput, match="in-memory store"):
        go(Store("sqlite://"), text, workers=2)
    # Unasked, an in-memory store simply runs in this process.
    assert go(Store("sqlite://"), crash_source(4)).ran == 4

    from trialrun.agents.tape import Tape, use_tape

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    with use_tape(Tape({})), pytest.raises(BadInput, match="recording"):
        go(store, text, workers=2)


def test_a_worker_that_cannot_build_the_plan_falls_back_to_this_process(tmp_path, caplog):
    # A world registered in this process only (not importable by a worker) still runs.
    from tests.crash_world import CrashWorld
    from trialrun.registry import register

    @register("world", "only-here-crash")
    class OnlyHere(CrashWorld):
        pass

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    text = crash_source(6).replace("tests.crash_world:CrashWorld", "only-here-crash")
    summary = go(store, text, workers=2)
    assert summary.ran == 6 and summary.errors == 0
    assert "running in this process" in caplog.text


def test_workers_import_this_trialrun_not_a_folder_of_that_name_in_the_cwd(
        tmp_path, monkeypatch, caplog):
    # e.g. run from the root of a checkout of another version: the workers must not pick it up
    (tmp_path / "trialrun").mkdir()
    (tmp_path / "trialrun" / "__init__.py").write_text("raise SystemExit('another trialrun')")
    monkeypatch.chdir(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    summary = go(store, crash_source(6), workers=2)
    assert summary.ran == 6 and summary.errors == 0
    assert "running in this process" not in caplog.text


DRIVER = """
import sys, anyio
sys.path[:0] = {path!r}
from tests.test_executor_processes import crash_source, go
from trialrun.store import Store
go(Store({url!r}), crash_source(3000), keep=False, workers=2, concurrency=4)
"""


def test_killing_the_parent_mid_run_then_resuming_stores_each_episode_once(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    proc = subprocess.Popen([sys.executable, "-c", DRIVER.format(path=sys.path, url=url)])
    store = Store(url)
    deadline = time.monotonic() + 60
    stored_now = 0
    while time.monotonic() < deadline and stored_now < 200:
        time.sleep(0.2)
        runs = store.runs()
        stored_now = runs[0][1]["episodes"] if runs else 0
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_id = store.runs()[0][0].id
    before = len(store.episodes(run_id))
    assert 200 <= before < 3000
    resumed = go(store, "", resume=run_id, keep=False, workers=2, concurrency=4)
    keys = [e.key for e in store.episodes(run_id)]
    assert resumed.skipped == before and len(keys) == len(set(keys)) == 3000
    assert store.get_run(run_id).status == "complete"
