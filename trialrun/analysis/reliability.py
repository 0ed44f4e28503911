"""How per-decision accuracy becomes end-to-end success, and whether the agent asks for help
at the right moments.

Reads `RunData` only. Sections: the independence test (lift with a bootstrap CI resampling
whole tasks), the error-propagation matrix, each node's share of blame, the workflow as an
absorbing Markov chain, success against horizon (constant-hazard and Weibull fits), repeated
trials per task with CIs, and escalation precision/recall/cost against baselines.
Definitions and test vectors: shared/reference/ANALYSIS.md.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
from pydantic import BaseModel

from trialrun.analysis import compounding, escalation, horizon
from trialrun.analysis.data import RunData
from trialrun.analysis.stats import (
    bootstrap_ci,
    pass_at_k,
    pass_hat_k,
)


class Interval(BaseModel):
    estimate: float | None
    lo: float | None
    hi: float | None


class Independence(BaseModel):
    """Lift = observed all-nodes-ok rate / product of node marginals. L > 1: errors cluster
    in the same episodes (they propagate or share a cause); L ≈ 1: independent."""

    predicted: float
    observed: float
    lift: Interval
    correlated: bool  # the lift CI excludes 1
    clustered_by: str


class Propagation(BaseModel):
    """P(downstream node wrong | upstream wrong) against P(downstream wrong | upstream right)."""

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
    unit: str  # "steps" or "simulated seconds"
    events: int
    censored: int
    exponential_lambda: float | None = None
    exponential_t50: float | None = None
    exponential_t80: float | None = None
    weibull_k: float | None = None
    weibull_eta: float | None = None
    weibull_t50: float | None = None
    weibull_t80: float | None = None
    km_t: list[float] = []  # Kaplan–Meier: P(no error yet) at each event time
    km_s: list[float] = []
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
    independence: Independence | None
    propagation: Propagation | None
    blame: dict[str, float]
    markov: MarkovChain | None
    horizon_steps: HorizonFits | None
    horizon_time: HorizonFits | None
    trials: TrialsDetail | None
    escalation: EscalationReport


def _episode_node_matrices(d: RunData, eps: np.ndarray):
    """fail[e, n]: a graded step at node n failed in episode e; visit[e, n]: visited;
    first[e, n]: index of the first graded step at n (large if never)."""
    n_nodes = len(d.nodes)
    row = np.full(len(d.ep_id), -1, dtype=np.int64)
    row[eps] = np.arange(len(eps))
    keep = (d.s_passed >= 0) & (row[d.s_ep] >= 0)
    r, c = row[d.s_ep[keep]], d.s_node[keep]
    fail = np.zeros((len(eps), n_nodes), dtype=bool)
    visit = np.zeros((len(eps), n_nodes), dtype=bool)
    first = np.full((len(eps), n_nodes), np.iinfo(np.int64).max, dtype=np.int64)
    visit[r, c] = True
    bad = d.s_passed[keep] == 0
    fail[r[bad], c[bad]] = True
    np.minimum.at(first, (r, c), d.s_idx[keep])
    return fail, visit, first


def _task_groups(d: RunData, eps: np.ndarray) -> np.ndarray:
    keys = np.char.add(d.scenario[eps].astype(str), np.char.add("/", d.task[eps].astype(str)))
    return np.unique(keys, return_inverse=True)[1]


def independence(d: RunData, eps: np.ndarray, fail: np.ndarray, visit: np.ndarray,
                 n_boot: int = 1000) -> Independence | None:
    cols = visit.any(axis=0)
    if len(eps) < 2 or cols.sum() < 2:
        return None
    ok = ~fail[:, cols]
    res = compounding.independence_lift(ok)
    groups = _task_groups(d, eps)
    by_task = len(np.unique(groups)) >= 5
    ci = compounding.lift_ci(ok, groups if by_task else None, n_boot=n_boot)
    lo, hi = _finite(ci.lo), _finite(ci.hi)
    return Independence(
        predicted=res.predicted, observed=res.observed,
        lift=Interval(estimate=_finite(res.lift), lo=lo, hi=hi),
        correlated=bool(lo is not None and hi is not None and (lo > 1 or hi < 1)),
        clustered_by="task" if by_task else "episode")


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def propagation(d: RunData, fail: np.ndarray, visit: np.ndarray,
                first: np.ndarray) -> Propagation | None:
    used = [i for i in range(len(d.nodes)) if visit[:, i].any()]
    if len(used) < 2:
        return None
    names = [d.nodes[i] for i in used]
    gw: list[list[float | None]] = []
    gr: list[list[float | None]] = []
    gaps = []
    for i in used:
        row_w, row_r = [], []
        for j in used:
            if i == j:
                row_w.append(None)
                row_r.append(None)
                continue
            both = visit[:, i] & visit[:, j] & (first[:, i] < first[:, j])
            wi = both & fail[:, i]
            ri = both & ~fail[:, i]
            pw = float(fail[wi, j].mean()) if wi.sum() >= 5 else None
            pr = float(fail[ri, j].mean()) if ri.sum() >= 5 else None
            row_w.append(pw)
            row_r.append(pr)
            if pw is not None and pr is not None and pw - pr > 0.05:
                gaps.append((pw - pr, d.nodes[i], d.nodes[j], pw, pr))
        gw.append(row_w)
        gr.append(row_r)
    gaps.sort(reverse=True)
    lines = [f"an error at {a} makes {b} wrong {100 * pw:.0f}% of the time "
             f"(vs {100 * pr:.0f}% after a right {a})" for _, a, b, pw, pr in gaps[:5]]
    return Propagation(nodes=names, given_wrong=gw, given_right=gr, strongest=lines)


def blame(d: RunData, fail: np.ndarray, visit: np.ndarray, first: np.ndarray) -> dict[str, float]:
    """Each node's share of −ln(success) given a clean prefix (ANALYSIS.md §1)."""
    first_fail = np.where(fail, first, np.iinfo(np.int64).max).min(axis=1)
    acc = {}
    for n, name in enumerate(d.nodes):
        clean = visit[:, n] & (first[:, n] <= first_fail)
        if clean.sum():
            acc[name] = float(1 - fail[clean, n].mean())
    names = [k for k, v in acc.items() if v < 1]
    if not names:
        return {}
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
    counts: dict[tuple[str, str], int] = {}
    for a, b in zip(node[:-1][same], node[1:][same], strict=True):
        key = (d.nodes[a], d.nodes[b])
        counts[key] = counts.get(key, 0) + 1
    last = np.r_[~same, True]
    for e, n in zip(ep[last], node[last], strict=True):
        key = (d.nodes[n], "Success" if d.success[e] == 1 else "Fail")
        counts[key] = counts.get(key, 0) + 1
    out: dict[str, int] = {}
    for (a, _), c in counts.items():
        out[a] = out.get(a, 0) + c
    g = nx.DiGraph()
    for (a, b), c in counts.items():
        g.add_edge(a, b, p=c / out[a])
    firsts = node[np.r_[True, ~same]]
    start = d.nodes[int(np.bincount(firsts).argmax())]
    try:
        res = compounding.absorbing_chain(g, start)
    except ValueError:
        return None
    return MarkovChain(start=start, p_success=res.p_success,
                       expected_visits={str(k): v for k, v in res.visits.items()},
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
    if len(times) == 0:
        return None
    h = HorizonFits(unit=unit, events=int(events.sum()), censored=int((~events).sum()))
    if not events.any():
        h.note = "no errors observed: the horizon is longer than every episode"
        return h
    h.km_t, h.km_s = _km(times, events)
    ok_t = np.where(events, np.maximum(times, 1e-9), times)
    ex = horizon.fit_exponential(ok_t, events)
    h.exponential_lambda, h.exponential_t50, h.exponential_t80 = ex.lam, ex.t50, ex.t80
    try:
        wb = horizon.fit_weibull(ok_t, events)
        h.weibull_k, h.weibull_eta, h.weibull_t50, h.weibull_t80 = wb.k, wb.eta, wb.t50, wb.t80
    except ValueError as e:
        h.note = f"Weibull not fitted: {e}"
    return h


def trials_detail(d: RunData, eps: np.ndarray, n_boot: int = 1000) -> TrialsDetail | None:
    """pass@k, pass^k, worst- and best-of-k per task (scenario × task × seed) with CIs from
    resampling tasks. Outcomes are binary, so worst-of-k is pass^k and best-of-k pass@k."""
    sep = "\x1f"  # unit separator: cannot appear in scenario or task names from YAML
    key = np.char.add(np.char.add(d.scenario[eps].astype(str), sep),
                      np.char.add(np.char.add(d.task[eps].astype(str), sep),
                                  d.seed[eps].astype(str)))
    uniq, inv = np.unique(key, return_inverse=True)
    n = np.bincount(inv)
    c = np.bincount(inv, weights=np.nan_to_num(d.success[eps])).astype(int)
    if not (n >= 2).any():
        return None
    # k: the trial count most tasks have; tasks with fewer trials are left out.
    k = int(np.bincount(n[n >= 2]).argmax())
    keep = np.flatnonzero(n >= k)
    memo: dict[tuple[int, int], tuple[float, float]] = {}
    pak = np.empty(len(keep))
    phk = np.empty(len(keep))
    for j, g in enumerate(keep):
        nc = (int(n[g]), int(c[g]))
        if nc not in memo:
            memo[nc] = (pass_at_k(nc[0], nc[1], k), pass_hat_k(nc[0], nc[1], k))
        pak[j], phk[j] = memo[nc]
    rows = np.column_stack([np.ones(len(keep)), pak, phk])
    pa = bootstrap_ci(lambda s_: s_[..., 1] / s_[..., 0], rows, n_boot=n_boot)
    ph = bootstrap_ci(lambda s_: s_[..., 2] / s_[..., 0], rows, n_boot=n_boot)
    per_task = []
    for j, g in enumerate(keep[:200]):
        sc, task, seed = uniq[g].split(sep)
        per_task.append(TaskTrials(scenario=sc, task=task, seed=int(seed), n=int(n[g]),
                                   c=int(c[g]), pass_at_k=pak[j], pass_hat_k=phk[j],
                                   worst_of_k=phk[j], best_of_k=pak[j]))
    return TrialsDetail(
        k=k, pass_at_k=Interval(estimate=pa.estimate, lo=pa.lo, hi=pa.hi),
        pass_hat_k=Interval(estimate=ph.estimate, lo=ph.lo, hi=ph.hi),
        worst_of_k=float(phk.mean()), best_of_k=float(pak.mean()), per_task=per_task)


def escalation_report(d: RunData, eps_mask: np.ndarray, c_h: float, c_e: float
                      ) -> EscalationReport:
    m = eps_mask[d.s_ep] if len(d.s_ep) else np.zeros(0, dtype=bool)
    asked = (d.s_kind == "ask_human") & m
    needed = d.s_help & m
    decisions = m & (d.s_kind != "finish")
    tp = int((asked & needed).sum())
    fp = int((asked & ~needed).sum())
    fn = int((~asked & needed & decisions).sum())
    tn = int((~asked & ~needed & decisions).sum())
    am = escalation.ask_metrics(tp, fp, fn, tn)
    cr = escalation.cost_report(tp, fp, fn, tn, c_h, c_e)
    rep = EscalationReport(
        tp=tp, fp=fp, fn=fn, tn=tn, precision=am.precision, recall=am.recall, f1=am.f1,
        over_escalation=am.over_escalation, under_escalation=am.under_escalation,
        help_rate=am.help_rate, cost_per_ask=c_h, cost_per_error=c_e, cost_agent=cr.agent,
        cost_never_ask=cr.never_ask, cost_always_ask=cr.always_ask, cost_oracle=cr.oracle,
        regret=cr.regret, verdict=escalation_verdict(tp, fp, fn, am))
    conf_ok = decisions & ~np.isnan(d.s_conf) & (d.s_passed >= 0) & ~asked
    if conf_ok.sum() >= 10:
        conf, corr = d.s_conf[conf_ok], d.s_passed[conf_ok] == 1
        rep.aurc = escalation.aurc(conf, corr)
        rep.e_aurc = escalation.e_aurc(conf, corr)
        cov, risk = escalation.risk_coverage(conf, corr)
        pick = np.unique(np.linspace(0, len(cov) - 1, min(len(cov), 50)).astype(int))
        rep.risk_coverage = [(float(cov[i]), float(risk[i])) for i in pick]
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
                n_boot: int = 1000) -> Reliability:
    eps = np.flatnonzero(d.scored)
    fail, visit, first = _episode_node_matrices(d, eps)
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
        independence=independence(d, eps, fail, visit, n_boot),
        propagation=propagation(d, fail, visit, first),
        blame=blame(d, fail, visit, first),
        markov=markov_chain(d, eps),
        horizon_steps=horizon_fits(t_steps, had_err, "steps"),
        horizon_time=horizon_fits(np.nan_to_num(t_sim), had_err, "simulated seconds")
        if np.nanmax(d.sim_time[eps], initial=0) > 0 else None,
        trials=trials_detail(d, eps, n_boot),
        escalation=escalation_report(d, d.scored, cost_per_ask, cost_per_error),
    )
