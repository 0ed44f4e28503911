"""The analysis recovers known per-node error rates, detects correlated errors only when they
are there, and attributes failures to the node that caused them."""

from __future__ import annotations

import anyio
import pytest

from tests.helpers import RETAIL, run_source
from trialrun.analysis.data import load_run
from trialrun.analysis.summary import summarize
from trialrun.replay.counterfactual import attribute_run
from trialrun.sandbox.worlds.retail import ScriptedRetailAgent

BASE = (RETAIL / "known_error_rates.yaml").read_text()


def scenario(params: str, seeds: int, agent: str = "scripted:retail") -> str:
    return BASE.replace("params: {error_rates: {lookup_order: 0.05, resolve: 0.10}}",
                        f"params: {params}").replace("seeds: 20", f"seeds: {seeds}").replace(
        "type: scripted:retail", f"type: {agent}")


class TruthAgent(ScriptedRetailAgent):
    """Remembers where it injected its first error, as ground truth for attribution."""

    truth: dict[int, str] = {}

    def _err(self, node: str) -> bool:
        erred = super()._err(node)
        if erred:
            TruthAgent.truth.setdefault(self.ctx.seed, node)
        return erred


@pytest.mark.slow
def test_independent_errors_recovered_and_not_called_correlated(store):
    run = run_source(store, scenario("{error_rates: {resolve: 0.10, reply: 0.15}}", 1500))
    s = summarize(load_run(store, run.run_id))
    nodes = {n.node: n.accuracy for n in s.nodes}
    assert nodes["resolve"].lo <= 0.90 <= nodes["resolve"].hi
    assert nodes["reply"].lo <= 0.85 <= nodes["reply"].hi
    sc = s.reliability.shared_cause
    assert sc.verdict == "independent", sc
    assert sc.co_error_ratio.lo <= 1.0 <= sc.co_error_ratio.hi


@pytest.mark.slow
def test_correlated_errors_are_detected(store):
    run = run_source(store, scenario(
        "{error_rates: {resolve: 0.06, reply: 0.06}, bad_day_rate: 0.15, "
        "bad_day_multiplier: 8}", 1500))
    sc = summarize(load_run(store, run.run_id)).reliability.shared_cause
    assert sc.verdict == "shared_cause" and sc.co_error_ratio.lo > 1.0, sc


@pytest.mark.slow
def test_first_errors_land_on_the_node_that_erred(store):
    TruthAgent.truth.clear()
    run = run_source(store, scenario(
        "{error_rates: {verify_identity: 0.05, lookup_order: 0.05, resolve: 0.1, reply: 0.05}}",
        600, agent="tests.test_analysis_recovery:TruthAgent"))
    episodes = store.episodes(run.run_id)
    with_errors = [e for e in episodes if e.seed in TruthAgent.truth]
    assert len(with_errors) > 80
    right = sum(e.first_error_node == TruthAgent.truth[e.seed] for e in with_errors)
    assert right / len(with_errors) >= 0.95
    failed = [e for e in episodes if e.success is False]
    right_failed = sum(e.first_error_node == TruthAgent.truth.get(e.seed) for e in failed)
    assert right_failed / len(failed) >= 0.95


def test_decisive_error_by_counterfactual_replay(store):
    # A typo at verify_identity is corrected by the agent itself: a first error that is not
    # decisive. Wrong lookups and wrong refunds are decisive.
    run = run_source(store, scenario(
        "{error_rates: {verify_identity: 0.3, lookup_order: 0.1, resolve: 0.1}}", 60))
    atts = anyio.run(attribute_run, store, run.run_id)
    failed = [e for e in store.episodes(run.run_id) if e.success is False]
    assert len(atts) == len(failed) > 5
    found = [a for a in atts if a.decisive_step is not None]
    assert len(found) >= 0.9 * len(atts)
    assert {a.decisive_node for a in found} <= {"lookup_order", "resolve"}
    # where the typo came first, the decisive error is later than the first error
    assert any(a.first_error_node == "verify_identity" and a.decisive_step > a.first_error_step
               for a in found)
    s = summarize(load_run(store, run.run_id))
    assert s.decisive_errors.attributed == len(atts)
