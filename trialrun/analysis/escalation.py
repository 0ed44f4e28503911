"""When should an agent ask a human? Metrics, costs and selective prediction (ANALYSIS.md s. 3).

Pure math. "Needed" means a blocker was present, the step was about to be wrong, or the
action was irreversible and risky; an ask is a positive prediction of "needed".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


@dataclass(frozen=True, slots=True)
class AskMetrics:
    """Ask-vs-needed confusion metrics; None wherever a denominator is zero."""

    precision: float | None
    recall: float | None
    f1: float | None
    over_escalation: float | None
    under_escalation: float | None
    help_rate: float | None


def confusion(asked: ArrayLike, needed: ArrayLike) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) of asks against needs, one pair of flags per decision."""
    a = np.asarray(asked, dtype=bool)
    n = np.asarray(needed, dtype=bool)
    return (int((a & n).sum()), int((a & ~n).sum()), int((~a & n).sum()),
            int((~a & ~n).sum()))


def ask_metrics(tp: int, fp: int, fn: int, tn: int) -> AskMetrics:
    """Precision, recall, Ask-F1 (HiL-Bench, arXiv 2604.09408) and escalation rates.

    over-escalation = FP/(FP+TN), under-escalation = FN/(TP+FN), help rate = asks/total.
    30/20/10/140 -> 0.6, 0.75, 0.666667, 0.125, 0.25, 0.25.
    """
    if min(tp, fp, fn, tn) < 0:
        raise ValueError("counts must be non-negative")
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return AskMetrics(
        precision,
        recall,
        f1,
        _ratio(fp, fp + tn),
        _ratio(fn, tp + fn),
        _ratio(tp + fp, tp + fp + fn + tn),
    )


def escalation_cost(asks: float, unasked_errors: float, c_h: float, c_e: float) -> float:
    """C = c_h·asks + c_e·unasked errors (asking is assumed to prevent the error)."""
    return c_h * asks + c_e * unasked_errors


@dataclass(frozen=True, slots=True)
class CostReport:
    """Agent cost against baselines; regret = (agent - oracle)/(never_ask - oracle)."""

    agent: float
    never_ask: float
    always_ask: float
    oracle: float
    regret: float | None


def cost_report(tp: int, fp: int, fn: int, tn: int, c_h: float, c_e: float) -> CostReport:
    """Cost of the agent's asks against never-ask, always-ask and an oracle that asks exactly
    when needed, with regret normalised by the never-ask gap.

    30/20/10/140, c_h 1, c_e 10 -> 150, 400, 200, 40, regret 0.305556. Regret is None when
    nothing was ever needed (never-ask is already optimal).
    """
    needed = tp + fn
    total = tp + fp + fn + tn
    agent = escalation_cost(tp + fp, fn, c_h, c_e)
    never = escalation_cost(0, needed, c_h, c_e)
    always = escalation_cost(total, 0, c_h, c_e)
    oracle = escalation_cost(needed, 0, c_h, c_e)
    return CostReport(agent, never, always, oracle, _ratio(agent - oracle, never - oracle))


def chow_threshold(c_h: float, c_e: float) -> float:
    """Ask when P(correct) < 1 - c_h/c_e (Chow 1970's reject rule). c_h 1, c_e 10 -> 0.9."""
    if c_e <= 0 or c_h < 0:
        raise ValueError("need c_e > 0 and c_h >= 0")
    return 1.0 - c_h / c_e


def should_ask(p_correct: float, c_h: float, c_e: float) -> bool:
    """Chow's rule: asking is cheaper in expectation than risking c_e·P(wrong)."""
    return p_correct < chow_threshold(c_h, c_e)


# ---------------------------------------------------------------------------
# Risk-coverage (selective prediction)
# ---------------------------------------------------------------------------


def risk_coverage(
    confidence: ArrayLike, correct: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Risk (error rate of the k most confident) at each coverage k/n, k = 1..n.

    Geifman & El-Yaniv (2017). Tied confidences are ordered at random in expectation:
    errors inside a tie group are spread evenly, so the curve does not depend on input
    order.
    """
    conf = np.asarray(confidence, dtype=float)
    err = 1.0 - np.asarray(correct, dtype=float)
    if conf.shape != err.shape or conf.ndim != 1 or conf.size == 0:
        raise ValueError("need matching non-empty 1-D confidence and correctness")
    order = np.argsort(-conf, kind="stable")
    c, e = conf[order], err[order]
    n = c.size
    # tie groups in the sorted order
    new_group = np.r_[True, c[1:] != c[:-1]]
    gid = np.cumsum(new_group) - 1
    start = np.flatnonzero(new_group)
    size = np.diff(np.r_[start, n])
    g_err = np.add.reduceat(e, start)
    before = np.r_[0.0, np.cumsum(g_err)[:-1]]
    pos = np.arange(n) - start[gid] + 1  # 1-based position within its tie group
    cum_err = before[gid] + pos * g_err[gid] / size[gid]
    k = np.arange(1, n + 1)
    return k / n, cum_err / k


def risk_coverage_summary(confidence: ArrayLike, correct: ArrayLike, points: int = 50
                          ) -> tuple[float, list[tuple[float, float]]]:
    """AURC and the risk-coverage curve at up to `points` evenly spaced coverages, exactly
    as `risk_coverage` defines them, without building the n-long curve: after one sort,
    memory is per tie group (a million-episode run has millions of steps).

    Inside a tie group starting at 0-based position s with m steps, E errors and B errors
    before it, the risks sum in closed form:
    sum_{p=1..m} (B + pE/m)/(s + p) = E + (B - sE/m)(H_{s+m} - H_s), H the harmonic numbers.
    """
    from scipy.special import digamma

    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape or conf.ndim != 1 or conf.size == 0:
        raise ValueError("need matching non-empty 1-D confidence and correctness")
    n = conf.size
    order = np.argsort(-conf, kind="stable")
    c, wrong = conf[order], ~ok[order]
    del order
    start = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    del c
    size = np.diff(np.r_[start, n])
    g_err = np.add.reduceat(wrong, start, dtype=float)
    before = np.r_[0.0, np.cumsum(g_err)[:-1]]
    harmonic = digamma(start + size + 1.0) - digamma(start + 1.0)  # H_{s+m} - H_s
    area = float(np.sum(g_err + (before - start * g_err / size) * harmonic)) / n
    pick = np.unique(np.linspace(0, n - 1, min(n, points)).astype(int))  # k - 1
    g = np.searchsorted(start, pick, side="right") - 1
    cum_err = before[g] + (pick - start[g] + 1) * g_err[g] / size[g]
    return area, [(float((i + 1) / n), float(e / (i + 1))) for i, e in zip(pick, cum_err,
                                                                            strict=True)]


def aurc(confidence: ArrayLike, correct: ArrayLike) -> float:
    """Area under the risk-coverage curve: mean risk over coverages k/n.

    Correctness [1, 1, 0, 1, 0] in confidence order -> 0.196667.
    """
    return risk_coverage_summary(confidence, correct, points=1)[0]


def optimal_aurc(correct: ArrayLike) -> float:
    """AURC of a perfect ranking (all correct first). [1, 1, 0, 1, 0] -> 0.13."""
    c = np.asarray(correct, dtype=float)
    return aurc(c, c)


def e_aurc(confidence: ArrayLike, correct: ArrayLike) -> float:
    """Excess AURC = AURC - optimal AURC (Geifman et al. 2019). Example -> 0.066667."""
    return aurc(confidence, correct) - optimal_aurc(correct)


# ---------------------------------------------------------------------------
# KnowNo conformal asking
# ---------------------------------------------------------------------------


def knowno_qhat(true_option_probs: ArrayLike, epsilon: float) -> float:
    """Conformal threshold of KnowNo (Ren et al. 2023, arXiv 2307.01928).

    Scores are 1 - f(true option) on n calibration examples; q_hat is the
    ceil((n+1)(1-epsilon))-th smallest. When that rank exceeds n the guarantee needs every
    option, so q_hat = 1. n = 9, epsilon 0.2 -> the 8th smallest (0.55 in ANALYSIS.md).
    """
    f = np.asarray(true_option_probs, dtype=float).ravel()
    if f.size == 0 or not 0 < epsilon < 1:
        raise ValueError("need calibration data and 0 < epsilon < 1")
    scores = np.sort(1.0 - f)
    # the small slack stops float error (e.g. 10 * 0.8) from bumping the rank up by one
    rank = math.ceil((f.size + 1) * (1 - epsilon) - 1e-9)
    return 1.0 if rank > f.size else float(scores[rank - 1])


def knowno_prediction_set(option_probs: ArrayLike, qhat: float) -> list[int]:
    """Indices of options with f >= 1 - q_hat."""
    f = np.asarray(option_probs, dtype=float).ravel()
    return [int(i) for i in np.flatnonzero(f >= 1.0 - qhat - 1e-12)]


def knowno_should_ask(option_probs: ArrayLike, qhat: float) -> bool:
    """Ask unless the prediction set is a single option. q_hat 0.55: {0.50, 0.46, 0.04} asks,
    {0.62, 0.33, 0.05} acts."""
    return len(knowno_prediction_set(option_probs, qhat)) != 1
