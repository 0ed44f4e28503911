"""With known per-node error rates the analysis recovers them, and first errors land there."""

from __future__ import annotations

import pytest

from tests.helpers import RETAIL, run_scenarios, run_source
from trialrun.analysis.data import load_run
from trialrun.analysis.summary import summarize


def test_error_free_agent_solves_every_retail_task(store):
    paths = [p for p in sorted(RETAIL.glob("*.yaml")) if "never" not in p.name]
    text_override = {"error_rates": {}}
    import anyio
    import yaml

    from trialrun.runner import run_episodes
    from trialrun.scenarios.loader import load_scenario_source

    loaded = []
    for p in paths:
        data = yaml.safe_load(p.read_text())
        data["agent"]["params"] = {**data["agent"].get("params", {}), **text_override}
        data["checkpoints"] = {"policy": "never"}
        loaded.append(load_scenario_source(yaml.safe_dump(data), p))
    summary = anyio.run(lambda: run_episodes(store, loaded, keep_results=True))
    failed = [str(r.key) for r in summary.results if not r.success]
    assert not failed, failed
    assert all(st.passed is not False for r in summary.results for st in r.steps)


@pytest.mark.slow
def test_known_node_error_rate_is_recovered(store):
    # 10% errors at resolve, 5% at lookup_order, 1000 episodes, no checkpoints.
    text = (RETAIL / "known_error_rates.yaml").read_text().replace("seeds: 20", "seeds: 1000")
    run = run_source(store, text)
    s = summarize(load_run(store, run.run_id))
    nodes = {n.node: n for n in s.nodes}
    resolve = nodes["resolve"].accuracy
    assert resolve.lo <= 0.90 <= resolve.hi, resolve
    # lookup_order makes two calls per episode, one of which can err: 0.95 per episode.
    lookup = nodes["lookup_order"].accuracy
    assert lookup.lo <= 0.975 <= lookup.hi, lookup
    assert nodes["verify_identity"].accuracy.rate == 1.0
    # Every failed episode's first error is at one of the two erring nodes.
    failed = s.success.n - s.success.k
    assert failed > 100
    assert set(s.first_error_nodes) <= {"resolve", "lookup_order"}
    assert sum(s.first_error_nodes.values()) == failed
    # Independent errors: the product of node accuracies predicts success.
    assert abs(s.predicted_success - s.success.rate) < 0.03


def test_same_seed_same_trajectory(store):
    a = run_scenarios(store, [RETAIL / "refund_in_window.yaml"])
    b = run_scenarios(store, [RETAIL / "refund_in_window.yaml"])
    ra = sorted(a.results, key=lambda r: str(r.key))
    rb = sorted(b.results, key=lambda r: str(r.key))
    assert [[(s.decision, s.state_digest) for s in r.steps] for r in ra] == \
        [[(s.decision, s.state_digest) for s in r.steps] for r in rb]


def test_bad_agent_calls_are_graded_errors_not_crashes(store):
    from trialrun.agents.base import Agent
    from trialrun.trajectory import Decision

    class Clumsy(Agent):
        async def decide(self, obs):
            n = getattr(self, "n", 0)
            self.n = n + 1
            return [Decision(kind="tool_call", node="lookup", tool="teleport", args={}),
                    Decision(kind="tool_call", node="lookup", tool="get_order",
                             args={"order": 1}),
                    Decision(kind="tool_call", node="lookup", tool="get_order",
                             args={"order_id": 5}),
                    Decision(kind="tool_call", node="lookup", tool="get_order",
                             args={"order_id": "O-1201"}),
                    Decision(kind="finish", node="finish")][n]

    import sys
    import types

    mod = types.ModuleType("clumsy_agent")
    mod.Clumsy = Clumsy
    sys.modules["clumsy_agent"] = mod
    text = (RETAIL / "known_error_rates.yaml").read_text().replace(
        "type: scripted:retail", "type: clumsy_agent:Clumsy").replace(
        "params: {error_rates: {lookup_order: 0.05, resolve: 0.10}}", "params: {}").replace(
        "seeds: 20", "seeds: 1")
    run = run_source(store, text)
    (r,) = run.results
    assert r.end_reason == "finished" and r.success is False
    errors = [st.result.error for st in r.steps[:4]]
    assert "unknown tool 'teleport'" in errors[0]
    assert "missing required argument(s) order_id" in errors[1]
    assert "argument order_id must be string" in errors[2]
    assert "verify the customer's identity first" in errors[3]
    assert all(st.passed is False for st in r.steps[:4])


def test_the_scripted_agent_goes_on_from_what_a_human_took_over(store):
    """A denied guess replaced by the world's own step (here: asking which order) must not
    derail the agent: it learns from what ran, not from what it proposed."""
    text = (RETAIL / "ambiguous_refund.yaml").read_text().replace(
        "checkpoints: {policy: before_irreversible}",
        "checkpoints: {policy: always, on_deny: takeover}").replace(
        "params: {ask: when_ambiguous}", "params: {ask: never}").replace(
        "seeds: 3", "seeds: 30")
    summary = run_source(store, text)
    assert summary.errors == 0
    taken = [s for r in summary.results for s in r.steps
             if s.checkpoint and s.checkpoint.action == "takeover"]
    assert any(s.checkpoint.reviewed for s in taken)
    assert all(r.success is not None for r in summary.results)
