"""Checkpoint policies, deny semantics, simulated humans, policy comparison and placement."""

from __future__ import annotations

import random

import pytest

from tests.helpers import RETAIL, run_source
from trialrun.analysis.data import load_run
from trialrun.analysis.policies import place_checkpoints
from trialrun.analysis.summary import summarize
from trialrun.checkpoints import Nodes, ReviewRequest, parse_label
from trialrun.humans import SimulatedHuman, SimulatedOptions
from trialrun.runner import RunOptions, run_episodes
from trialrun.scenarios.loader import ScenarioError, load_scenario_source
from trialrun.trajectory import Decision
from trialrun.variants import policy_variants

BASE = (RETAIL / "known_error_rates.yaml").read_text()


def with_checkpoints(block: str, seeds: int) -> str:
    return BASE.replace("seeds: 20", f"seeds: {seeds}") + f"checkpoints: {block}\n"


def test_deny_semantics(store):
    # An oracle human denies exactly the wrong decisions.
    abort = run_source(store, with_checkpoints(
        "{policy: before_irreversible, on_deny: abort, human: {type: oracle}}", 150))
    ends = {r.end_reason.value for r in abort.results}
    assert "aborted" in ends
    assert all(r.success is False for r in abort.results if r.end_reason == "aborted")
    takeover = run_source(store, with_checkpoints(
        "{policy: nodes, nodes: [resolve], on_deny: takeover, human: {type: oracle}}", 150))
    # The human does the refund right every time it is wrong: only lookup errors remain.
    taken = [st for r in takeover.results for st in r.steps
             if st.checkpoint and st.checkpoint.action == "takeover"]
    assert taken and all(st.result.ok for st in taken)
    s = summarize(load_run(store, takeover.run_id), deep=False)
    assert s.success.rate >= 0.9
    retry = run_source(store, with_checkpoints(
        "{policy: nodes, nodes: [resolve], on_deny: retry, max_retries: 5, "
        "human: {type: oracle}}", 150))
    denied = [r for r in retry.results if any(st.checkpoint and not st.checkpoint.approved
                                              for st in r.steps)]
    assert denied
    # a denied decision has no effect, and the agent decides again (at resolve, or it
    # replies when, told no, it finds the policy calls for no action)
    for r in denied:
        i = next(i for i, st in enumerate(r.steps) if st.checkpoint and
                 not st.checkpoint.approved)
        assert r.steps[i].result is None
        assert r.steps[i].state_digest == r.steps[i - 1].state_digest
        assert r.steps[i + 1].node in ("resolve", "reply")
    assert any(r.steps[i + 1].node == "resolve" for r in denied
               for i, st in enumerate(r.steps) if st.checkpoint and not st.checkpoint.approved)


def test_scripted_human_answers_in_order(store):
    run = run_source(store, with_checkpoints(
        "{policy: always, on_deny: retry, human: {type: scripted, answers: [approve, deny]}}",
        1))
    (r,) = run.results
    answers = [st.checkpoint.approved for st in r.steps if st.checkpoint]
    assert answers[:3] == [True, False, True]


def test_simulated_human_recall_specificity_and_fatigue():
    h = SimulatedHuman({"recall": 0.8, "false_deny_rate": 0.1}, random.Random(1))
    caught = sum(not h.review_now(False).approved for _ in range(4000)) / 4000
    false_denied = sum(not h.review_now(True).approved for _ in range(4000)) / 4000
    assert abs(caught - 0.8) < 0.03 and abs(false_denied - 0.1) < 0.02
    tired = SimulatedHuman({"recall": 0.9, "fatigue": 0.1}, random.Random(2))
    early = sum(not tired.review_now(False).approved for _ in range(5))
    late = sum(not tired.review_now(False).approved for _ in range(200))
    assert late / 200 < early / 5 or late / 200 < 0.3


def test_policy_labels_round_trip_and_reject_nonsense():
    assert parse_label("every_n:3") == ("every_n", {"n": "3"})
    name, opts = parse_label("nodes:resolve+reply")
    policy = Nodes(opts)
    assert policy.options.nodes == ["resolve", "reply"]
    assert Nodes.label(policy.options) == "nodes:resolve+reply"
    d = Decision(kind="tool_call", node="reply", tool="reply")
    assert policy.should_review(ReviewRequest(d, 0, False, 0)) == "node reply is checked"
    with pytest.raises(LookupError, match="unknown checkpoint 'sometimes'"):
        parse_label("sometimes")
    with pytest.raises(ValueError, match="takes no argument"):
        parse_label("never:3")
    with pytest.raises(ValueError, match="every_n:x"):
        policy_variants([load_scenario_source(BASE, "k.yaml")], ["every_n:x"])


def test_checkpoint_options_are_checked_at_load_time():
    with pytest.raises(ScenarioError, match="checkpoints.n: unknown key"):
        load_scenario_source(with_checkpoints("{policy: before_irreversible, n: 3}", 1),
                             "k.yaml")
    with pytest.raises(ScenarioError, match="checkpoints.human.recal: unknown key"):
        load_scenario_source(with_checkpoints("{policy: always, human: {recal: 0.5}}", 1),
                             "k.yaml")


def test_the_policy_is_stored_with_every_episode(store):
    run = run_source(store, with_checkpoints("{policy: every_n, n: 2}", 2))
    assert {r.policy for r in run.results} == {"every_n:2"}
    reasons = {st.checkpoint.reason for r in run.results for st in r.steps if st.checkpoint}
    assert reasons == {"every 2 decisions"}
    assert set(load_run(store, run.run_id).policy) == {"every_n:2"}


@pytest.mark.slow
def test_compare_policies_and_frontier(store):
    loaded = policy_variants([load_scenario_source(BASE.replace("seeds: 20", "seeds: 300"),
                                                   "k.yaml")],
                             ["never", "before_irreversible", "always"])
    import anyio

    run = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions()))
    s = summarize(load_run(store, run.run_id))
    by = {p.policy: p for p in s.policies}
    assert set(by) == {"never", "before_irreversible", "always"}
    assert by["never"].reviews_per_episode == 0 and by["never"].on_frontier
    assert by["always"].reviews_per_episode > by["before_irreversible"].reviews_per_episode > 0
    assert by["before_irreversible"].success > by["never"].success
    assert by["always"].human_minutes_per_episode > by["before_irreversible"].\
        human_minutes_per_episode


@pytest.mark.slow
def test_optimiser_prediction_matches_a_run_with_that_placement(store):
    measured = run_source(store, BASE.replace("seeds: 20", "seeds: 800"))
    data = load_run(store, measured.run_id)
    human = SimulatedOptions(recall=0.9, false_deny_rate=0.05)
    plan = place_checkpoints(data, 1, human.recall, human.specificity, 30)
    assert plan.nodes == ["resolve"]  # the least accurate node, 0.90
    assert plan.predicted_success > plan.baseline_success
    check = run_source(store, with_checkpoints(
        "{policy: nodes, nodes: [resolve], on_deny: retry, max_retries: 3, "
        "human: {recall: 0.9, false_deny_rate: 0.05}}", 800))
    s = summarize(load_run(store, check.run_id), deep=False)
    assert s.success.lo <= plan.predicted_success <= s.success.hi, (plan.predicted_success,
                                                                     s.success)


def test_escalation_always_ask_vs_never_ask_in_words(store):
    always = run_source(store, (RETAIL / "clear_always_ask.yaml").read_text())
    e = summarize(load_run(store, always.run_id)).reliability.escalation
    assert e.fp > 0 and e.tp == 0 and e.precision == 0
    assert "asks too often" in e.verdict
    never = run_source(store, (RETAIL / "ambiguous_never_ask.yaml").read_text())
    e = summarize(load_run(store, never.run_id)).reliability.escalation
    assert e.recall == 0 and e.fn > 0
    assert "never asks" in e.verdict and "too rarely" in e.verdict
    both = run_source(store, (RETAIL / "ambiguous_refund.yaml").read_text())
    e = summarize(load_run(store, both.run_id)).reliability.escalation
    assert e.recall == 1.0 and e.precision == 1.0 and "right moments" in e.verdict


def test_a_suite_mixing_policies_on_different_tasks_is_not_a_policy_comparison(store):
    from tests.helpers import run_scenarios

    run = run_scenarios(store, [RETAIL / "refund_in_window.yaml",
                                RETAIL / "known_error_rates.yaml"], seeds=2)
    d = load_run(store, run.run_id)
    assert set(d.policy) == {"before_irreversible", "never"}
    assert summarize(d, deep=False).policies == []


def test_the_scenarios_escalation_prices_reach_the_analysis(store):
    text = (RETAIL / "ambiguous_refund.yaml").read_text() + \
        "escalation: {cost_per_ask: 2.5, cost_per_error: 40}\n"
    run = run_source(store, text)
    d = load_run(store, run.run_id)
    assert (d.cost_per_ask, d.cost_per_error) == (2.5, 40)
    e = summarize(d).reliability.escalation  # the prices come with the run
    assert (e.cost_per_ask, e.cost_per_error) == (2.5, 40)
