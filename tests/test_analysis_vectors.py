"""Worked examples from ANALYSIS.md as test vectors, plus property tests that can fail."""

from __future__ import annotations

import itertools
import math
import time

import networkx as nx
import numpy as np
import pytest
from scipy import optimize, special
from scipy.stats import binom

from trialrun.analysis import compounding as cp
from trialrun.analysis import escalation as esc
from trialrun.analysis import horizon as hz
from trialrun.analysis import placement as pl
from trialrun.analysis import stats as sx


def approx(x: float, tol: float = 1e-6):
    """ANALYSIS.md quotes 6 decimals unless it shows fewer; tol widens to its rounding."""
    return pytest.approx(x, abs=tol)


# ---------------------------------------------------------------------------
# Section 1: compounding error and root cause
# ---------------------------------------------------------------------------


def test_chain_success_and_n50():
    assert cp.chain_success([0.9, 0.8, 0.95]) == approx(0.684)
    assert cp.chain_success([0.75] * 2) == approx(0.5625)
    assert cp.chain_success([0.75] * 10) == approx(0.056314)
    assert cp.steps_to(0.99) == approx(68.968, tol=5e-4)
    assert cp.steps_to(1.0) == math.inf


def _lift_matrix() -> np.ndarray:
    rows = [(True, True)] * 156 + [(True, False)] * 24 + [(False, True)] * 4
    rows += [(False, False)] * 16
    return np.array(rows)


def test_independence_lift_worked_example():
    ok = _lift_matrix()
    res = cp.independence_lift(ok)
    assert res.marginals == (approx(0.9), approx(0.8))
    assert res.predicted == approx(0.72)
    assert res.observed == approx(0.78)
    assert res.lift == approx(1.083333)
    table = cp.contingency_2x2(ok[:, 0], ok[:, 1])
    assert table.tolist() == [[156, 24], [4, 16]]
    odds, p = cp.odds_ratio_fisher(table)
    assert odds == approx(26.0)
    assert p == pytest.approx(1.06e-9, rel=5e-3)


def test_lift_ci_contains_estimate_and_independent_data_near_one():
    res = cp.lift_ci(_lift_matrix(), n_boot=500, seed=1)
    assert res.lo <= res.estimate <= res.hi
    assert res.estimate == approx(1.083333)
    rng = np.random.default_rng(3)
    indep = rng.random((20_000, 3)) < np.array([0.9, 0.8, 0.95])
    ci = cp.lift_ci(indep, n_boot=300, seed=0)
    assert ci.lo < 1.0 < ci.hi


def test_blame_shares():
    shares = cp.blame_shares([0.9, 0.8667])
    assert shares[0] == approx(0.4241, tol=5e-5)
    assert shares[1] == approx(0.5759, tol=5e-5)
    assert cp.blame_shares([1.0, 1.0]).tolist() == [0.0, 0.0]
    assert cp.blame_shares([0.0, 0.5, 0.0]).tolist() == [0.5, 0.0, 0.5]


def test_beta_binomial():
    a, b = cp.beta_params(0.9, 0.2)
    assert (a, b) == (approx(3.6), approx(0.4))
    assert cp.beta_binomial_all_ok(0.9, 0.2, 5) == approx(0.692208)
    assert cp.beta_binomial_all_ok(0.9, 0.0, 5) == approx(0.590490)
    # correlated errors pile up in the same episodes, so P(all ok) rises with rho
    vals = [cp.beta_binomial_all_ok(0.9, r, 5) for r in (1e-6, 0.1, 0.2, 0.5)]
    assert vals[0] == approx(0.9**5, tol=1e-5)
    assert all(x < y for x, y in itertools.pairwise(vals))


def test_recovery_markov():
    g = cp.recovery_curve(0.9, 0.95, 0.3, 5)
    assert g[0] == approx(0.9)
    assert g[4] == approx(0.864793)
    assert cp.recovery_stationary(0.95, 0.3) == approx(0.857143)
    assert cp.recovery_curve(0.9, 0.95, 0.3, 500)[-1] == approx(0.857143)


def _plan_act_check() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_edge("Plan", "Act", p=0.9)
    g.add_edge("Plan", "Fail", p=0.1)
    g.add_edge("Act", "Check", p=0.8)
    g.add_edge("Act", "Fail", p=0.2)
    g.add_edge("Check", "Success", p=0.7)
    g.add_edge("Check", "Plan", p=0.2)
    g.add_edge("Check", "Fail", p=0.1)
    return g


def test_absorbing_chain():
    res = cp.absorbing_chain(_plan_act_check(), "Plan")
    assert res.p_success == approx(0.588785)
    assert res.total_visits == approx(3.060748)
    assert res.absorption["Success"] + res.absorption["Fail"] == approx(1.0)
    assert sum(res.visits.values()) == approx(res.total_visits)
    # one pass is 0.9·0.8 = 0.72 of reaching Check, loops back with 0.2
    assert res.visits["Check"] == approx(0.72 / (1 - 0.72 * 0.2))


def test_absorbing_chain_matches_simulation():
    rng = np.random.default_rng(0)
    g = _plan_act_check()
    wins = 0
    for _ in range(20_000):
        node = "Plan"
        while g.out_degree(node):
            nbrs = list(g.successors(node))
            probs = [g[node][v]["p"] for v in nbrs]
            node = nbrs[rng.choice(len(nbrs), p=probs)]
        wins += node == "Success"
    assert wins / 20_000 == pytest.approx(0.588785, abs=0.015)


def test_absorbing_chain_rejects_trap_loop():
    g = nx.DiGraph()
    g.add_edge("A", "B", p=1.0)
    g.add_edge("B", "A", p=1.0)
    g.add_edge("C", "Success", p=1.0)
    with pytest.raises(ValueError):
        cp.absorbing_chain(g, "A")


def test_root_cause_helpers():
    flips = [False, True, False, True, False, False]
    assert cp.decisive_error(flips) == 1  # "step 2" in ANALYSIS.md's 1-based wording
    assert cp.decisive_error([False, False]) is None
    assert cp.first_error([True, True, False, False]) == 2
    assert cp.first_error([True]) is None
    assert cp.localization_f1(30, 60, 32, 40) == approx(0.615385)
    assert cp.localization_f1(0, 60, 32, 40) == 0.0
    assert cp.localization_f1(1, 0, 1, 1) is None


def test_lift_is_fast_on_100k_episodes():
    rng = np.random.default_rng(0)
    ok = rng.random((100_000, 8)) < 0.95
    t0 = time.perf_counter()
    cp.independence_lift(ok)
    ci = cp.lift_ci(ok, n_boot=1000, seed=0)
    assert time.perf_counter() - t0 < 1.0
    assert ci.lo <= ci.estimate <= ci.hi


# ---------------------------------------------------------------------------
# Section 1: horizons
# ---------------------------------------------------------------------------


def test_metr_horizon():
    assert hz.logistic_horizon(3, -0.5, 0.5) == approx(64.0)
    assert hz.logistic_horizon(3, -0.5, 0.8) == approx(9.3659, tol=5e-5)


def test_fit_logistic_horizon_matches_generic_optimiser():
    rng = np.random.default_rng(7)
    lengths = 2 ** rng.uniform(0, 10, 4000)
    p = special.expit(3 - 0.5 * np.log2(lengths))
    y = rng.random(4000) < p
    fit = hz.fit_logistic_horizon(lengths, y)
    x = np.log2(lengths)

    def nll(b):
        eta = b[0] + b[1] * x
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    ref = optimize.minimize(nll, [0.0, 0.0], method="BFGS", options={"gtol": 1e-9}).x
    assert fit.beta0 == pytest.approx(ref[0], abs=1e-4)
    assert fit.beta1 == pytest.approx(ref[1], abs=1e-4)
    assert fit.h50 == approx(2 ** (-fit.beta0 / fit.beta1))
    assert fit.beta0 == pytest.approx(3, abs=0.3)
    assert fit.beta1 == pytest.approx(-0.5, abs=0.06)


def test_fit_logistic_horizon_rejects_separable_data():
    with pytest.raises(ValueError):
        hz.fit_logistic_horizon([1, 2, 4, 8], [1, 1, 0, 0])


def test_constant_hazard():
    lam = hz.exponential_rate_from_t50(60)
    assert lam == approx(0.011552)
    assert hz.exponential_survival(120, lam) == approx(0.25)
    assert hz.exponential_horizon(lam, 0.8) == approx(19.3157, tol=5e-5)
    assert hz.exponential_horizon(lam, 0.99) == approx(0.8700, tol=5e-5)


def test_weibull():
    eta = hz.weibull_eta_from_t50(60, 0.6)
    assert eta == approx(110.5203, tol=5e-5)
    assert hz.weibull_horizon(eta, 0.6, 0.8) == approx(9.0730, tol=5e-5)
    assert hz.weibull_survival(240, eta, 0.6) == approx(0.2034, tol=5e-5)
    assert hz.weibull_horizon(eta, 0.6, 0.5) == approx(60.0)


def _censored_weibull(n: int, eta: float, k: float, seed: int):
    rng = np.random.default_rng(seed)
    t = eta * rng.weibull(k, n)
    c = rng.uniform(0, 3 * eta, n)  # independent censoring
    return np.minimum(t, c), t <= c


def test_fit_exponential_closed_form():
    times, events = _censored_weibull(5000, 100.0, 1.0, 1)
    fit = hz.fit_exponential(times, events)
    assert fit.lam == approx(events.sum() / times.sum(), tol=1e-12)
    assert fit.lam == pytest.approx(0.01, rel=0.06)
    assert fit.t50 == approx(math.log(2) / fit.lam)


def test_fit_weibull_matches_direct_mle_and_truth():
    times, events = _censored_weibull(20_000, 110.5203, 0.6, 2)
    fit = hz.fit_weibull(times, events)

    def nll(theta):
        eta, k = np.exp(theta)
        z = times / eta
        ll = np.sum(events * (np.log(k / eta) + (k - 1) * np.log(z))) - np.sum(z**k)
        return -ll

    ref = optimize.minimize(nll, [np.log(100), 0.0], method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 5000}).x
    assert fit.eta == pytest.approx(np.exp(ref[0]), rel=1e-4)
    assert fit.k == pytest.approx(np.exp(ref[1]), rel=1e-4)
    assert fit.loglik == pytest.approx(-nll(ref), abs=1e-4)
    assert fit.k == pytest.approx(0.6, abs=0.03)
    assert fit.t50 == pytest.approx(60, rel=0.08)
    # censoring handled: a naive fit treating censoring times as failures is biased low
    naive = hz.fit_weibull(times, np.ones_like(events))
    assert naive.t50 < fit.t50


def test_weibull_with_k_one_agrees_with_exponential():
    times, events = _censored_weibull(50_000, 80.0, 1.0, 4)
    assert hz.fit_weibull(times, events).k == pytest.approx(1.0, abs=0.03)


# ---------------------------------------------------------------------------
# Section 2: checkpoint placement
# ---------------------------------------------------------------------------

P6 = [0.95, 0.9, 0.8, 0.95, 0.9, 0.85]
MODEL_B = pl.ApproveDeny(recall=0.8, specificity=0.95)
MODEL_B_DECAY = pl.ApproveDeny(recall=lambda m: 0.8 * math.exp(-0.3 * (m - 1)), specificity=0.95)


def test_model_a_worked_examples():
    p4 = [0.75] * 4
    assert pl.evaluate_placement(p4, [], pl.CatchAndFix()).success == approx(0.316406)
    assert pl.evaluate_placement(p4, [2], pl.CatchAndFix(recall=1.0)).success == approx(0.5625)
    assert pl.evaluate_placement(p4, [2], pl.CatchAndFix(recall=0.8)).success == approx(0.513281)
    model = pl.CatchAndFix(recall=0.8, specificity=0.95, c_rev=2, c_fix=10, c_fa=5)
    assert model.segment(0.5625, 2).cost == approx(5.640625)
    assert pl.evaluate_placement(p4, [2], model).expected_cost == approx(5.640625)


def test_model_b_worked_examples():
    seg = MODEL_B.segment(0.5625, 2)
    assert seg.success == approx(0.859296)
    assert seg.reviews == approx(1.608040)
    assert seg.agent_steps == approx(2 * 1.608040)
    assert pl.evaluate_placement([0.75] * 4, [2, 4], MODEL_B).success == approx(0.738390)


@pytest.mark.parametrize(
    ("budget", "model", "checkpoints", "success"),
    [
        (0, MODEL_B, (), 0.497097),
        (1, MODEL_B, (6,), 0.824412),
        (2, MODEL_B, (3, 6), 0.844513),
        (3, MODEL_B, (2, 4, 6), 0.850346),
        (1, MODEL_B_DECAY, (3,), 0.570989),
        (2, MODEL_B_DECAY, (2, 3), 0.643611),
        (3, MODEL_B_DECAY, (2, 4, 6), 0.725479),
    ],
)
def test_dp_worked_examples(budget, model, checkpoints, success):
    best = pl.optimal_placement(P6, budget, model)
    assert best.checkpoints == checkpoints
    assert best.success == approx(success)
    brute = pl.brute_force_placement(P6, budget, model)
    assert brute.checkpoints == checkpoints
    assert pl.evaluate_placement(P6, checkpoints, model).success == approx(success)


def test_model_a_constant_recall_one_review_at_end_wins():
    rng = np.random.default_rng(5)
    for _ in range(20):
        p = rng.uniform(0.6, 1.0, rng.integers(2, 9))
        best = pl.optimal_placement(p, 1, pl.CatchAndFix(recall=rng.uniform(0.1, 1)))
        assert best.checkpoints == (p.size,)


def _random_model(rng: np.random.Generator):
    r, s, decay = rng.uniform(0.3, 1), rng.uniform(0.7, 1), rng.uniform(0, 0.5)
    recall = r if rng.random() < 0.5 else (lambda m: r * math.exp(-decay * (m - 1)))
    if rng.random() < 0.5:
        return pl.ApproveDeny(recall=recall, specificity=s, c_rev=rng.uniform(0.5, 2))
    return pl.CatchAndFix(recall=recall, specificity=s, c_rev=rng.uniform(0.5, 2),
                          c_fix=rng.uniform(0, 5), c_fa=rng.uniform(0, 5))


def test_dp_equals_brute_force_on_random_chains():
    rng = np.random.default_rng(2024)
    for _ in range(150):
        n = int(rng.integers(1, 9))
        p = rng.uniform(0.5, 1.0, n)
        model = _random_model(rng)
        n_irr = int(rng.integers(0, min(2, n) + 1))
        irr = [int(k) for k in rng.choice(np.arange(1, n + 1), n_irr, replace=False)]
        budget = int(rng.integers(len(irr), n + 1))
        lam = float(rng.choice([0.0, rng.uniform(0, 0.3)]))
        dp = pl.optimal_placement(p, budget, model, irr, lam)
        bf = pl.brute_force_placement(p, budget, model, irr, lam)
        assert dp.objective == pytest.approx(bf.objective, abs=1e-9)
        assert set(irr) <= set(dp.checkpoints)
        assert len(dp.checkpoints) <= budget


def test_irreversible_steps_force_checkpoints():
    best = pl.optimal_placement(P6, 3, MODEL_B_DECAY, irreversible=[5])
    assert 5 in best.checkpoints
    assert best.success == approx(pl.brute_force_placement(P6, 3, MODEL_B_DECAY, [5]).success)
    assert pl.optimal_placement(P6, 1, MODEL_B, irreversible=[4]).checkpoints == (4,)
    with pytest.raises(ValueError):
        pl.optimal_placement(P6, 1, MODEL_B, irreversible=[2, 4])


def test_cost_frontier():
    frontier = pl.cost_frontier(P6, MODEL_B_DECAY)
    costs = [f.expected_cost for f in frontier]
    succ = [f.success for f in frontier]
    assert costs == sorted(costs)
    assert all(a < b for a, b in itertools.pairwise(succ))
    assert frontier[0].checkpoints == ()
    assert succ[-1] == approx(pl.brute_force_placement(P6, 6, MODEL_B_DECAY).success)
    forced = pl.cost_frontier(P6, MODEL_B, irreversible=[3])
    assert all(3 in f.checkpoints for f in forced)


# ---------------------------------------------------------------------------
# Section 3: escalation
# ---------------------------------------------------------------------------


def test_ask_metrics():
    m = esc.ask_metrics(30, 20, 10, 140)
    assert m.precision == approx(0.6)
    assert m.recall == approx(0.75)
    assert m.f1 == approx(0.666667)
    assert m.over_escalation == approx(0.125)
    assert m.under_escalation == approx(0.25)
    assert m.help_rate == approx(0.25)
    empty = esc.ask_metrics(0, 0, 0, 0)
    assert all(v is None for v in (empty.precision, empty.recall, empty.f1,
                                   empty.over_escalation, empty.under_escalation,
                                   empty.help_rate))
    assert esc.ask_metrics(0, 5, 5, 0).f1 == 0.0


def test_cost_report_and_chow():
    r = esc.cost_report(30, 20, 10, 140, c_h=1, c_e=10)
    assert (r.agent, r.never_ask, r.always_ask, r.oracle) == (150, 400, 200, 40)
    assert r.regret == approx(0.305556)
    assert esc.cost_report(0, 3, 0, 7, 1, 10).regret is None
    assert esc.chow_threshold(1, 10) == approx(0.9)
    assert esc.should_ask(0.85, 1, 10) and not esc.should_ask(0.95, 1, 10)


def test_aurc():
    correct = [1, 1, 0, 1, 0]
    conf = [0.9, 0.8, 0.7, 0.6, 0.5]
    assert esc.aurc(conf, correct) == approx(0.196667)
    assert esc.optimal_aurc(correct) == approx(0.13)
    assert esc.e_aurc(conf, correct) == approx(0.066667)
    cov, risk = esc.risk_coverage(conf, correct)
    assert cov.tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert risk[-1] == approx(0.4)


def test_aurc_ties_do_not_depend_on_input_order():
    rng = np.random.default_rng(0)
    conf = rng.integers(0, 4, 60) / 4
    correct = rng.random(60) < 0.7
    base = esc.aurc(conf, correct)
    for _ in range(5):
        perm = rng.permutation(60)
        assert esc.aurc(conf[perm], correct[perm]) == approx(base, tol=1e-12)
    assert esc.e_aurc(conf, correct) >= -1e-12


@pytest.mark.parametrize("n, levels", [(7, 3), (500, 1000), (200_000, 5), (200_000, 10**9)])
def test_the_lean_risk_coverage_summary_is_the_full_curve(n, levels):
    """The report's AURC and curve come from `risk_coverage_summary` (memory per tie group,
    closed-form sums); they must be the n-long curve's mean and points, with ties or none."""
    rng = np.random.default_rng(n + levels)
    conf = rng.integers(0, levels, n) / levels
    correct = rng.random(n) < 0.8
    cov, risk = esc.risk_coverage(conf, correct)
    area, curve = esc.risk_coverage_summary(conf, correct, points=50)
    assert area == approx(float(np.mean(risk)), tol=1e-12)
    pick = np.unique(np.linspace(0, n - 1, min(n, 50)).astype(int))
    assert np.allclose(curve, [(cov[i], risk[i]) for i in pick], rtol=0, atol=1e-12)


def test_knowno():
    # nine calibration examples whose 8th smallest score 1 - f(true) is 0.55
    f_true = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.45, 0.3]
    qhat = esc.knowno_qhat(f_true, 0.2)
    assert qhat == approx(0.55)
    assert esc.knowno_should_ask([0.50, 0.46, 0.04], qhat)
    assert esc.knowno_prediction_set([0.50, 0.46, 0.04], qhat) == [0, 1]
    assert not esc.knowno_should_ask([0.62, 0.33, 0.05], qhat)
    assert esc.knowno_qhat(f_true[:3], 0.2) == 1.0  # rank 4 > n = 3: keep every option


# ---------------------------------------------------------------------------
# Section 4: repeated trials
# ---------------------------------------------------------------------------


def test_pass_at_k_and_pass_hat_k():
    assert sx.pass_at_k(10, 3, 5) == approx(0.916667)
    assert sx.pass_hat_k(10, 8, 4) == approx(0.333333)
    assert 0.8**4 == approx(0.4096)
    assert sx.mean_pass_hat_k([(10, 8), (10, 5), (10, 10)], 2) == approx(0.614815)


def test_pass_hat_k_le_pass_at_k_property():
    rng = np.random.default_rng(1)
    for _ in range(500):
        n = int(rng.integers(1, 40))
        c = int(rng.integers(0, n + 1))
        k = int(rng.integers(1, n + 1))
        hat, at = sx.pass_hat_k(n, c, k), sx.pass_at_k(n, c, k)
        assert 0 <= hat <= at <= 1
        if k == 1:
            assert hat == approx(c / n) and at == approx(c / n)


def test_worst_and_best_of_k():
    scores = [0.2, 0.5, 0.7, 0.9, 1.0]
    assert sx.worst_of_k(scores, 2) == approx(0.46)
    assert sx.best_of_k(scores, 2) == approx(0.86)
    rng = np.random.default_rng(2)
    s = rng.random(12)
    assert sx.worst_of_k(s, 1) == approx(s.mean()) == sx.best_of_k(s, 1)
    assert sx.best_of_k(s, 12) == approx(s.max())
    assert sx.worst_of_k(s, 12) == approx(s.min())
    # brute force over all k-subsets
    subsets = list(itertools.combinations(s[:8], 3))
    assert sx.worst_of_k(s[:8], 3) == approx(np.mean([min(x) for x in subsets]))
    assert sx.best_of_k(s[:8], 3) == approx(np.mean([max(x) for x in subsets]))


def test_proportion_intervals():
    lo, hi = sx.wilson(8, 10)
    assert (lo, hi) == (approx(0.4902, tol=5e-5), approx(0.9433, tol=5e-5))
    lo, hi = sx.clopper_pearson(8, 10)
    assert (lo, hi) == (approx(0.4439, tol=5e-5), approx(0.9748, tol=5e-5))
    lo, hi = sx.clopper_pearson(0, 30)
    assert lo == 0.0 and hi == approx(0.1157, tol=5e-5)
    assert sx.rule_of_three(30) == approx(0.1)
    assert sx.wilson(0, 0) == (0.0, 1.0)
    for k in range(0, 21):
        for lo, hi in (sx.wilson(k, 20), sx.clopper_pearson(k, 20)):
            assert lo <= k / 20 <= hi


def test_percentiles():
    assert sx.percentiles([]) == {50: None, 90: None, 99: None}
    out = sx.percentiles(np.arange(101))
    assert out == {50: approx(50), 90: approx(90), 99: approx(99)}
    assert sx.percentiles([3.0], qs=(10,)) == {10: 3.0}


def test_mcnemar():
    r = sx.mcnemar(15, 5)
    assert r.chi2 == approx(4.05)
    assert r.p_chi2 == approx(0.044171)
    assert r.p_exact == approx(0.041389)
    assert sx.mcnemar(5, 15) == r
    assert sx.mcnemar(4, 4).p_exact == 1.0 and sx.mcnemar(0, 0).p_chi2 == 1.0


def test_sample_sizes():
    assert sx.sample_size_unpaired(0.70, 0.80) == 294
    assert sx.sample_size_paired(0.2, 0.1) == 155
    assert sx.paired_se([1, 0, -1, 0]) == approx(np.std([1, 0, -1, 0], ddof=1) / 2)
    assert sx.design_effect(10, 0.1) == approx(1.9)


def test_bootstrap_ci_contains_estimate_and_matches_analytic_se():
    rng = np.random.default_rng(0)
    n = 5000
    y = rng.random(n) < 0.3
    rows = np.column_stack([np.ones(n), y])

    def rate(s):
        return s[..., 1] / s[..., 0]

    ci = sx.bootstrap_ci(rate, rows, n_boot=2000, seed=0)
    assert ci.lo <= ci.estimate <= ci.hi
    assert ci.se == pytest.approx(math.sqrt(0.3 * 0.7 / n), rel=0.1)
    # the same data with all-distinct rows takes the index-sampling path; results agree
    jitter = np.column_stack([rows, rng.random(n) * 1e-9])
    ci2 = sx.bootstrap_ci(rate, jitter, n_boot=2000, seed=0)
    assert ci2.se == pytest.approx(ci.se, rel=0.1)
    assert ci2.estimate == approx(ci.estimate)
    assert sx.bootstrap_ci(rate, rows, n_boot=200, seed=4) == sx.bootstrap_ci(
        rate, rows, n_boot=200, seed=4
    )


def test_cluster_bootstrap_is_wider_with_correlated_tasks():
    rng = np.random.default_rng(1)
    tasks = np.repeat(np.arange(100), 50)
    task_p = rng.beta(2, 2, 100)
    y = rng.random(tasks.size) < task_p[tasks]
    rows = np.column_stack([np.ones(y.size), y])

    def rate(s):
        return s[..., 1] / s[..., 0]

    by_episode = sx.bootstrap_ci(rate, rows, n_boot=1000)
    by_task = sx.bootstrap_ci(rate, sx.cluster_sums(tasks, rows), n_boot=1000)
    assert by_task.estimate == approx(by_episode.estimate)
    assert by_task.se > 2 * by_episode.se


def test_bootstrap_fast_on_100k_episodes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=100_000)
    rows = np.column_stack([np.ones_like(x), x])
    tasks = rng.integers(0, 1000, x.size)

    def mean(s):
        return s[..., 1] / s[..., 0]

    t0 = time.perf_counter()
    by_task = sx.bootstrap_ci(mean, sx.cluster_sums(tasks, rows), n_boot=1000)
    assert time.perf_counter() - t0 < 1.0
    # worst case, every episode its own distinct cluster: 1e8 draws, a few seconds at most
    t0 = time.perf_counter()
    by_episode = sx.bootstrap_ci(mean, rows, n_boot=1000)
    assert time.perf_counter() - t0 < 5.0
    assert by_task.estimate == approx(by_episode.estimate)


# ---------------------------------------------------------------------------
# Section 5: LLM-as-judge calibration
# ---------------------------------------------------------------------------

JUDGE_HUMAN = [[40, 10], [5, 45]]  # rows judge +/-, columns human +/-


def test_kappa_alpha_se_sp():
    assert sx.cohens_kappa(JUDGE_HUMAN) == approx(0.7)
    units = [(1, 1)] * 40 + [(1, 0)] * 10 + [(0, 1)] * 5 + [(0, 0)] * 45
    assert sx.krippendorff_alpha_nominal(units) == approx(0.700752)
    se, sp = sx.sensitivity_specificity(JUDGE_HUMAN)
    assert se == approx(0.888889) and sp == approx(0.818182)
    assert sx.sensitivity_specificity([[3, 0], [0, 0]]) == (1.0, None)
    assert sx.cohens_kappa([[10, 0], [0, 10]]) == approx(1.0)


def test_krippendorff_reference_example_with_missing_data():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal: 0.743
    n = None
    coders = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    units = list(zip(*coders, strict=True))
    assert sx.krippendorff_alpha_nominal(units) == approx(0.743, tol=5e-4)
    assert sx.krippendorff_alpha_nominal([(1, float("nan"), 1), (2, 2, None)]) == 1.0


def test_rogan_gladen():
    est = sx.rogan_gladen(0.70, sensitivity=0.95, specificity=0.80, n=1000)
    assert est.value == approx(0.666667)
    assert est.se == approx(0.019322)


def _golden_set() -> tuple[np.ndarray, np.ndarray]:
    # 100 items: human 0.66, judge 0.72; 62 both 1, 4 human-only, 10 judge-only, 24 both 0
    human = np.array([1] * 62 + [1] * 4 + [0] * 10 + [0] * 24, dtype=float)
    judge = np.array([1] * 62 + [0] * 4 + [1] * 10 + [0] * 24, dtype=float)
    return human, judge


def test_ppi_mean():
    human, judge = _golden_set()
    assert human.mean() == approx(0.66) and judge.mean() == approx(0.72)
    d = human - judge
    # ANALYSIS.md uses the Bernoulli variance 0.7·0.3 for the 1000 unlabelled judge scores
    est = sx.ppi_mean_from_stats(0.70, 0.7 * 0.3, 1000, d.mean(), d.var(ddof=1), 100)
    assert est.value == approx(0.64)
    assert est.se == approx(0.039847)
    unlabelled = np.array([1.0] * 700 + [0.0] * 300)
    raw = sx.ppi_mean(unlabelled, judge, human)
    assert raw.value == approx(0.64)
    assert raw.se == approx(0.039850)  # Bessel-corrected unlabelled variance: 0.21·1000/999
    assert np.std(human, ddof=1) / 10 == approx(0.0476, tol=5e-5)
    assert raw.se < np.std(human, ddof=1) / 10


# ---------------------------------------------------------------------------
# Section 6: production monitoring
# ---------------------------------------------------------------------------


def test_sample_size_rate_and_zero_failures():
    n0 = sx.sample_size_rate(0.05, 0.02)
    assert math.ceil(n0) == 457
    assert sx.sample_size_rate(0.05, 0.02, population=5000) == approx(418.1, tol=0.05)
    assert sx.zero_failure_n(0.01, 0.95) == 299


def test_acceptance_plan():
    plan = sx.acceptance_plan(0.01, 0.05, alpha=0.05, beta=0.10)
    assert (plan.n, plan.c) == (132, 3)
    assert plan.p_accept_aql >= 0.95 and plan.p_accept_ltpd <= 0.10
    # no smaller plan exists: for every c, the smallest n protecting the consumer fails the
    # producer, or is larger than 132
    for c in range(0, 4):
        for n in range(c + 1, 132):
            assert binom.cdf(c, n, 0.05) > 0.10 or binom.cdf(c, n, 0.01) < 0.95


def test_p_chart():
    lo, hi = sx.p_chart_limits(0.05, 200)
    assert (lo, hi) == (approx(0.003767), approx(0.096233))
    assert sx.p_chart_limits(0.01, 10)[0] == 0.0


def test_sprt():
    lower, upper = sx.sprt_boundaries(0.05, 0.10)
    assert (lower, upper) == (approx(-2.251292), approx(2.890372))
    fail, ok = sx.sprt_increments(0.05, 0.15)
    assert (fail, ok) == (approx(1.098612), approx(-0.111226))
    stream = [False] * 10 + [True] + [False] * 3 + [True, True, False, True, True]
    res = sx.sprt_run(stream, 0.05, 0.15, 0.05, 0.10)
    assert (res.decision, res.at) == ("reject", 19)
    assert res.llr >= upper
    # the run is undecided one observation earlier
    assert sx.sprt_run(stream[:18], 0.05, 0.15).decision == "continue"
    # only passes: accept once 21·0.111226 crosses 2.251292
    acc = sx.sprt_run([False] * 50, 0.05, 0.15)
    assert (acc.decision, acc.at) == ("accept", 21)
