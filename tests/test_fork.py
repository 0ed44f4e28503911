"""Forks: a failed episode replayed up to a step, then a changed agent goes on from there.
A planted error fixed at the fork rescues every failure; unchanged, the fork reproduces the
failure exactly; an LLM fork makes no model call for the replayed prefix."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
import yaml

from tests.fake_openai import FakeOpenAI, finish, tool
from tests.helpers import RETAIL, run_scenarios, run_source
from tests.test_cli import trialrun
from trialrun.agents.base import AgentError
from trialrun.replay.fork import ForkError, fork_episodes
from trialrun.sandbox.worlds.retail import ScriptedRetailAgent

ROOT = Path(__file__).resolve().parents[1]
CLEAN = {"type": "scripted:retail", "params": {"error_rates": {}}}


@pytest.fixture
def failed_run(store):
    # The scripted agent errs at planted rates at two nodes.
    run = run_scenarios(store, [RETAIL / "known_error_rates.yaml"], seeds=60)
    failed = [e.id for e in store.episodes(run.run_id) if e.success is False]
    assert len(failed) >= 3
    return run.run_id, failed


def test_fixing_the_planted_error_at_the_fork_rescues_every_failure(store, failed_run):
    _, failed = failed_run
    fork_run, results = anyio.run(lambda: fork_episodes(store, failed, "first-error", CLEAN))
    assert all(r.rescued and r.prefix_identical for r in results)
    for r in results:
        parent, fork = store.load_episode(r.parent_id), store.load_episode(r.episode_id)
        assert parent.steps[r.at].passed is False and r.at == parent.first_error.index
        assert (fork.parent, fork.fork_at) == (r.parent_id, r.at)
        # The prefix is the parent's; from the fork's step on, the fixed agent decides.
        assert [s.decision for s in fork.steps[:r.at]] == \
               [s.decision for s in parent.steps[:r.at]]
        assert fork.steps[r.at].passed
    assert {e.id for e in store.episodes(fork_run)} == {r.episode_id for r in results}


def test_forking_with_the_agent_unchanged_reproduces_the_failure_exactly(store, failed_run):
    _, failed = failed_run
    _, results = anyio.run(lambda: fork_episodes(store, failed, "first-error"))
    for r in results:
        parent, fork = store.load_episode(r.parent_id), store.load_episode(r.episode_id)
        assert fork.success is False and not r.rescued
        assert [(s.decision, s.state_digest) for s in fork.steps] == \
               [(s.decision, s.state_digest) for s in parent.steps]
        assert fork.final_digest == parent.final_digest


def test_fork_points_and_their_errors(store, failed_run):
    _, failed = failed_run
    ep = failed[0]
    _, [decisive] = anyio.run(lambda: fork_episodes(store, [ep], "decisive", CLEAN))
    first = store.load_episode(ep).first_error
    assert decisive.at == first.index and decisive.rescued  # the only error is decisive
    _, [at0] = anyio.run(lambda: fork_episodes(store, [ep], 0, CLEAN))
    assert at0.at == 0 and at0.success  # the fixed agent from the start
    with pytest.raises(ForkError, match="cannot fork at 99"):
        anyio.run(lambda: fork_episodes(store, [ep], 99))
    ok = next(e.id for e in store.episodes(store.get_episode(ep).run_id) if e.success)
    with pytest.raises(ForkError, match="no graded error to fork at"):
        anyio.run(lambda: fork_episodes(store, [ok], "first-error"))


def test_an_llm_fork_makes_no_model_call_for_the_prefix(store):
    doc = yaml.safe_load((RETAIL / "refund_in_window.yaml").read_text())
    wrong = [tool("find_customer", {"email": "ana.ruiz@example.com"}),
             tool("get_order", {"order_id": "O-1001"}),
             tool("refund", {"order_id": "O-1001", "amount": 100.0}),  # not the full total
             tool("reply", {"message": "Refunded."}), finish()]
    right = wrong[:2] + [tool("refund", {"order_id": "O-1001", "amount": 149.0}),
                         tool("reply", {"message": "We refunded 149.00 to your card."}),
                         finish()]
    with FakeOpenAI() as fake:
        fake.script("wrong", wrong).script("right", right)
        doc["agent"] = {"type": "openai", "params": {
            "base_url": fake.base_url, "model": "wrong", "api_key_env": "NO_KEY_NEEDED",
            "node_map": {"find_customer": "verify_identity", "get_order": "lookup_order",
                         "refund": "resolve", "reply": "reply"}}}
        doc["checkpoints"] = {"policy": "never"}
        doc["trials"], doc["seeds"] = 1, 1
        [parent] = run_source(store, yaml.safe_dump(doc)).results
        assert parent.success is False and parent.first_error.index == 2
        ep_id = store.episodes(store.runs()[0][0].id)[0].id
        before = len(fake.bodies)
        _, [r] = anyio.run(lambda: fork_episodes(
            store, [ep_id], "first-error", {"type": "openai", "params": {"model": "right"}}))
        asked = [b["model"] for b in fake.bodies[before:]]
    assert r.rescued and r.prefix_identical
    assert asked == ["right"] * 3  # refund, reply, finish: none for the two replayed steps
    fork = store.load_episode(r.episode_id)
    assert fork.steps[2].decision.args == {"order_id": "O-1001", "amount": 149.0}
    # The forked model saw the recorded conversation: its first request carries the prefix.
    first = fake.bodies[before]
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant", "tool",
                                                      "assistant", "tool"]


def test_an_agent_that_runs_its_own_loop_cannot_adopt_a_prefix(store, failed_run):
    _, failed = failed_run
    with pytest.raises(ForkError, match="cannot take over a recorded prefix"):
        anyio.run(lambda: fork_episodes(store, failed[:1], "first-error", {
            "type": "langgraph", "params": {"graph": "tests.lg_graphs:direct"}}))


def test_the_cli_forks_a_runs_failures_and_shows_a_fork_beside_its_parent(tmp_path, failed_run):
    def cli(*args: str):
        return trialrun(*args, cwd=tmp_path)

    run_id, failed = failed_run
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    out = cli("fork", run_id, "--failed", "--agent",
              "{type: 'scripted:retail', params: {error_rates: {}}}",
              "--json", str(tmp_path / "f.json"), "--db", db)
    assert out.returncode == 0, out.stderr
    assert f"rescued by the fork: {len(failed)} of {len(failed)}" in out.stdout
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["rescued"]["k"] == len(failed) and all(f["rescued"] for f in data["forks"])
    fork_id = data["forks"][0]["episode_id"]
    shown = cli("show", fork_id, "--db", db)
    assert shown.returncode == 0 and f"fork of {failed[0]} at step" in shown.stdout
    assert "parent" in shown.stdout and "fork (" in shown.stdout
    bad = cli("fork", run_id, "--db", db)
    assert bad.returncode == 2 and "add --failed" in bad.stderr
    bad = cli("fork", failed[0], "--at", "somewhere", "--db", db)
    assert bad.returncode == 2 and "expected a step number" in bad.stderr


class FlakyFixedAgent(ScriptedRetailAgent):
    """The fixed agent behind a model API that fails on its first call of each fork."""

    calls = 0

    async def decide(self, obs):
        FlakyFixedAgent.calls += 1
        if FlakyFixedAgent.calls == 1:
            raise AgentError("429 Too Many Requests")
        return await super().decide(obs)


class DownAgent(ScriptedRetailAgent):
    async def decide(self, obs):
        raise AgentError("model API unreachable")


def test_a_fork_that_hits_an_infrastructure_fault_is_retried_and_never_scored(
        store, failed_run, tmp_path):
    """A model fault during a fork is retried like a run's; one that persists is stored as
    that fork's error, counts as neither rescued nor not, and the command exits 3."""
    run_id, failed = failed_run
    FlakyFixedAgent.calls = 0
    _, [res] = anyio.run(lambda: fork_episodes(store, failed[:1], "first-error", {
        "type": "tests.test_fork:FlakyFixedAgent", "params": {"error_rates": {}}}))
    fork = store.load_episode(res.episode_id)
    assert res.rescued and res.error is None and fork.attempts == 2
    out = trialrun("fork", failed[0], "--at", "first-error", "--agent",
                   "{type: 'tests.test_fork:DownAgent'}", "--json", str(tmp_path / "f.json"),
                   "--db", store.url, cwd=ROOT)  # the agent is this module's
    assert out.returncode == 3, out.stderr
    assert "infrastructure error" in out.stderr and "unreachable" in out.stderr
    bad = trialrun("fork", failed[0], "--agent", "{type: 'tests.test_fork:NoSuchAgent'}",
                   "--db", store.url, cwd=ROOT)
    assert bad.returncode == 2 and "NoSuchAgent" in bad.stderr and "Traceback" not in bad.stderr
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["rescued"]["n"] == 0 and data["forks"][0]["success"] is None
    stored = store.load_episode(data["forks"][0]["episode_id"])
    assert stored.end_reason == "error" and stored.success is None
