"""Compounding error across steps and root-cause helpers (ANALYSIS.md section 1).

Pure math, no I/O. Step-level data comes in as a 2-D boolean array, episodes x steps,
True where the step was correct.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special
from scipy import stats as st

from trialrun.analysis.stats import BootstrapCI, bootstrap_ci, cluster_sums


def chain_success(step_accuracies: ArrayLike) -> float:
    """Success of independent steps, S = prod p_i. [0.9, 0.8, 0.95] -> 0.684."""
    return float(np.prod(np.asarray(step_accuracies, dtype=float)))


def steps_to(p: float, target: float = 0.5) -> float:
    """Steps of accuracy p until chain success falls to target: ln target / ln p.

    p = 0.99 -> n50 = 68.968. Infinite for p == 1.
    """
    if not 0 < p <= 1 or not 0 < target < 1:
        raise ValueError("need 0 < p <= 1 and 0 < target < 1")
    return math.inf if p == 1 else math.log(target) / math.log(p)


# ---------------------------------------------------------------------------
# Independence of step errors
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiftResult:
    """Observed all-ok rate against the product of marginal step accuracies."""

    marginals: tuple[float, ...]
    predicted: float
    observed: float
    lift: float


def _as_bool_matrix(ok: ArrayLike) -> NDArray[np.bool_]:
    m = np.asarray(ok, dtype=bool)
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError("need a non-empty episodes x steps boolean array")
    return m


def independence_lift(ok: ArrayLike) -> LiftResult:
    """Lift L = P(all steps ok) / prod P(step ok) (ANALYSIS.md section 1).

    L > 1 means errors cluster in the same (bad) episodes; L < 1 that they spread out.
    The 2x2 table [[156, 24], [4, 16]] -> predicted 0.72, observed 0.78, L 1.083333.
    """
    m = _as_bool_matrix(ok)
    marg = m.mean(axis=0)
    predicted = float(np.prod(marg))
    observed = float(m.all(axis=1).mean())
    lift = observed / predicted if predicted > 0 else math.nan
    return LiftResult(tuple(float(x) for x in marg), predicted, observed, lift)


def _lift_from_sums(s: NDArray[np.float64]) -> NDArray[np.float64]:
    # columns: episodes, all-ok count, per-step ok counts
    n = s[..., :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (s[..., 1] / s[..., 0]) / np.prod(s[..., 2:] / n, axis=-1)


def lift_ci(
    ok: ArrayLike,
    groups: ArrayLike | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> BootstrapCI:
    """Bootstrap CI for the independence lift, resampling episodes or whole `groups` (tasks)."""
    m = _as_bool_matrix(ok)
    rows = np.column_stack([np.ones(m.shape[0]), m.all(axis=1), m]).astype(float)
    clusters = rows if groups is None else cluster_sums(groups, rows)
    return bootstrap_ci(_lift_from_sums, clusters, n_boot=n_boot, seed=seed, alpha=alpha)


def contingency_2x2(first_ok: ArrayLike, second_ok: ArrayLike) -> NDArray[np.int64]:
    """[[both ok, first ok / second bad], [first bad / second ok, both bad]] counts."""
    a = np.asarray(first_ok, dtype=bool)
    b = np.asarray(second_ok, dtype=bool)
    return np.array(
        [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]], dtype=np.int64
    )


def odds_ratio_fisher(table: ArrayLike) -> tuple[float, float]:
    """Sample odds ratio ad/bc and two-sided Fisher exact p for a 2x2 table (Fisher 1922).

    [[156, 24], [4, 16]] -> (26.0, 1.06e-9).
    """
    t = np.asarray(table, dtype=np.int64)
    if t.shape != (2, 2) or (t < 0).any():
        raise ValueError("need a 2x2 table of non-negative counts")
    res = st.fisher_exact(t, alternative="two-sided")
    (a, b), (c, d) = t
    if b * c == 0:
        odds = math.nan if a * d == 0 else math.inf
    else:
        odds = float(a * d / (b * c))
    return odds, float(res.pvalue)


# ---------------------------------------------------------------------------
# Blame and correlated errors
# ---------------------------------------------------------------------------


def blame_shares(conditional_accuracies: ArrayLike) -> NDArray[np.float64]:
    """Share of failure per node: -ln p_i / sum_j -ln p_j, p_i given a clean prefix.

    [0.9, 0.8667] -> [0.4241, 0.5759]. Nodes with p = 0 split all blame between them;
    all-perfect nodes get zero blame.
    """
    p = np.asarray(conditional_accuracies, dtype=float)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("accuracies must lie in [0, 1]")
    zero = p == 0
    if zero.any():
        return zero / zero.sum()
    w = -np.log(p)
    total = w.sum()
    return w / total if total > 0 else np.zeros_like(p)


def beta_params(mean: float, rho: float) -> tuple[float, float]:
    """Beta(a, b) with given mean and intra-episode correlation rho = 1/(a+b+1)."""
    if not 0 < mean < 1 or not 0 < rho < 1:
        raise ValueError("need 0 < mean < 1 and 0 < rho < 1")
    total = 1 / rho - 1
    return mean * total, (1 - mean) * total


def beta_binomial_all_ok(mean: float, rho: float, n: int) -> float:
    """P(all n steps ok) when step accuracy p ~ Beta(a, b): B(a+n, b)/B(a, b).

    Mean 0.9, rho 0.2 (a = 3.6, b = 0.4), n = 5 -> 0.692208 vs 0.590490 independent.
    rho = 0 reduces to mean**n.
    """
    if rho == 0:
        return mean**n
    a, b = beta_params(mean, rho)
    return float(np.exp(special.betaln(a + n, b) - special.betaln(a, b)))


def recovery_curve(g1: float, p_ok_ok: float, p_ok_err: float, t: int) -> NDArray[np.float64]:
    """g_1..g_t of a two-state Markov chain: g_t = g_{t-1}·P(ok|ok) + (1-g_{t-1})·P(ok|err).

    g_1 = 0.9, P(ok|ok) = 0.95, P(ok|err) = 0.3 -> g_5 = 0.864793.
    """
    if t < 1:
        raise ValueError("t must be >= 1")
    g = np.empty(t)
    g[0] = g1
    for i in range(1, t):
        g[i] = g[i - 1] * p_ok_ok + (1 - g[i - 1]) * p_ok_err
    return g


def recovery_stationary(p_ok_ok: float, p_ok_err: float) -> float:
    """Long-run accuracy P(ok|err)/(1 - P(ok|ok) + P(ok|err)). 0.95 / 0.3 -> 0.857143."""
    denom = 1 - p_ok_ok + p_ok_err
    if denom == 0:
        raise ValueError("chain never leaves its start state")
    return p_ok_err / denom


# ---------------------------------------------------------------------------
# Absorbing Markov chains over workflow graphs
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AbsorbingResult:
    """Outcome of an absorbing chain started at one node.

    `absorption` maps each absorbing node to its probability; `visits` maps each transient
    node to its expected number of visits (the start counts once); `total_visits` is
    their sum, the expected number of steps before absorption.
    """

    p_success: float
    absorption: dict[Hashable, float]
    visits: dict[Hashable, float]
    total_visits: float


def absorbing_chain(
    graph: nx.DiGraph, start: Hashable, success: Hashable = "Success", weight: str = "p"
) -> AbsorbingResult:
    """Absorption probabilities and expected visits (Kemeny & Snell 1960).

    Nodes without out-edges are absorbing. With Q among transient nodes and R into the
    absorbing ones, N = (I - Q)^-1, B = N·R, visits t = N·1. The Plan/Act/Check example
    -> P(Success) 0.588785, 3.060748 expected visits. Out-probabilities of a node may sum
    to less than 1 (the rest is lost), never more.
    """
    if start not in graph:
        raise ValueError(f"start node {start!r} not in graph")
    absorbing = [v for v in graph.nodes if graph.out_degree(v) == 0]
    transient = [v for v in graph.nodes if graph.out_degree(v) > 0]
    if start in absorbing:
        absorption = {v: float(v == start) for v in absorbing}
        return AbsorbingResult(absorption.get(success, 0.0), absorption, {}, 0.0)
    ti = {v: i for i, v in enumerate(transient)}
    ai = {v: i for i, v in enumerate(absorbing)}
    q = np.zeros((len(transient), len(transient)))
    r = np.zeros((len(transient), len(absorbing)))
    for u, v, p in graph.edges(data=weight):
        if p is None or p < 0:
            raise ValueError(f"edge {u!r}->{v!r} needs a non-negative {weight!r}")
        if v in ti:
            q[ti[u], ti[v]] += p
        else:
            r[ti[u], ai[v]] += p
    if (q.sum(axis=1) + r.sum(axis=1) > 1 + 1e-9).any():
        raise ValueError("out-probabilities of a node sum to more than 1")
    i_minus_q = np.eye(len(transient)) - q
    e = np.zeros(len(transient))
    e[ti[start]] = 1.0
    try:
        # only the start row of N is needed: solve N^T e = row instead of inverting
        n_row = np.linalg.solve(i_minus_q.T, e)
    except np.linalg.LinAlgError as exc:
        raise ValueError("a loop has no way out: I - Q is singular") from exc
    b_row = n_row @ r
    absorption = {v: float(b_row[ai[v]]) for v in absorbing}
    visits = {v: float(n_row[ti[v]]) for v in transient}
    return AbsorbingResult(
        absorption.get(success, 0.0), absorption, visits, float(n_row.sum())
    )


# ---------------------------------------------------------------------------
# Root cause
# ---------------------------------------------------------------------------


def first_error(step_ok: Sequence[bool]) -> int | None:
    """0-based index of the earliest step graded wrong, or None if all are ok."""
    return next((i for i, ok in enumerate(step_ok) if not ok), None)


def decisive_error(flip_fixes: Sequence[bool]) -> int | None:
    """0-based index of the earliest step whose corrected replay turns failure into success.

    Who&When (arXiv 2505.00212), counterfactual replay as in AgenTracer (arXiv 2509.03312).
    [F, T, F, T, F, F] -> 1 (step 2 in ANALYSIS.md's 1-based wording). None if no flip helps.
    """
    return next((i for i, fixes in enumerate(flip_fixes) if fixes), None)


def localization_f1(
    correct_failed: int, n_failed: int, correct_clean: int, n_clean: int
) -> float | None:
    """Harmonic mean of exact-step accuracy on failed runs and 'no error' accuracy on clean runs.

    ProcessBench (arXiv 2412.06559). 30/60 and 32/40 -> 0.615385. None if either set is
    empty; 0 if either accuracy is 0.
    """
    if n_failed <= 0 or n_clean <= 0:
        return None
    a, b = correct_failed / n_failed, correct_clean / n_clean
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)
