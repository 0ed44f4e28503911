"""A killed run resumes without losing or repeating episodes; infrastructure faults are
retried and recorded as errors, never scored as the agent's mistakes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy import text

from tests.helpers import RETAIL, run_source
from trialrun.agents.base import AgentError
from trialrun.analysis.data import load_run
from trialrun.analysis.summary import summarize
from trialrun.sandbox.worlds.retail import ScriptedRetailAgent
from trialrun.store import Store


def _count(store: Store, run_id: str) -> tuple[int, int]:
    with store.engine.connect() as c:
        total, distinct = c.execute(text(
            "SELECT count(*), count(DISTINCT key) FROM episode WHERE run_id = :r"),
            {"r": run_id}).one()
    return total, distinct


def test_sigkill_halfway_then_resume_stores_each_episode_once(tmp_path):
    db = f"sqlite:///{tmp_path / 'kill.db'}"
    scenario = tmp_path / "slow.yaml"
    # 400 episodes, slowed by a wall-clock pause in the agent so the kill lands mid-run.
    scenario.write_text((RETAIL / "known_error_rates.yaml").read_text()
                        .replace("seeds: 20", "seeds: 400")
                        .replace("type: scripted:retail", "type: tests.slow_agent:SlowAgent"))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "trialrun.cli", "run", str(scenario), "--db", db,
           "--no-progress", "-j", "4"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = Store(db)
    deadline = time.time() + 60
    run_id = None
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            with store.engine.connect() as c:
                row = c.execute(text(
                    "SELECT run_id, count(*) FROM episode GROUP BY run_id")).first()
        except Exception:  # noqa: BLE001 - tables may not exist yet
            continue
        if row and row[1] >= 100:
            run_id = row[0]
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run_id, "the run never got going: " + proc.stderr.read().decode()[-2000:]
    done_before, distinct = _count(store, run_id)
    assert 100 <= done_before < 400 and distinct == done_before

    out = subprocess.run([sys.executable, "-m", "trialrun.cli", "run", "--resume", run_id,
                          "--db", db, "--no-progress"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"{done_before} episode(s) were already done" in out.stdout
    total, distinct = _count(store, run_id)
    assert total == distinct == 400
    assert store.get_run(run_id).status == "complete"


class FlakyAgent(ScriptedRetailAgent):
    """Fails with an infrastructure error on the first attempt of odd seeds."""

    attempts: dict[int, int] = {}

    async def decide(self, obs):
        seed = self.ctx.seed
        n = FlakyAgent.attempts.get(seed, 0)
        if seed % 2 and n == 0:
            FlakyAgent.attempts[seed] = 1
            raise AgentError("429 Too Many Requests")
        return await super().decide(obs)


class DeadAgent(ScriptedRetailAgent):
    async def decide(self, obs):
        if self.ctx.seed == 3:
            raise AgentError("model API unreachable")
        return await super().decide(obs)


def _with_agent(path: str) -> str:
    return (RETAIL / "known_error_rates.yaml").read_text().replace(
        "type: scripted:retail", f"type: {path}").replace("seeds: 20", "seeds: 6")


def test_transient_infra_faults_are_retried(store):
    FlakyAgent.attempts.clear()
    run = run_source(store, _with_agent("tests.test_resume_and_infra:FlakyAgent"),
                     retry_backoff_s=0.0)
    assert all(r.end_reason != "error" for r in run.results)
    assert sorted(r.attempts for r in run.results) == [1, 1, 1, 2, 2, 2]


def test_persistent_infra_faults_are_errors_not_failures(store):
    run = run_source(store, _with_agent("tests.test_resume_and_infra:DeadAgent"),
                     retry_backoff_s=0.0)
    errs = [r for r in run.results if r.end_reason == "error"]
    assert len(errs) == 1 and errs[0].success is None and "unreachable" in errs[0].error
    s = summarize(load_run(store, run.run_id))
    assert s.errors == 1 and s.success.n == 5  # the error episode is not scored
