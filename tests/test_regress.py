"""`trialrun regress`: a run's failures become a suite of pinned scenario files that fails
before the fix (the same failures, exactly) and passes after it (the error knob turned off)."""

from __future__ import annotations

import json
import subprocess
import sys

import anyio
import pytest
import yaml

from tests.helpers import RETAIL, run_source
from trialrun.runner import RunOptions, run_episodes
from trialrun.scenarios.loader import LIBRARY, load_targets
from trialrun.store import Store

PLANTED = (RETAIL / "known_error_rates.yaml").read_text().replace(
    "lookup_order: 0.05, resolve: 0.10", "resolve: 0.3").replace("trials: 1", "trials: 2")
FIXED = '{type: scripted:retail, name: fixed, params: {error_rates: {}}}'


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "trialrun.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_regress_turns_failures_into_a_suite_that_fails_before_the_fix_and_passes_after(
        tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(db)
    run = run_source(store, PLANTED)
    failed = [e for e in store.episodes(run.run_id) if e.success is False]
    assert 3 <= len(failed) < 40  # 20 seeds × 2 trials, resolve errs 30% of the time
    out = _cli("regress", run.run_id, "-o", str(tmp_path / "regressions"), "--db", db,
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    files = sorted((tmp_path / "regressions").glob("*.yaml"))
    assert len(files) == len({(e.task, e.seed) for e in failed})
    # Each file: that task, that seed, the run's trials, the same agent; its provenance.
    for f in files:
        text = f.read_text()
        data = yaml.safe_load(text)
        prov = data["provenance"]
        assert prov["run"] == run.run_id and data["seeds"] == [prov["seed"]]
        assert data["trials"] == 2 and len(data["tasks"]) == 1
        assert data["agent"]["params"] == {"error_rates": {"resolve": 0.3}}
        for ep in prov["episodes"]:
            assert ep["first_error"]["node"] == "resolve" and ep["first_error"]["step"] == 3
            assert f"trialrun show {ep['episode']}" in text
        assert text.startswith("# Regression case written by `trialrun regress")
    # Before the fix: the suite reproduces exactly the failed episodes, and its gate fails.
    before = _cli("run", str(tmp_path / "regressions"), "--db", db, "--no-progress",
                  "--fail-under", "1.0", "--json", str(tmp_path / "before.json"),
                  cwd=tmp_path)
    assert before.returncode == 1, before.stderr
    rerun = Store(db)
    rid = json.loads((tmp_path / "before.json").read_text())["run_id"]
    again = {(e.task, e.seed, e.trial) for e in rerun.episodes(rid) if e.success is False}
    assert again == {(e.task, e.seed, e.trial) for e in failed}
    # After the fix (the error knob off): every case passes.
    after = _cli("run", str(tmp_path / "regressions"), "--db", db, "--no-progress",
                 "--fail-under", "1.0", "--agent", FIXED, cwd=tmp_path)
    assert after.returncode == 0, after.stderr + after.stdout


def test_a_case_from_the_first_error_starts_where_the_agent_went_wrong(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(db)
    run = run_source(store, PLANTED)
    failed = {(e.task, e.seed, e.trial): e for e in store.episodes(run.run_id)
              if e.success is False}
    out = _cli("regress", run.run_id, "-o", str(tmp_path / "cases"), "--from-first-error",
               "--db", db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for f in (tmp_path / "cases").glob("*.yaml"):
        data = yaml.safe_load(f.read_text())
        for p in data["start_from"]:  # the steps before the first error, as recorded
            parent = store.load_episode(failed[(p["task"], p["seed"], p["trial"])].id)
            assert len(p["decisions"]) == parent.first_error.index == 3
    before = _cli("run", str(tmp_path / "cases"), "--db", db, "--no-progress", "--json",
                  str(tmp_path / "b.json"), cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    rid = json.loads((tmp_path / "b.json").read_text())["run_id"]
    for e in store.episodes(rid):
        ep = store.load_episode(e.id)
        parent = failed.get((e.task, e.seed, e.trial))
        if parent is None:
            continue  # a trial of the same seed that passed: it runs from the start
        parent = store.load_episode(parent.id)
        k = parent.first_error.index
        # The replayed prefix is the record; the unchanged agent errs at the same step.
        assert [s.decision for s in ep.steps[:k]] == [s.decision for s in parent.steps[:k]]
        assert ep.success is False and ep.first_error.index == k
    after = _cli("run", str(tmp_path / "cases"), "--db", db, "--no-progress",
                 "--gate", "success>=1", "--agent", FIXED, cwd=tmp_path)
    assert after.returncode == 0, after.stderr + after.stdout


def test_generated_tasks_are_pinned_in_full(store, tmp_path):
    from trialrun.replay.regress import write_regressions

    text = (LIBRARY / "calendar" / "generated_hard.yaml").read_text().replace(
        "generate: 200", "generate: 12").replace(
        "search: 0.05, act: 0.05, invite: 0.05, reply: 0.05", "act: 0.5")
    run = run_source(store, text)
    paths = write_regressions(store, run.run_id, tmp_path / "reg")
    assert paths
    loaded = load_targets([str(tmp_path / "reg")])
    assert all(len(ls.tasks) == 1 for ls in loaded)
    rerun = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions()))
    failed_before = {(e.task, e.seed) for e in store.episodes(run.run_id) if e.success is False}
    eps = store.episodes(rerun.run_id)
    assert {(e.task, e.seed) for e in eps if e.success is False} == failed_before


def test_untrusted_text_stays_in_its_comment():
    from trialrun.replay.regress import Case, _comment

    class E:  # an EpisodeRow stand-in
        id, trial = "r-1", 0

    text = _comment(Case("s", "t", 0, [E()]), "r", [
        {"step": 1, "node": "n", "reason": "bad\nname: injected\n[/bold]"}])
    assert yaml.safe_load(text + "name: real\n") == {"name": "real"}
    assert all(line.startswith("#") for line in text.splitlines())


def test_a_run_with_no_failures_writes_nothing_and_an_imported_run_says_why_not(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(db)
    clean = run_source(store, PLANTED.replace("resolve: 0.3", "resolve: 0.0"))
    out = _cli("regress", clean.run_id, "-o", str(tmp_path / "r"), "--db", db, cwd=tmp_path)
    assert out.returncode == 0 and "no failed episode" in out.stdout
    assert not (tmp_path / "r").exists()
    tau = tmp_path / "tau.json"
    tau.write_text(json.dumps([{"task_id": 0, "trial": 0, "reward": 0.0, "info": {},
                                "traj": []}]))
    from trialrun.importers import import_files

    run_id, _ = import_files(store, "tau-bench", [tau])
    out = _cli("regress", run_id, "-o", str(tmp_path / "r"), "--db", db, cwd=tmp_path)
    assert out.returncode == 2 and "imported from tau-bench" in out.stderr
    assert "no world" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("bad", ["nope"])
def test_an_unknown_run_is_one_line(tmp_path, bad):
    out = _cli("regress", bad, "--db", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert out.returncode == 2 and f"no run '{bad}'" in out.stderr
