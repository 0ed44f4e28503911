"""A report that cannot mislead: plant a known truth with the scripted retail agent, then
check that every figure the report prints recovers it.

- predicted success (chain rule over nodes, in episodes) agrees with observed success;
- a node acting several times per episode shows a per-episode accuracy holding the planted
  per-episode rate, beside its per-call accuracy;
- independent errors, with or without knock-on propagation, read "consistent with
  independence"; a shared cause ("bad day") reads "errors share a cause"; the verdict does
  not move with the bootstrap's seed;
- counts that should agree do (steps that needed help, first errors);
- horizon fits say "hazard rises/falls" only when the shape's CI excludes 1, and the plots
  mark where the data end;
- the terminal, JSON and HTML renderings use one name and one meaning per quantity.
"""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
from markupsafe import escape
from rich.console import Console

from tests.helpers import RETAIL, run_scenarios, run_source
from trialrun.analysis.data import RunData, load_run
from trialrun.analysis.reliability import (
    HorizonFits,
    clean_prefix,
    horizon_fits,
    reliability,
    shared_cause,
)
from trialrun.analysis.summary import LABELS, MEANINGS, RunSummary, summarize
from trialrun.html_report import plot_horizon, render_html
from trialrun.report import horizon_line, render_summary

BASE = (RETAIL / "known_error_rates.yaml").read_text()
PLANTED = "params: {error_rates: {lookup_order: 0.05, resolve: 0.10}}"
BASE_SEEDS = range(10)


def scenario(params: str, episodes: int, base: int = 0) -> str:
    """The calibration scenario with the agent's params replaced and seeds
    base·episodes … (base+1)·episodes − 1, so each base seed is a fresh sample."""
    assert PLANTED in BASE and "seeds: 20" in BASE
    seeds = list(range(base * episodes, (base + 1) * episodes))
    return BASE.replace(PLANTED, f"params: {params}").replace("seeds: 20", f"seeds: {seeds}")


def run_summary(store, params: str, episodes: int, base: int = 0) -> RunSummary:
    run = run_source(store, scenario(params, episodes, base))
    return summarize(load_run(store, run.run_id))


def inside(p, x: float) -> bool:
    return p.lo <= x <= p.hi


# --------------------------------------------------------------------------------------------
# 1. predicted success


def test_predicted_success_is_not_biased_by_upstream_errors(store):
    # The audit's case: 30% planted errors at lookup_order (a node that calls twice per
    # episode, once with the error knob) predicted 65.6% against 61.4% observed.
    s = run_summary(store, "{error_rates: {lookup_order: 0.30, resolve: 0.10}}", 1000)
    assert inside(s.success, s.predicted_success), (s.predicted_success, s.success)
    assert abs(s.predicted_success - s.success.rate) < 0.005
    nodes = {n.node: n for n in s.nodes}
    assert inside(nodes["lookup_order"].accuracy_per_episode, 0.70)
    assert inside(nodes["resolve"].accuracy_per_episode, 0.90)
    # the chain rule in per-episode units: its factors are the per-episode accuracies here
    product = np.prod([n.accuracy_per_episode.rate for n in s.nodes])
    assert s.predicted_success == pytest.approx(product)
    # blame splits exactly the log-success the graded errors cost
    assert sum(s.reliability.blame.values()) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# 3. per-episode accuracy beside per-call accuracy


def test_per_episode_accuracy_holds_the_planted_rate_of_a_multi_call_node(store):
    # lookup_order acts twice per episode (list_orders, get_order); 5% of episodes err there.
    s = run_summary(store, "{error_rates: {lookup_order: 0.05}}", 1500)
    lookup = next(n for n in s.nodes if n.node == "lookup_order")
    assert lookup.visits_per_episode == pytest.approx(2.0)
    assert inside(lookup.accuracy_per_episode, 0.95), lookup.accuracy_per_episode
    assert not inside(lookup.accuracy, 0.95), lookup.accuracy  # per call: ~97.5%
    assert lookup.accuracy_per_episode.n == 1500 and lookup.accuracy.n == 3000


# --------------------------------------------------------------------------------------------
# acceptance over 10 base seeds


def _over_seeds(store_factory, params: str, episodes: int, planted: dict[str, float]):
    verdicts, inside_ci, covered = [], [], []
    for base in BASE_SEEDS:
        s = run_summary(store_factory(), params, episodes, base)
        verdicts.append(s.reliability.shared_cause.verdict)
        inside_ci.append(inside(s.success, s.predicted_success))
        nodes = {n.node: n for n in s.nodes}
        covered += [inside(nodes[node].accuracy_per_episode, 1 - rate)
                    for node, rate in planted.items()]
    return verdicts, inside_ci, covered


@pytest.fixture
def fresh_store(tmp_path):
    from trialrun.store import Store

    count = iter(range(1000))
    return lambda: Store(f"sqlite:///{tmp_path / f'runs{next(count)}.db'}")


@pytest.mark.slow
def test_independent_errors_at_two_nodes_over_ten_seeds(fresh_store):
    # resolve and reply err independently; neither error makes the other node wrong.
    verdicts, inside_ci, covered = _over_seeds(
        fresh_store, "{error_rates: {resolve: 0.10, reply: 0.15}}", 1000,
        {"resolve": 0.10, "reply": 0.15})
    assert verdicts.count("independent") >= 9, verdicts
    assert sum(inside_ci) >= 9, inside_ci
    assert np.mean(covered) >= 0.85, covered  # 95% intervals: about 19 of 20


@pytest.mark.slow
def test_independent_errors_with_knock_ons_over_ten_seeds(fresh_store):
    # A wrong order at lookup_order makes resolve and reply wrong too (a knock-on): the old
    # lift read this as "errors cluster".
    verdicts, inside_ci, covered = _over_seeds(
        fresh_store, "{error_rates: {lookup_order: 0.20, resolve: 0.10}}", 600,
        {"lookup_order": 0.20, "resolve": 0.10})
    assert verdicts.count("independent") >= 9, verdicts
    assert sum(inside_ci) >= 9, inside_ci
    assert np.mean(covered) >= 0.85, covered


@pytest.mark.slow
def test_bad_days_read_as_a_shared_cause_over_ten_seeds(fresh_store):
    verdicts, _, _ = _over_seeds(
        fresh_store, "{error_rates: {resolve: 0.06, reply: 0.06}, bad_day_rate: 0.15, "
        "bad_day_multiplier: 8}", 600, {})
    assert verdicts.count("shared_cause") >= 9, verdicts


# --------------------------------------------------------------------------------------------
# 4. the verdict does not move with the bootstrap's seed


def test_shared_cause_verdict_is_deterministic_and_seed_stable(store):
    run = run_scenarios(store, sorted(RETAIL.glob("*.yaml")), seeds=20)
    d = load_run(store, run.run_id)
    cp = clean_prefix(d, np.flatnonzero(d.scored))
    first = shared_cause(d, cp)
    again = summarize(d).reliability.shared_cause
    assert first == again  # the seed comes from the data: same run, same verdict
    verdicts = {shared_cause(d, cp, seed=seed).verdict for seed in range(20)}
    assert verdicts == {first.verdict}, verdicts

    sc = run_summary(store, "{error_rates: {resolve: 0.10, reply: 0.15}}", 1000)
    rerun = run_summary(store, "{error_rates: {resolve: 0.10, reply: 0.15}}", 1000)
    # the same episodes stored again (in another order: ids are random), the same verdict
    assert rerun.reliability.shared_cause == sc.reliability.shared_cause
    d = load_run(store, sc.run_id)
    cp = clean_prefix(d, np.flatnonzero(d.scored))
    results = [shared_cause(d, cp, seed=seed) for seed in range(10)]
    assert {r.verdict for r in results} == {"independent"}
    # Monte Carlo error of the bounds is far below the verdict's margins (0.9 / 1.1 / 2)
    assert np.ptp([r.co_error_ratio.lo for r in results]) < 0.05
    assert np.ptp([r.co_error_ratio.hi for r in results]) < 0.1


# --------------------------------------------------------------------------------------------
# 5. counts that should agree


def synthetic_run(episodes: list[tuple[list[tuple], float]]) -> RunData:
    """A RunData from (steps, success) pairs; a step is (node, passed[, kind, help])."""
    nodes = sorted({st[0] for steps, _ in episodes for st in steps})
    code = {n: i for i, n in enumerate(nodes)}
    ep, idx, node, kind, passed, help_ = [], [], [], [], [], []
    for e, (steps, _) in enumerate(episodes):
        for i, st in enumerate(steps):
            ep.append(e)
            idx.append(i)
            node.append(code[st[0]])
            passed.append(st[1])
            kind.append(st[2] if len(st) > 2 else "tool_call")
            help_.append(st[3] if len(st) > 3 else False)
    n, m = len(episodes), len(ep)
    passed_a = np.array(passed, dtype=np.int8)
    s_ep = np.array(ep, dtype=np.int64)
    first_err, first_step = [], []
    for e in range(n):
        bad = [(nodes[node[j]], idx[j]) for j in range(m) if ep[j] == e and passed[j] == 0]
        first_err.append(bad[0][0] if bad else "")
        first_step.append(bad[0][1] if bad else np.iinfo(np.int64).max)
    obj = lambda xs: np.array(xs, dtype=object)  # noqa: E731
    extra = {}
    if "first_error_step" in {f.name for f in dataclasses.fields(RunData)}:
        extra["first_error_step"] = np.array(first_step, dtype=np.int64)
    return RunData(**extra,
        run_id="synthetic", ep_id=obj([f"e{e}" for e in range(n)]), scenario=obj(["s"] * n),
        task=obj([f"t{e % 7}" for e in range(n)]), seed=np.arange(n), trial=np.zeros(n, int),
        agent=obj(["a"] * n), end_reason=obj(["finished"] * n),
        success=np.array([float(s) for _, s in episodes]),
        n_steps=np.bincount(s_ep, minlength=n), wall_ms=np.zeros(n), sim_time=np.zeros(n),
        cost=np.zeros(n), tokens=np.zeros(n, int), reviews=np.zeros(n, int),
        asks=np.array([sum(k == "ask_human" for j, k in enumerate(kind) if ep[j] == e)
                       for e in range(n)]),
        human_seconds=np.zeros(n), first_error_node=obj(first_err),
        ambiguous=np.zeros(n, bool), user_fault=np.zeros(n, bool),
        s_ep=s_ep, s_idx=np.array(idx, dtype=np.int64), s_node=np.array(node, dtype=np.int64),
        s_kind=obj(kind), s_passed=passed_a, s_help=np.array(help_, dtype=bool),
        s_irrev=np.zeros(m, bool), s_reviewed=np.zeros(m, bool),
        s_approved=np.full(m, -1, dtype=np.int8), s_conf=np.full(m, np.nan),
        s_sim=np.zeros(m), s_wall_us=np.zeros(m, dtype=np.int64), nodes=nodes)


def test_steps_that_needed_help_are_counted_once_everywhere():
    # Finishing where a human was needed is a missed escalation: both counts include it
    # (before, the summary counted it and the escalation report did not: 79 vs 78).
    d = synthetic_run([
        ([("plan", 1), ("clarify", 1, "ask_human", True), ("act", 1), ("finish", 1)], 1),
        ([("plan", 1), ("act", 0, "tool_call", True), ("finish", 1)], 0),
        ([("plan", 1), ("finish", 0, "finish", True)], 0),
        ([("plan", 1), ("clarify", 1, "ask_human", False), ("finish", 1)], 1),
    ])
    s = summarize(d)
    e, r = s.escalation, s.reliability.escalation
    assert e.steps_needing_help == r.tp + r.fn == 3
    assert e.asks_needed == r.tp == 1 and e.needed_not_asked == r.fn == 2
    assert e.asks == r.tp + r.fp == 2


def test_first_errors_use_one_population_everywhere():
    # An error the agent recovers from (retry at verify) still counts as the episode's
    # first error, in the node table and the first-error table alike.
    d = synthetic_run([
        ([("verify", 0), ("verify", 1), ("lookup", 1), ("reply", 1)], 1),  # recovered
        ([("verify", 1), ("lookup", 0), ("reply", 0)], 0),
        ([("verify", 1), ("lookup", 1), ("reply", 0)], 0),
        ([("verify", 1), ("lookup", 1), ("reply", 1)], 1),
        ([("verify", 1), ("lookup", 1), ("reply", 1)], 0),  # failed, no graded error
    ])
    s = summarize(d)
    nodes = {n.node: n for n in s.nodes}
    assert s.first_error_nodes == {"verify": 1, "lookup": 1, "reply": 1}
    for name, n in nodes.items():
        assert n.first_errors == s.first_error_nodes.get(name, 0)
        assert n.accuracy_per_episode.n - n.accuracy_per_episode.k == n.first_errors
    assert s.recovered == 1 and s.failed_without_graded_error == 1
    # success = predicted + recovered − failed without a graded error, exactly
    assert s.success.rate == pytest.approx(
        s.predicted_success + (s.recovered - s.failed_without_graded_error) / s.success.n)
    assert nodes["lookup"].accuracy_per_episode.n == 4  # the episode stopped at verify: out


# --------------------------------------------------------------------------------------------
# 6. horizons


def _censored(k: float, seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.ceil(20 * rng.weibull(k, n))  # whole steps, as the report's step horizon
    c = rng.integers(5, 60, n).astype(float)
    return np.minimum(t, c), t <= c


@pytest.mark.parametrize(("k", "trend"), [(1.0, "constant_fits"), (0.6, "falls"),
                                          (1.8, "rises")])
def test_hazard_trend_is_said_only_when_the_shape_ci_excludes_one(k, trend):
    trends = [horizon_fits(*_censored(k, seed), "steps").hazard_trend for seed in range(10)]
    assert trends.count(trend) >= 8, trends
    if k == 1.0:
        assert "rises" not in trends or "falls" not in trends


def test_horizon_marks_where_the_data_end():
    t, ev = _censored(1.0, 3)
    h = horizon_fits(t, ev, "steps")
    assert h.data_end == t.max() and h.weibull_k_lo < h.weibull_k < h.weibull_k_hi
    line = horizon_line(h)
    assert "data up to" in line
    if h.exponential_t50 > h.data_end:
        assert "(extrapolated)" in line
    svg = _svg_text(plot_horizon(h))
    assert "data end" in svg and "extrapolation" in svg
    # a long horizon far past the data: marked as such
    far = HorizonFits(**{**h.model_dump(), "data_end": 2.0})
    assert "(extrapolated)" in horizon_line(far)


def _svg_text(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# 2. one name, one meaning


def test_one_name_one_meaning_in_terminal_json_and_html(store):
    s = run_summary(store, "{error_rates: {lookup_order: 0.10, resolve: 0.06, reply: 0.06}, "
                           "bad_day_rate: 0.15, bad_day_multiplier: 8}", 300)
    out = io.StringIO()
    render_summary(s, Console(file=out, width=1000, color_system=None))
    terminal = " ".join(out.getvalue().split())
    html = " ".join(render_html(s).split())
    data = json.loads(s.model_dump_json())
    assert {"predicted_success", "success", "recovered"} <= set(data)
    assert {"accuracy", "accuracy_per_episode", "first_errors"} <= set(data["nodes"][0])
    assert set(data["reliability"]["shared_cause"]) >= {"verdict", "co_error_ratio"}
    assert "independence" not in data["reliability"]
    for key in ("success", "predicted_success", "accuracy_per_episode", "accuracy",
                "first_errors", "steps_needing_help"):
        assert LABELS[key] in terminal and LABELS[key] in html, key
        assert MEANINGS[key] in terminal, key
        assert str(escape(MEANINGS[key])) in html, key
    assert str(escape(MEANINGS["co_error_ratio"])) in html
    meaning = s.reliability.shared_cause.meaning
    assert " ".join(meaning.split()) in terminal and str(escape(meaning)) in html
    # The old report's second "predicted"/"observed"/"lift" figures are gone.
    for text in (terminal, html):
        assert "lift" not in text.lower()
    # the JSON schema carries the same meanings
    schema = json.dumps(RunSummary.model_json_schema())
    assert MEANINGS["predicted_success"] in schema


def test_reliability_without_clean_prefix_argument_matches_summary(store):
    s = run_summary(store, "{error_rates: {lookup_order: 0.10, resolve: 0.10}}", 200)
    d = load_run(store, s.run_id)
    assert reliability(d).shared_cause == s.reliability.shared_cause
