"""`trialrun run --executor ray` on a real two-node Ray cluster (loopback, in its own network
and PID namespaces: scripts/ray-cluster.sh), with the local executor's guarantees: the same
episodes and results as a local run, each planned episode stored once when a worker is
killed mid-run or the driver is killed and the run resumed, and a reviewer's queue that
works from the workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from tests.helpers import RETAIL
from trialrun.store import Store

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "ray-cluster.sh"
PORT = "26379"  # inside the cluster's own network namespace: nothing else listens there
TRIALRUN = [sys.executable, "-m", "trialrun.cli"]


def _env() -> dict[str, str]:
    # Workers import plugins named by path (tests.slow_agent) from the driver's sys.path.
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
    return {**os.environ, "PYTHONPATH": path,
            "RAY_BIN": str(Path(sys.executable).parent / "ray")
            if (Path(sys.executable).parent / "ray").exists() else "ray"}


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Cluster:
    dir: Path
    address: str

    @property
    def init(self) -> int:
        return int((self.dir / "init").read_text())

    def cli(self, *args: str) -> list[str]:
        """`trialrun ARGS` run where it reaches the cluster, on it."""
        return ["bash", str(SCRIPT), "exec", str(self.dir), "--", *TRIALRUN, *args,
                "--executor", "ray", "--address", self.address]

    def workers(self) -> list[int]:
        """PIDs (as seen here) of the run's Ray actors, idle or busy."""
        return [p for p in _descendants(self.init)
                if _cmdline(p).startswith("ray::EpisodeWorker")]


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray", reason="the ray executor needs Ray: pip install 'trialrun[ray]'")
    # Short: Ray's unix sockets live under it (107-byte path limit).
    d = Path(tempfile.mkdtemp(prefix="trr-", dir="/tmp"))
    env = _env()
    try:
        out = subprocess.run(["bash", str(SCRIPT), "start", str(d), PORT, "2", "1"], env=env,
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr + out.stdout
        yield Cluster(d, out.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(d)], env=env, timeout=120,
                       capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def _count(store: Store, run_id: str) -> tuple[int, int, int]:
    with store.engine.connect() as c:
        return tuple(c.execute(text(
            "SELECT count(*), count(DISTINCT key), "
            "sum(CASE WHEN end_reason = 'error' THEN 1 ELSE 0 END) "
            "FROM episode WHERE run_id = :r"), {"r": run_id}).one())


def _only_run(store: Store) -> str:
    with store.engine.connect() as c:
        (run_id,) = c.execute(text("SELECT id FROM run")).one()
    return run_id


def _by_key(store: Store, run_id: str) -> dict[str, object]:
    return {e.key: store.load_episode(e.id) for e in store.episodes(run_id)}


def _outcome(ep) -> tuple:
    """What a run must reproduce of an episode: its ending and, step by step, the decision
    (without timings) and its grades."""
    return (ep.success, ep.end_reason, ep.score, ep.final_digest, ep.sim_time,
            [(st.node, st.decision.model_dump(exclude={"model_calls"}),
              st.result and st.result.model_dump(), st.state_digest,
              [(g.grader, g.passed, g.score) for g in st.grades]) for st in ep.steps],
            [(g.grader, g.passed, g.score) for g in ep.outcome_grades])


def _poll_stored(store: Store, at_least: int, proc: subprocess.Popen, timeout: float = 60
                 ) -> str:
    """Wait until the (only) run has `at_least` episodes stored; its id."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the run ended before the kill: " + \
            proc.stderr.read().decode()[-2000:]
        time.sleep(0.1)
        try:
            with store.engine.connect() as c:
                row = c.execute(text("SELECT run_id, count(*) FROM episode "
                                     "GROUP BY run_id")).first()
        except Exception:  # noqa: BLE001 - tables may not exist yet
            continue
        if row and row[1] >= at_least:
            return row[0]
    raise AssertionError("the run did not get going")


def _slow_scenario(tmp_path: Path, seeds: int) -> Path:
    """~25 ms of wall time per episode (a slowed scripted agent): long enough to kill
    something mid-run."""
    path = tmp_path / "slow.yaml"
    path.write_text((RETAIL / "known_error_rates.yaml").read_text()
                    .replace("seeds: 20", f"seeds: {seeds}")
                    .replace("type: scripted:retail", "type: tests.slow_agent:SlowAgent"))
    return path


def _start_slow_run(cluster, tmp_path: Path, db: str) -> subprocess.Popen:
    """A 300-episode run of slow episodes on the cluster, in the background: long enough to
    kill something of it mid-run."""
    return subprocess.Popen(
        cluster.cli("run", str(_slow_scenario(tmp_path, 300)), "--db", db, "--no-progress",
                    "-j", "4"),
        env=_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


REPORT_SECTIONS = ("episodes", "end_reasons", "errors", "success", "by_scenario", "trials",
                   "nodes", "first_error_nodes", "escalation", "recovered")


def test_a_ray_run_stores_what_a_local_run_stores(cluster, tmp_path):
    local_db, ray_db = tmp_path / "local.db", tmp_path / "ray.db"
    args = ["run", "retail", "--seeds", "5", "--no-progress"]
    local = subprocess.run([*TRIALRUN, *args, "--db", f"sqlite:///{local_db}",
                            "--json", str(tmp_path / "local.json")],
                           env=_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert local.returncode == 0, local.stderr
    on_ray = subprocess.run(cluster.cli(*args, "--db", f"sqlite:///{ray_db}",
                                        "--json", str(tmp_path / "ray.json")),
                            env=_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert on_ray.returncode == 0, on_ray.stderr
    a, b = Store(f"sqlite:///{local_db}"), Store(f"sqlite:///{ray_db}")
    ra, rb = _only_run(a), _only_run(b)
    planned = a.get_run(ra).planned
    assert planned > 100 and b.get_run(rb).planned == planned
    assert _count(b, rb) == (planned, planned, 0)  # each planned episode once, no errors
    eps_a, eps_b = _by_key(a, ra), _by_key(b, rb)
    assert eps_a.keys() == eps_b.keys()
    differ = [k for k in eps_a if _outcome(eps_a[k]) != _outcome(eps_b[k])]
    assert not differ, differ[:5]
    # ... and so the report says the same.
    ja, jb = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("local", "ray"))
    assert {k: ja[k] for k in REPORT_SECTIONS} == {k: jb[k] for k in REPORT_SECTIONS}
    assert b.get_run(rb).status == "complete"


def test_a_worker_killed_mid_run_loses_nothing_and_is_never_scored(cluster, tmp_path):
    db = f"sqlite:///{tmp_path / 'kill-worker.db'}"
    proc = _start_slow_run(cluster, tmp_path, db)
    try:
        store = Store(db)
        run_id = _poll_stored(store, 40, proc)
        victims = cluster.workers()
        assert len(victims) == 2, victims  # one actor per node (one CPU each)
        os.kill(victims[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    total, distinct, errors = _count(store, run_id)
    assert total == distinct == 300  # every planned episode stored, once
    eps = [store.load_episode(e.id) for e in store.episodes(run_id)]
    # The killed worker's episodes were retried: tries lost with it count as tries; any
    # that ran out of tries is an error, never scored.
    assert max(e.attempts for e in eps) >= 2
    assert all(e.success is None for e in eps if e.end_reason.value == "error")
    assert errors == 0  # one kill, three tries: every episode got a clean one
    assert store.get_run(run_id).status == "complete"


def test_a_killed_driver_resumes_with_each_episode_stored_once(cluster, tmp_path):
    db = f"sqlite:///{tmp_path / 'kill-driver.db'}"
    proc = _start_slow_run(cluster, tmp_path, db)
    try:
        store = Store(db)
        run_id = _poll_stored(store, 60, proc)
        # nsenter's child is the driver: kill it outright, no chance to clean up.
        (driver,) = _children(proc.pid)
        os.kill(driver, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before, distinct, _ = _count(store, run_id)
    assert 60 <= done_before < 300 and distinct == done_before
    # Ray ends a dead driver's actors: nothing of the killed run goes on writing.
    deadline = time.time() + 30
    while cluster.workers() and time.time() < deadline:
        time.sleep(0.2)
    assert not cluster.workers()

    out = subprocess.run(cluster.cli("run", "--resume", run_id, "--db", db, "--no-progress"),
                         env=_env(), cwd=REPO, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert f"{done_before} episode(s) were already done" in out.stdout
    assert _count(store, run_id) == (300, 300, 0)
    assert store.get_run(run_id).status == "complete"


def _reviewed_source() -> str:
    """Three retail episodes whose cancel waits for a real reviewer."""
    doc = yaml.safe_load((RETAIL / "cancel_pending.yaml").read_text())
    doc["agent"] = {"type": "scripted:retail"}
    doc["checkpoints"] = {"policy": "before_irreversible", "on_deny": "abort",
                          "human": {"type": "reviewer"}}
    doc["seeds"], doc["trials"] = 3, 1
    return yaml.safe_dump(doc)


def test_a_reviewer_queue_works_from_the_workers(cluster, tmp_path):
    """The workers open the run's store (here the same SQLite file) to queue a decision for
    review; once answered, `--resume` on Ray goes on from the pause."""
    scenario = tmp_path / "reviewed.yaml"
    scenario.write_text(_reviewed_source())
    db = f"sqlite:///{tmp_path / 'review.db'}"
    first = subprocess.run(cluster.cli("run", str(scenario), "--db", db, "--no-progress"),
                           env=_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in first.stderr, first.stderr
    store = Store(db)
    run_id = _only_run(store)
    assert store.get_run(run_id).status == "waiting for review"
    items = store.reviews(run_id, "pending")
    assert len(items) == 3 and all("cancel" in it.decision for it in items)
    store.answer_review(items[0].id, True, "ana")
    store.answer_review(items[1].id, False, "ben")
    store.answer_review(items[2].id, True, "ana")
    out = subprocess.run(cluster.cli("run", "--resume", run_id, "--db", db, "--no-progress"),
                         env=_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 1), out.stderr  # 1: a gate may fail on the denied one
    eps = {e.key: e for e in store.episodes(run_id)}
    assert len(eps) == 3 and store.get_run(run_id).status == "complete"
    assert eps[items[0].episode_key].success and eps[items[2].episode_key].success
    assert eps[items[1].episode_key].end_reason == "aborted"


def test_a_reviewer_with_an_in_memory_store_is_refused_before_the_run():
    """Workers cannot reach an in-memory store, where a reviewer's queue lives."""
    pytest.importorskip("ray", reason="the ray executor needs Ray: pip install 'trialrun[ray]'")
    import anyio

    from trialrun.errors import BadInput
    from trialrun.runner import RunOptions, run_episodes
    from trialrun.scenarios.loader import load_scenario_source

    store = Store("sqlite://")
    loaded = [load_scenario_source(_reviewed_source(), "reviewed.yaml")]
    with pytest.raises(BadInput, match="reviewer human.*in-memory store"):
        anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(
            executor="trialrun.ray_executor:RayExecutor")))
    assert store.runs(5) == []


def test_without_ray_one_line_says_how_to_install_it(tmp_path):
    # A `ray` that cannot be imported, first on the path: as if it were not installed.
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {**_env(), "PYTHONPATH": os.pathsep.join((str(fake.parent), _env()["PYTHONPATH"]))}
    db = tmp_path / "none.db"
    out = subprocess.run([*TRIALRUN, "run", "retail", "--db", f"sqlite:///{db}",
                          "--no-progress", "--executor", "ray"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'trialrun[ray]'" in lines[0], out.stderr
    with Store(f"sqlite:///{db}").engine.connect() as c:  # refused before a run began
        assert c.execute(text("SELECT count(*) FROM run")).scalar() == 0


def test_a_cluster_nobody_runs_is_one_line_before_any_run(tmp_path):
    pytest.importorskip("ray", reason="the ray executor needs Ray: pip install 'trialrun[ray]'")
    db = tmp_path / "none.db"
    out = subprocess.run([*TRIALRUN, "run", "retail", "--db", f"sqlite:///{db}",
                          "--no-progress", "--executor", "ray", "--address", "127.0.0.1:1"],
                         env=_env(), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 3  # infrastructure
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing answers at 127.0.0.1:1" in lines[0], out.stderr
    with Store(f"sqlite:///{db}").engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM run")).scalar() == 0


def test_address_without_the_ray_executor_is_refused(tmp_path):
    out = subprocess.run([*TRIALRUN, "run", "retail", "--db", f"sqlite:///{tmp_path / 'x.db'}",
                          "--no-progress", "--address", "127.0.0.1:6379"],
                         env=_env(), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "use it with --executor ray" in out.stderr


def test_help_does_not_import_ray():
    code = ("import sys\nfrom trialrun.cli import main\n"
            "for argv in (['trialrun', '--help'], ['trialrun', 'run', '--help']):\n"
            "    sys.argv = argv\n"
            "    try:\n        main()\n    except SystemExit:\n        pass\n"
            "print('ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr
    assert "--executor" in out.stdout and "--address" in out.stdout
