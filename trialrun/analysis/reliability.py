"""How per-decision accuracy becomes end-to-end success, and whether the agent asks for help
at the right moments.

Reads `RunData` only. Sections: per-episode node tables with a clean prefix (the chain
rule the header's prediction uses), the knock-on (propagation) matrix and the shared-cause
test built on it, each node's share of blame, the workflow as an absorbing Markov chain,
success against horizon (constant-hazard and Weibull fits), repeated trials per task with
CIs, and escalation precision/recall/cost against baselines.
Definitions and test vectors: shared/reference/ANALYSIS.md.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import networkx as nx
import numpy as np
from pydantic import BaseModel

from trialrun.analysis import compounding, escalation, horizon
from trialrun.analysis.data import RunData, group_ids, str_ranks
from trialrun.analysis.stats import (
    bootstrap_ci,
    cluster_sums,
    pass_at_k,
    pass_hat_k,
)


class Interval(BaseModel):
    estimate: float | None
    lo: float | None
    hi: float | None


# One line per quantity of this module, shown next to it in the terminal, JSON and HTML.
SHARED_CAUSE_MEANING = (
    "errors seen at a later node after an error at an earlier one, divided by the number "
    "that node's own error rate predicts, knock-on pairs (an error that makes a later node "
    "wrong) set apart: 1 = independent errors, above 1 = errors share a cause")
PROPAGATION_MEANING = (
    "P(later node wrong | the episode's first error was at the earlier node) against "
    "P(later node wrong | the earlier node was right and nothing erred before the later node)")

VERDICT_WORDS = {"independent": "consistent with independence",
                 "shared_cause": "errors share a cause", "spread": "errors avoid each other",
                 "inconclusive": "inconclusive"}

# The verdict's rules. Knock-on: an upstream error makes at least this share of the
# downstream decisions wrong that would otherwise be right, or multiplies the downstream
# node's own error rate at least this many times.
KNOCK_ON_SHARE = 0.5
KNOCK_ON_RISK = 10.0
MIN_PAIR_EPISODES = 5  # fewer episodes than this in a cell: the pair is not judged
SHARED_CAUSE_MARGIN = 1.1  # co-error ratio CI entirely above this: "errors share a cause"
SPREAD_MARGIN = 0.9  # CI entirely below this: errors avoid each other
WIDE_CI = 2.0  # CI holds 1 but reaches above this: too few co-errors to tell
SHARED_CAUSE_BOOT = 4000


class SharedCause(BaseModel):
    """Do errors at different nodes share a cause, once knock-on effects are set apart?

    Why not the old lift (all-nodes-ok rate / product of node marginals): an error at one
    node that makes a later node wrong (a knock-on: the wrong order looked up, so the reply
    is wrong too) raises it exactly as a shared cause does, so independent errors read
    "errors cluster". Nor can first errors alone tell (errors with a clean prefix, or
    observed success against the chain-rule prediction): on a fixed path any distribution
    of where the first error falls is matched exactly by independent per-node hazards, so
    the chain rule over first errors is exact whatever the dependence and that ratio is 1
    with or without a shared cause. A shared cause is only visible in what a later node
    does after an earlier error, which is also where knock-ons show; separating the two
    needs an assumption, the one below.

    So each ordered pair (A, B) of nodes is judged from two cells (`Propagation` holds
    them): after the episode's first error was at A, how often B was wrong later on
    (p_w, over n_w episodes); and B's own first-error rate in episodes where A came first
    and was right (p_r). The share of B's otherwise-right decisions an A error turns
    wrong, q = (p_w − p_r)/(1 − p_r), is near 1 for a knock-on and small for a shared
    cause, which only scales B's own error rate by a modest factor (a bad day that makes
    every node err 8 times as often in 15% of episodes gives p_w/p_r ≈ 3 and q ≈ 0.2); a
    node that hardly ever errs on its own but often does after A's error is knocked on.
    Pairs with q ≥ 0.5 or p_w ≥ 10·p_r are knock-ons and set apart; the rest are tested
    together: co-error ratio = Σ n_w·p_w / Σ n_w·p_r, observed co-errors over the number
    B's own error rate predicts. Independent errors give 1, a shared cause more.

    The 95% CI resamples whole tasks (episodes when there are fewer than 5 tasks), 4000
    times, with a seed derived from the data (rows in canonical order, so the order episodes
    were stored in does not matter): the same episodes always give the same verdict
    (with no co-error at all its upper bound is the exact Poisson one, −ln 0.025 / expected).
    The verdict keeps a margin from 1 so that it does not hang on a quantile's third
    decimal: "shared cause" needs the CI above 1.1, "spread" below 0.9, "independent" a CI
    that holds 1 and stays below 2; anything else is "inconclusive".

    Limits, by construction: a weak knock-on (an error that makes a later node wrong less
    than half the time and less than ten times as often as it errs alone) reads as a
    shared cause, and a shared cause that strong reads as a knock-on;
    when every co-occurring error is a knock-on (errors at lookup_order and resolve, where a
    wrong order makes everything after it wrong) a shared cause is not identifiable and the
    errors are "consistent with independence".
    """

    verdict: Literal["independent", "shared_cause", "spread", "inconclusive"]
    meaning: str  # the verdict in one sentence
    co_error_ratio: Interval
    co_errors: int  # observed over the tested pairs: Σ n_w·p_w
    expected_co_errors: float  # Σ n_w·p_r
    tested: list[str]  # "A → B" pairs in the ratio
    knock_on: list[str]  # "A → B" pairs set apart as knock-on
    resampled: str  # "task" or "episode"
    n_boot: int
    seed: int


class Propagation(BaseModel):
    """Knock-on errors, pair by pair, in the cells the shared-cause test uses.

    given_wrong[A][B]: P(B wrong later | the episode's first error was at A); given_right[A][B]:
    P(B's own error | A came first and was right, nothing erred before B). Counts under 5
    episodes give None. A large gap means an error at A makes B wrong."""

    nodes: list[str]
    given_wrong: list[list[float | None]]  # [upstream][downstream]
    given_right: list[list[float | None]]
    strongest: list[str]  # plain-language lines for the largest gaps


class MarkovChain(BaseModel):
    start: str
    p_success: float
    expected_visits: dict[str, float]
    total_steps: float
    edges: list[tuple[str, str, float]]


class HorizonFits(BaseModel):
    """Time to the first error: Kaplan–Meier, constant-hazard and Weibull fits.

    `hazard_trend` reads the Weibull shape only through its 95% CI: "rises" when the CI is
    above 1, "falls" when below, "constant_fits" when it holds 1, None without a fit.
    Horizons (T50, T80) beyond `data_end` are extrapolations of the fitted curve."""

    unit: str  # "steps" or "simulated seconds"
    events: int
    censored: int
    exponential_lambda: float | None = None
    exponential_t50: float | None = None
    exponential_t80: float | None = None
    weibull_k: float | None = None
    weibull_k_lo: float | None = None  # 95% profile-likelihood CI of the shape k
    weibull_k_hi: float | None = None
    hazard_trend: Literal["rises", "falls", "constant_fits"] | None = None
    weibull_eta: float | None = None
    weibull_t50: float | None = None
    weibull_t80: float | None = None
    km_t: list[float] = []  # Kaplan–Meier: P(no error yet) at each event time
    km_s: list[float] = []
    data_end: float | None = None  # the longest episode seen; beyond it curves extrapolate
    note: str = ""


class TaskTrials(BaseModel):
    scenario: str
    task: str
    seed: int
    n: int
    c: int
    pass_at_k: float
    pass_hat_k: float
    worst_of_k: float | None
    best_of_k: float | None


class TrialsDetail(BaseModel):
    k: int
    pass_at_k: Interval
    pass_hat_k: Interval
    worst_of_k: float | None
    best_of_k: float | None
    per_task: list[TaskTrials]


class EscalationReport(BaseModel):
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float | None
    recall: float | None
    f1: float | None
    over_escalation: float | None
    under_escalation: float | None
    help_rate: float | None
    cost_per_ask: float
    cost_per_error: float
    cost_agent: float
    cost_never_ask: float
    cost_always_ask: float
    cost_oracle: float
    regret: float | None
    aurc: float | None = None
    e_aurc: float | None = None
    risk_coverage: list[tuple[float, float]] = []
    verdict: str


class Reliability(BaseModel):
    shared_cause: SharedCause | None
    propagation: Propagation | None
    blame: dict[str, float]
    markov: MarkovChain | None
    horizon_steps: HorizonFits | None
    horizon_time: HorizonFits | None
    trials: TrialsDetail | None
    escalation: EscalationReport


@dataclass
class CleanPrefix:
    """Scored episodes (rows, `eps` into the run) by nodes (columns), in per-episode units.

    An episode *reaches a node with a clean prefix* if it has a graded step there at or
    before its first error (`RunData.first_fail_idx`, `first_error_node`: the first step
    graded wrong, as stored); the node *erred in the episode* if that first error is at the
    node (so "clean in the episode" means none
    of its steps up to and including the first error failed). Everything after the first
    error is `after` / `failed_after`: the raw material of knock-on errors.
    """

    eps: np.ndarray
    visit: np.ndarray  # a graded step at the node
    first: np.ndarray  # index of the first graded step at the node (BIG if none)
    reached: np.ndarray  # reached with a clean prefix
    erred: np.ndarray  # the episode's first error is at the node
    after: np.ndarray  # a graded step at the node after the first error
    failed_after: np.ndarray  # one of those failed
    first_error: np.ndarray  # per episode: node code of the first error, -1 if none

    @property
    def reached_count(self) -> np.ndarray:
        return self.reached.sum(axis=0)

    @property
    def erred_count(self) -> np.ndarray:
        return self.erred.sum(axis=0)

    @cached_property
    def pair_cells(self) -> tuple[np.ndarray, ...]:
        return _pair_cells(self)


BIG = np.iinfo(np.int64).max


def clean_prefix(d: RunData, eps: np.ndarray) -> CleanPrefix:
    n_nodes = len(d.nodes)
    row = np.full(len(d.ep_id), -1, dtype=np.int64)
    row[eps] = np.arange(len(eps))
    keep = (d.s_passed >= 0) & (row[d.s_ep] >= 0) if len(d.s_ep) else np.zeros(0, dtype=bool)
    r, c, idx = row[d.s_ep[keep]], d.s_node[keep], d.s_idx[keep]
    bad = d.s_passed[keep] == 0
    ff = d.first_fail_idx()[eps]
    visit = np.zeros((len(eps), n_nodes), dtype=bool)
    visit[r, c] = True
    first = np.full((len(eps), n_nodes), BIG, dtype=np.int64)
    np.minimum.at(first, (r, c), idx)
    # the episode's first error as stored (one definition, the store's): its step and node
    code = {n: i for i, n in enumerate(d.nodes)}
    fe_codes, fe_names = d.codes("first_error_node")
    fe_node = np.array([code.get(n, -1) if n else -1 for n in fe_names] or [-1], np.int64)
    first_error = fe_node[fe_codes[eps]] if len(eps) else np.zeros(0, dtype=np.int64)
    erred = np.zeros((len(eps), n_nodes), dtype=bool)
    has = first_error >= 0
    erred[np.flatnonzero(has), first_error[has]] = True
    later = idx > ff[r]
    after = np.zeros_like(visit)
    after[r[later], c[later]] = True
    failed_after = np.zeros_like(visit)
    failed_after[r[later & bad], c[later & bad]] = True
    reached = (visit & (first <= ff[:, None])) | erred  # an error's step is reached
    return CleanPrefix(eps=eps, visit=visit, first=first, reached=reached,
                       erred=erred, after=after, failed_after=failed_after,
                       first_error=first_error)


def chain_rule_factors(cp: CleanPrefix) -> dict[int, float]:
    """Per node (code): the share of still-clean episodes that come through it clean.

    Nodes are taken in workflow order (mean index of their first graded step). An episode
    is *still clean at node n* if its first error is not at a node before n; the factor is
    1 − (episodes whose first error is at n) / (episodes still clean at n)
      = 1 − P(reaches n with a clean prefix | still clean) · (1 − accuracy per episode).
    On a single path every still-clean episode reaches every node and the factor is the
    node's accuracy per episode, P(node clean in the episode | reached it with a clean
    prefix); with branches a node that most episodes skip costs only the share that
    reach it. Counting episodes, never calls, a node that acts several times per episode
    enters once, and an episode an upstream error stopped is not in a later node's
    denominator: the chain rule then makes the product exact (`chain_rule_success`)."""
    n_eps = len(cp.eps)
    reached, erred = cp.reached_count, cp.erred_count
    used = np.flatnonzero(reached > 0)
    if not n_eps or not len(used):
        return {}
    pos = np.where(cp.visit, cp.first, 0).sum(axis=0) / np.maximum(cp.visit.sum(axis=0), 1)
    order = sorted(used, key=lambda i: (pos[i], i))
    out, at_risk = {}, n_eps
    for i in order:
        out[int(i)] = 1.0 - erred[i] / at_risk if at_risk else 1.0
        at_risk -= int(erred[i])
    return out


def chain_rule_success(cp: CleanPrefix) -> float | None:
    """Predicted success: the product of `chain_rule_factors` over nodes.

    By the chain rule it equals the share of episodes with no graded error; it is the
    observed success when every graded error is fatal and no episode fails without one
    (the summary counts both exceptions apart)."""
    if not len(cp.eps):
        return None
    return float(np.prod(list(chain_rule_factors(cp).values()) or [1.0]))


def _pair_cells(cp: CleanPrefix) -> tuple[np.ndarray, ...]:
    """Per ordered node pair [A, B]: (n_w, k_w, n_r, k_r) episode counts.

    w: the episode's first error was at A and B has graded steps after it; k_w: one of
    them failed. r: A came before B's first step and B was reached with a clean prefix;
    k_r: the episode's first error is at B."""
    n_nodes = cp.visit.shape[1]
    onehot = np.zeros((len(cp.eps), n_nodes), dtype=np.int64)
    has = cp.first_error >= 0
    onehot[np.flatnonzero(has), cp.first_error[has]] = 1
    n_w = onehot.T @ cp.after.astype(np.int64)
    k_w = onehot.T @ cp.failed_after.astype(np.int64)
    n_r = np.zeros((n_nodes, n_nodes), dtype=np.int64)
    k_r = np.zeros((n_nodes, n_nodes), dtype=np.int64)
    for a in range(n_nodes):  # one node at a time: memory stays O(episodes × nodes)
        right = cp.visit[:, a, None] & (cp.first[:, a, None] < cp.first) & cp.reached
        n_r[a] = right.sum(axis=0)
        k_r[a] = (right & cp.erred).sum(axis=0)
    np.fill_diagonal(n_w, 0)
    np.fill_diagonal(k_w, 0)
    np.fill_diagonal(n_r, 0)
    np.fill_diagonal(k_r, 0)
    return n_w, k_w, n_r, k_r


def _task_groups(d: RunData, eps: np.ndarray) -> np.ndarray:
    return group_ids(d.codes("scenario")[0][eps], d.codes("task")[0][eps])[0]


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _knock_on(p_w: float, p_r: float) -> bool:
    if p_w <= p_r:
        return False
    if p_w >= KNOCK_ON_RISK * p_r:
        return True  # ten times the node's own rate (or any errors where it has none)
    return (p_w - p_r) / (1 - p_r) >= KNOCK_ON_SHARE


def shared_cause(d: RunData, cp: CleanPrefix, seed: int | None = None) -> SharedCause | None:
    """The shared-cause verdict (see `SharedCause` for the reasoning). `seed` overrides the
    bootstrap seed derived from the data (tests use it to show the verdict does not move)."""
    if len(cp.eps) < 2 or cp.visit.any(axis=0).sum() < 2:
        return None
    n_w, k_w, n_r, k_r = cp.pair_cells
    names = d.nodes
    tested, knock = [], []
    for a, b in zip(*np.nonzero((n_w >= MIN_PAIR_EPISODES) & (n_r >= MIN_PAIR_EPISODES)),
                    strict=True):
        p_w, p_r = k_w[a, b] / n_w[a, b], k_r[a, b] / n_r[a, b]
        if p_r == 1 or (k_w[a, b] == 0 and k_r[a, b] == 0):
            continue  # B always errs on its own, or never errs here: nothing to learn
        (knock if _knock_on(p_w, p_r) else tested).append((int(a), int(b)))
    groups = _task_groups(d, cp.eps)
    by_task = len(np.unique(groups)) >= 5
    base = dict(tested=[f"{names[a]} → {names[b]}" for a, b in tested],
                knock_on=[f"{names[a]} → {names[b]}" for a, b in knock],
                resampled="task" if by_task else "episode", n_boot=SHARED_CAUSE_BOOT)
    if not ((n_w >= MIN_PAIR_EPISODES) & (n_r >= MIN_PAIR_EPISODES)).any():
        return SharedCause(verdict="inconclusive", meaning=(
            "inconclusive: too few episodes in which an error was followed by other graded "
            f"decisions (a pair of nodes needs {MIN_PAIR_EPISODES})"),
            co_error_ratio=Interval(estimate=None, lo=None, hi=None), co_errors=0,
            expected_co_errors=0.0, seed=0, **base)
    first_at = np.zeros((len(cp.eps), len(names)), dtype=bool)
    has = cp.first_error >= 0
    first_at[np.flatnonzero(has), cp.first_error[has]] = True
    cols = []
    for a, b in tested:
        right = cp.visit[:, a] & (cp.first[:, a] < cp.first[:, b]) & cp.reached[:, b]
        cols += [first_at[:, a] & cp.after[:, b], first_at[:, a] & cp.failed_after[:, b],
                 right, right & cp.erred[:, b]]
    rows = np.column_stack(cols).astype(float) if cols else np.zeros((len(cp.eps), 0))
    observed = int(sum(k_w[a, b] for a, b in tested))
    expected = float(sum(n_w[a, b] * k_r[a, b] / n_r[a, b] for a, b in tested))
    knock_txt = ("; knock-on errors set apart: " + ", ".join(base["knock_on"])
                 if knock else "")
    if expected < 1 and observed == 0:
        return SharedCause(verdict="independent", meaning=(
            "consistent with independent errors: " + (
                "apart from knock-on errors no errors occur together" + knock_txt if knock
                else "no errors occur together")),
            co_error_ratio=Interval(estimate=None, lo=None, hi=None),
            co_errors=observed, expected_co_errors=expected, seed=0, **base)
    clusters = cluster_sums(groups, rows) if by_task else rows
    # Rows in a canonical order: the same episodes stored in another order (episode ids are
    # random) give the same seed and the same resamples, so a re-run gives the same verdict.
    clusters = clusters[np.lexsort(clusters.T[::-1])] if clusters.shape[1] else clusters
    if seed is None:
        seed = int.from_bytes(hashlib.blake2b(np.ascontiguousarray(clusters).tobytes(),
                                              digest_size=4).digest(), "little")

    def ratio(s: np.ndarray) -> np.ndarray:
        s = s.reshape(*s.shape[:-1], -1, 4)
        with np.errstate(divide="ignore", invalid="ignore"):
            exp = np.nansum(s[..., 0] * np.where(s[..., 2] > 0, s[..., 3] / s[..., 2], 0.0),
                            axis=-1)
            obs = s[..., 1].sum(axis=-1)
            # no co-error expected in a resample: infinite if some occurred, else undefined
            out = np.where(exp > 0, obs / np.where(exp > 0, exp, 1.0),
                           np.where(obs > 0, np.inf, np.nan))
        return out

    if observed:
        ci = bootstrap_ci(ratio, clusters, n_boot=SHARED_CAUSE_BOOT, seed=seed,
                          ignore_nan=True)
        est, lo, hi = ci.estimate, ci.lo, ci.hi
        lo = 0.0 if math.isnan(lo) else lo  # undefined bounds: nothing excluded
        hi = math.inf if math.isnan(hi) else hi
    else:  # resampling zeros gives zeros: the exact Poisson bound for 0 events instead
        est, lo, hi = 0.0, 0.0, -math.log(0.025) / expected
    interval = Interval(estimate=_finite(est), lo=_finite(lo), hi=_finite(hi))
    tail = (f" (co-error ratio {est:.2f} [{lo:.2f}, {hi:.2f}]: {observed} error(s) after an "
            f"earlier error where {expected:.1f} were expected{knock_txt})")
    if lo >= SHARED_CAUSE_MARGIN:
        verdict, meaning = "shared_cause", "errors share a cause: they come together in the " \
            "same episodes more often than knock-on effects explain"
    elif hi <= SPREAD_MARGIN:
        verdict, meaning = "spread", "errors avoid each other: fewer come together than " \
            "independent errors would"
    elif lo <= 1 <= hi and hi <= WIDE_CI:
        verdict, meaning = "independent", "consistent with independent errors"
    elif lo <= 1 <= hi:
        verdict, meaning = "inconclusive", "inconclusive: too few errors come together to " \
            "tell independence from a shared cause"
    else:
        verdict, meaning = "inconclusive", "inconclusive: the co-error ratio is too close " \
            "to 1 to call"
    return SharedCause(verdict=verdict, meaning=meaning + tail, co_error_ratio=interval,
                       co_errors=observed, expected_co_errors=round(expected, 6), seed=seed,
                       **base)


def propagation(d: RunData, cp: CleanPrefix) -> Propagation | None:
    used = [i for i in range(len(d.nodes)) if cp.visit[:, i].any()]
    if len(used) < 2:
        return None
    n_w, k_w, n_r, k_r = cp.pair_cells
    names = [d.nodes[i] for i in used]
    gw: list[list[float | None]] = []
    gr: list[list[float | None]] = []
    gaps = []
    for i in used:
        row_w, row_r = [], []
        for j in used:
            pw = float(k_w[i, j] / n_w[i, j]) if n_w[i, j] >= MIN_PAIR_EPISODES else None
            pr = float(k_r[i, j] / n_r[i, j]) if n_r[i, j] >= MIN_PAIR_EPISODES else None
            row_w.append(pw)
            row_r.append(pr)
            if pw is not None and pr is not None and pw - pr > 0.05:
                gaps.append((pw - pr, d.nodes[i], d.nodes[j], pw, pr))
        gw.append(row_w)
        gr.append(row_r)
    gaps.sort(reverse=True)
    lines = [f"an error at {a} makes {b} wrong {100 * pw:.0f}% of the time "
             f"(vs {100 * pr:.0f}% after a right {a})"
             + (": a knock-on" if _knock_on(pw, pr) else "")
             for _, a, b, pw, pr in gaps[:5]]
    return Propagation(nodes=names, given_wrong=gw, given_right=gr, strongest=lines)


def blame(d: RunData, cp: CleanPrefix) -> dict[str, float]:
    """Each node's share of −ln(predicted success): −ln of its chain-rule factor (its
    per-episode accuracy given a clean prefix, on a single path) over the sum
    (ANALYSIS.md §1), so the shares split exactly the success the graded errors cost."""
    acc = {d.nodes[i]: f for i, f in chain_rule_factors(cp).items() if f < 1}
    if not acc:
        return {}
    names = list(acc)
    shares = compounding.blame_shares([max(acc[k], 1e-12) for k in names])
    return {k: float(s) for k, s in sorted(zip(names, shares, strict=True),
                                           key=lambda x: -x[1])}


def markov_chain(d: RunData, eps: np.ndarray) -> MarkovChain | None:
    """Node-to-node transitions as observed, ending in Success or Fail, as an absorbing chain."""
    in_eps = np.zeros(len(d.ep_id), dtype=bool)
    in_eps[eps] = True
    m = in_eps[d.s_ep]
    if not m.any():
        return None
    ep, node = d.s_ep[m], d.s_node[m]
    same = ep[1:] == ep[:-1]
    # Transitions counted as (from, to) codes; the ends are codes n (Success) and n + 1.
    n = len(d.nodes)
    names = [*d.nodes, "Success", "Fail"]
    last = np.r_[~same, True]
    end = np.where(d.success[ep[last]] == 1, n, n + 1)
    pair = np.r_[node[:-1][same] * (n + 2) + node[1:][same], node[last] * (n + 2) + end]
    tally = np.bincount(pair, minlength=(n + 2) * (n + 2))
    counts = {(names[p // (n + 2)], names[p % (n + 2)]): int(tally[p])
              for p in np.flatnonzero(tally)}
    out: dict[str, int] = {}
    for (a, _), c in counts.items():
        out[a] = out.get(a, 0) + c
    g = nx.DiGraph()
    # Sorted: the rows come in episode-id order, which differs between two identical runs,
    # and the report must not.
    for (a, b), c in sorted(counts.items()):
        g.add_edge(a, b, p=c / out[a])
    firsts = node[np.r_[True, ~same]]
    start = d.nodes[int(np.bincount(firsts).argmax())]
    try:
        res = compounding.absorbing_chain(g, start)
    except ValueError:
        return None
    return MarkovChain(start=start, p_success=res.p_success,
                       expected_visits={str(k): v for k, v in sorted(res.visits.items())},
                       total_steps=res.total_visits,
                       edges=[(a, b, round(p, 6)) for a, b, p in g.edges(data="p")])


def _km(t: np.ndarray, events: np.ndarray) -> tuple[list[float], list[float]]:
    order = np.argsort(t, kind="stable")
    t, events = t[order], events[order]
    uniq = np.unique(t[events])
    at_risk = len(t) - np.searchsorted(t, uniq, side="left")
    died = np.array([np.sum(events & (t == u)) for u in uniq[:200]])
    s = np.cumprod(1 - died / at_risk[:200])
    return uniq[:200].tolist(), s.tolist()


def horizon_fits(times: np.ndarray, events: np.ndarray, unit: str) -> HorizonFits | None:
    """Fits of the time to the first error. In "steps" the time is whole steps, and the
    fits use the interval likelihood (an error at step s happened in (s − 1, s]), so a
    constant per-step hazard reads as k = 1 (`horizon.fit_weibull_steps`)."""
    if len(times) == 0:
        return None
    h = HorizonFits(unit=unit, events=int(events.sum()), censored=int((~events).sum()),
                    data_end=float(np.max(times)))
    if not events.any():
        h.note = "no errors observed: the horizon is longer than every episode"
        return h
    h.km_t, h.km_s = _km(times, events)
    if unit == "steps":
        fit_exp, fit_wb, shape_ci = (horizon.fit_exponential_steps, horizon.fit_weibull_steps,
                                     horizon.weibull_steps_shape_ci)
        ok_t = times
    else:
        fit_exp, fit_wb, shape_ci = (horizon.fit_exponential, horizon.fit_weibull,
                                     horizon.weibull_shape_ci)
        ok_t = np.where(events, np.maximum(times, 1e-9), times)
    ex = fit_exp(ok_t, events)
    h.exponential_lambda, h.exponential_t50, h.exponential_t80 = ex.lam, ex.t50, ex.t80
    try:
        wb = fit_wb(ok_t, events)
        h.weibull_k, h.weibull_eta, h.weibull_t50, h.weibull_t80 = wb.k, wb.eta, wb.t50, wb.t80
        lo, hi = shape_ci(ok_t, events, fit=wb)
        h.weibull_k_lo, h.weibull_k_hi = lo, _finite(hi)
        h.hazard_trend = "rises" if lo > 1 else "falls" if hi < 1 else "constant_fits"
    except ValueError as e:
        h.note = f"Weibull not fitted: {e}"
    return h


def hazard_words(h: HorizonFits) -> str:
    """The Weibull shape in words, said only as far as its CI allows."""
    if h.weibull_k is None:
        return ""
    ci = f"k {h.weibull_k:.2f} [{_num(h.weibull_k_lo)}, {_num(h.weibull_k_hi)}]"
    return {"rises": f"{ci}: the hazard rises as the episode goes on",
            "falls": f"{ci}: the hazard falls as the episode goes on",
            "constant_fits": f"{ci}: the CI holds 1, so a constant hazard fits; no trend "
                             "is shown"}.get(h.hazard_trend or "", ci)


def _num(x: float | None) -> str:
    return "∞" if x is None else f"{x:.2f}"


def trials_detail(d: RunData, eps: np.ndarray, n_boot: int = 1000) -> TrialsDetail | None:
    """pass@k, pass^k, worst- and best-of-k per task (scenario × task × seed) with CIs from
    resampling tasks. Outcomes are binary, so worst-of-k is pass^k and best-of-k pass@k."""
    # Tasks in the order of their text keys "scenario␟task␟seed" (seeds as text).
    inv, first = group_ids(d.codes("scenario")[0][eps], d.codes("task")[0][eps],
                           str_ranks(d.seed[eps]))
    n = np.bincount(inv)
    c = np.bincount(inv, weights=np.nan_to_num(d.success[eps])).astype(int)
    if not (n >= 2).any():
        return None
    # k: the trial count most tasks have; tasks with fewer trials are left out.
    k = int(np.bincount(n[n >= 2]).argmax())
    keep = np.flatnonzero(n >= k)
    # each distinct (n, c) computed once: tasks share few
    pairs, which = np.unique(np.stack([n[keep], c[keep]]), axis=1, return_inverse=True)
    which = which.ravel()
    pak = np.array([pass_at_k(int(a), int(b), k) for a, b in pairs.T])[which]
    phk = np.array([pass_hat_k(int(a), int(b), k) for a, b in pairs.T])[which]
    rows = np.column_stack([np.ones(len(keep)), pak, phk])
    pa = bootstrap_ci(lambda s_: s_[..., 1] / s_[..., 0], rows, n_boot=n_boot)
    ph = bootstrap_ci(lambda s_: s_[..., 2] / s_[..., 0], rows, n_boot=n_boot)
    per_task = []
    for j, g in enumerate(keep[:200]):
        row = eps[first[g]]
        sc, task, seed = str(d.scenario[row]), str(d.task[row]), int(d.seed[row])
        per_task.append(TaskTrials(scenario=sc, task=task, seed=seed, n=int(n[g]),
                                   c=int(c[g]), pass_at_k=pak[j], pass_hat_k=phk[j],
                                   worst_of_k=phk[j], best_of_k=pak[j]))
    return TrialsDetail(
        k=k, pass_at_k=Interval(estimate=pa.estimate, lo=pa.lo, hi=pa.hi),
        pass_hat_k=Interval(estimate=ph.estimate, lo=ph.lo, hi=ph.hi),
        worst_of_k=float(phk.mean()), best_of_k=float(pak.mean()), per_task=per_task)


def ask_vs_need(d: RunData, eps_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step: (the agent asked a human, help was needed), over the steps of the episodes
    in `eps_mask`. The one definition behind every escalation count of the report: every
    step is a decision, finishing included (an agent that gives up where a human was
    needed missed an escalation); "needed" is the world judge's `help_needed`."""
    m = eps_mask[d.s_ep] if len(d.s_ep) else np.zeros(0, dtype=bool)
    return d.is_("s_kind", "ask_human") & m, d.s_help & m


def escalation_report(d: RunData, eps_mask: np.ndarray, c_h: float, c_e: float
                      ) -> EscalationReport:
    asked, needed = ask_vs_need(d, eps_mask)
    decisions = eps_mask[d.s_ep] if len(d.s_ep) else np.zeros(0, dtype=bool)
    tp, fp, fn, tn = escalation.confusion(asked[decisions], needed[decisions])
    am = escalation.ask_metrics(tp, fp, fn, tn)
    cr = escalation.cost_report(tp, fp, fn, tn, c_h, c_e)
    rep = EscalationReport(
        tp=tp, fp=fp, fn=fn, tn=tn, precision=am.precision, recall=am.recall, f1=am.f1,
        over_escalation=am.over_escalation, under_escalation=am.under_escalation,
        help_rate=am.help_rate, cost_per_ask=c_h, cost_per_error=c_e, cost_agent=cr.agent,
        cost_never_ask=cr.never_ask, cost_always_ask=cr.always_ask, cost_oracle=cr.oracle,
        regret=cr.regret, verdict=escalation_verdict(tp, fp, fn, am))
    conf_ok = (decisions & ~d.is_("s_kind", "finish") & ~np.isnan(d.s_conf) & (d.s_passed >= 0)
               & ~asked)
    if conf_ok.sum() >= 10:
        conf, corr = d.s_conf[conf_ok], d.s_passed[conf_ok] == 1
        # escalation.aurc and the curve drawn, in one sort
        rep.aurc, rep.risk_coverage = escalation.risk_coverage_summary(conf, corr, points=50)
        rep.e_aurc = rep.aurc - escalation.optimal_aurc(corr)  # escalation.e_aurc
    return rep


def escalation_verdict(tp: int, fp: int, fn: int, am: escalation.AskMetrics) -> str:
    """The escalation behaviour in words a reader understands."""
    asks, needed = tp + fp, tp + fn
    if asks == 0 and needed == 0:
        return "No step needed a human and the agent never asked: nothing to judge."
    if asks == 0:
        return (f"The agent never asks for help: it went on alone at all {needed} steps that "
                "needed a human (escalation recall 0). It asks too rarely.")
    parts = []
    if am.recall is not None:
        parts.append(f"asked at {tp} of the {needed} steps that needed help "
                     f"(recall {am.recall:.2f})")
    else:
        parts.append("no step needed help")
    parts.append(f"{fp} of its {asks} requests were unnecessary (precision "
                 f"{am.precision:.2f})")
    if am.recall is not None and am.recall >= 0.9 and (am.precision or 0) < 0.5:
        tail = "It asks too often: it catches what matters but wastes the human's time."
    elif am.recall is not None and am.recall < 0.5 and (am.precision or 0) >= 0.5:
        tail = "It asks too rarely: when it asks it is right to, but it misses most needs."
    elif am.recall is None:
        tail = "Every request for help was unnecessary: it asks too often."
    elif (am.f1 or 0) >= 0.8:
        tail = "It asks at about the right moments."
    else:
        tail = "Its asking is poorly aimed: both missed needs and unnecessary requests."
    return "The agent " + "; ".join(parts) + ". " + tail


def reliability(d: RunData, cost_per_ask: float = 1.0, cost_per_error: float = 10.0,
                n_boot: int = 1000, cp: CleanPrefix | None = None) -> Reliability:
    eps = np.flatnonzero(d.scored)
    cp = cp if cp is not None else clean_prefix(d, eps)
    ff = d.first_fail_idx()[eps]
    had_err = ff < np.iinfo(np.int64).max
    # Steps to the first error (1-based), censored at the episode's length.
    t_steps = np.where(had_err, ff + 1, d.n_steps[eps]).astype(float)
    # Simulated time of the first failed step, censored at the episode's end.
    first_fail_sim = np.full(len(d.ep_id), np.nan)
    failed_steps = d.s_passed == 0
    fs = np.flatnonzero(failed_steps)
    if fs.size:
        # steps are ordered by episode then index: the first failure per episode comes first
        e_of = d.s_ep[fs]
        firsts = fs[np.r_[True, e_of[1:] != e_of[:-1]]]
        first_fail_sim[d.s_ep[firsts]] = d.s_sim[firsts]
    t_sim = np.where(had_err, first_fail_sim[eps], d.sim_time[eps])
    return Reliability(
        shared_cause=shared_cause(d, cp),
        propagation=propagation(d, cp),
        blame=blame(d, cp),
        markov=markov_chain(d, eps),
        horizon_steps=horizon_fits(t_steps, had_err, "steps"),
        horizon_time=horizon_fits(np.nan_to_num(t_sim), had_err, "simulated seconds")
        if np.nanmax(d.sim_time[eps], initial=0) > 0 else None,
        trials=trials_detail(d, eps, n_boot),
        escalation=escalation_report(d, d.scored, cost_per_ask, cost_per_error),
    )
