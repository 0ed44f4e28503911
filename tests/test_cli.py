"""The README's main job works from the command line, and the commands read the store."""

from __future__ import annotations

import json
import subprocess
import sys
import time


def trialrun(*args, cwd, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "trialrun.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_run_retail_suite_and_read_it_back(tmp_path):
    out = trialrun("run", "retail", "--json", "report.json", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for section in ("success", "per-node accuracy", "first went wrong", "escalation",
                    "cost and latency", "pass^k"):
        assert section in out.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["episodes"] >= 50 and report["errors"] == 0
    assert 0 < report["success"]["rate"] <= 1
    assert report["success"]["lo"] <= report["success"]["rate"] <= report["success"]["hi"]
    assert {n["node"] for n in report["nodes"]} >= {"verify_identity", "resolve", "reply"}
    run_id = report["run_id"]
    runs = trialrun("runs", cwd=tmp_path)
    assert run_id in runs.stdout and "complete" in runs.stdout
    show = trialrun("show", run_id, "--failed", cwd=tmp_path)
    assert show.returncode == 0
    episode_id = next(w for w in show.stdout.split() if w.startswith(run_id + "-"))
    ep = trialrun("show", episode_id, cwd=tmp_path)
    assert ep.returncode == 0 and "failure" in ep.stdout
    rep = trialrun("replay", episode_id, cwd=tmp_path)
    assert rep.returncode == 0 and "identical" in rep.stdout


def test_validate_and_schema(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nworld: {type: retail}\ntasks: []\nagent: {type: scripted:retail}\n")
    out = trialrun("validate", str(bad), cwd=tmp_path)
    assert out.returncode == 2 and "bad.yaml:3:1: tasks: tasks must not be empty" in out.stderr
    schema = json.loads(trialrun("schema", cwd=tmp_path).stdout)
    assert "world" in schema["properties"] and "checkpoints" in schema["properties"]


def test_unknown_run_is_a_clear_error(tmp_path):
    out = trialrun("show", "nope", cwd=tmp_path)
    assert out.returncode == 2 and "no run 'nope'" in out.stderr


def test_help_is_fast_and_imports_nothing_heavy(tmp_path):
    code = ("import sys, time; t=time.perf_counter(); sys.argv=['trialrun','--help'];\n"
            "from trialrun import cli\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "heavy=[m for m in ('langgraph','docker','sqlmodel','numpy','matplotlib') "
            "if m in sys.modules]\nprint('HEAVY', heavy)")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    assert time.perf_counter() - t < 5
