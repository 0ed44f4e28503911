"""The run summary: outcome success, repeated trials, per-node accuracy, first errors,
predicted vs observed success, escalation and checkpoint counts, cost and latency.

Everything here reads `RunData` (the store, flattened) and returns pydantic models that the
terminal report, `--json` and the HTML report all render. Episodes that ended in an
infrastructure error are counted apart and never scored.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from pydantic import BaseModel, Field

from trialrun.analysis.data import RunData
from trialrun.analysis.policies import PolicyResult, policy_table
from trialrun.analysis.reliability import Reliability, reliability
from trialrun.analysis.stats import pass_at_k, pass_hat_k, percentiles, wilson


class Proportion(BaseModel):
    k: int
    n: int
    rate: float | None
    lo: float | None
    hi: float | None

    @classmethod
    def of(cls, k: int, n: int) -> Proportion:
        if n == 0:
            return cls(k=0, n=0, rate=None, lo=None, hi=None)
        lo, hi = wilson(int(k), int(n))
        return cls(k=int(k), n=int(n), rate=k / n, lo=lo, hi=hi)


class NodeStats(BaseModel):
    node: str
    steps: int  # graded steps at this node
    accuracy: Proportion  # given a clean prefix: no earlier failed step in the episode
    marginal: Proportion  # over every graded step, errors upstream included
    visits_per_episode: float
    first_errors: int  # episodes whose first error is here


class TrialStats(BaseModel):
    k: int
    pass_at_k: float
    pass_hat_k: float
    tasks: int  # task × seed groups with at least k scored trials


class Escalation(BaseModel):
    asks: int
    asks_needed: int  # asked where help was needed (true positives)
    needed_not_asked: int  # help was needed, the agent went on alone
    steps_needing_help: int
    reviews: int
    denials: int
    wrong_approved: int  # a reviewer approved a decision the world judged wrong
    right_denied: int
    human_seconds: float


class Percentiles(BaseModel):
    p50: float | None
    p90: float | None
    p99: float | None


class ScenarioLine(BaseModel):
    scenario: str
    success: Proportion
    errors: int


class DecisiveErrors(BaseModel):
    """Counterfactual attribution: the step whose correction saves the episode."""

    attributed: int
    found: int  # episodes where one correction turns failure into success
    first_is_decisive: int
    by_node: dict[str, int]


class RunSummary(BaseModel):
    run_id: str
    episodes: int
    end_reasons: dict[str, int]
    errors: int
    success: Proportion
    by_scenario: list[ScenarioLine]
    trials: list[TrialStats]
    nodes: list[NodeStats]
    first_error_nodes: dict[str, int]  # over failed episodes
    failed_without_graded_error: int
    user_fault_failures: int
    predicted_success: float | None  # product of clean-prefix node accuracies
    observed_success: float | None
    escalation: Escalation
    latency: dict[str, Percentiles] = Field(default_factory=dict)
    reliability: Reliability | None = None
    policies: list[PolicyResult] = Field(default_factory=list)  # compare-policies runs
    decisive_errors: DecisiveErrors | None = None


def _pct(values: np.ndarray) -> Percentiles:
    p = percentiles(list(map(float, values)), (50, 90, 99))
    return Percentiles(p50=p.get(50), p90=p.get(90), p99=p.get(99))


def node_stats(d: RunData) -> tuple[list[NodeStats], float | None]:
    """Per-node accuracy (clean prefix and marginal) and the independence prediction."""
    scored_ep = d.scored
    in_scored = scored_ep[d.s_ep] if len(d.s_ep) else np.zeros(0, dtype=bool)
    graded = (d.s_passed >= 0) & in_scored
    first_fail = d.first_fail_idx()
    clean = d.s_idx <= first_fail[d.s_ep] if len(d.s_ep) else np.zeros(0, dtype=bool)
    n_eps = int(scored_ep.sum())
    out: list[NodeStats] = []
    predicted = 1.0 if n_eps else None
    firsts = Counter(d.first_error_node[scored_ep & (d.first_error_node != "")])
    for code, node in enumerate(d.nodes):
        at = graded & (d.s_node == code)
        if not at.any():
            continue
        cp = at & clean
        k_clean, n_clean = int((d.s_passed[cp] == 1).sum()), int(cp.sum())
        k_all, n_all = int((d.s_passed[at] == 1).sum()), int(at.sum())
        visits = n_all / n_eps if n_eps else 0.0
        acc = Proportion.of(k_clean, n_clean)
        if predicted is not None and acc.rate is not None:
            predicted *= acc.rate ** visits
        out.append(NodeStats(node=node, steps=n_all, accuracy=acc,
                             marginal=Proportion.of(k_all, n_all),
                             visits_per_episode=round(visits, 4),
                             first_errors=firsts.get(node, 0)))
    return out, predicted


def trial_stats(d: RunData) -> list[TrialStats]:
    """pass@k and pass^k over the trials of each (scenario, task, seed), averaged."""
    groups: dict[tuple, list[float]] = {}
    for i in np.flatnonzero(d.scored):
        groups.setdefault((d.scenario[i], d.task[i], int(d.seed[i])), []).append(d.success[i])
    if not groups:
        return []
    max_n = max(len(v) for v in groups.values())
    out = []
    for k in sorted({1, 2, 3, 5, 8, 10, max_n}):
        if k > max_n:
            continue
        eligible = [(len(v), int(sum(v))) for v in groups.values() if len(v) >= k]
        out.append(TrialStats(
            k=k, tasks=len(eligible),
            pass_at_k=float(np.mean([pass_at_k(n, c, k) for n, c in eligible])),
            pass_hat_k=float(np.mean([pass_hat_k(n, c, k) for n, c in eligible]))))
    return out


def escalation_counts(d: RunData) -> Escalation:
    scored = d.scored[d.s_ep] if len(d.s_ep) else np.zeros(0, dtype=bool)
    asked = (d.s_kind == "ask_human") & scored
    help_ = d.s_help & scored
    rev = d.s_reviewed & scored
    wrong = d.s_passed == 0
    right = d.s_passed == 1
    denied = rev & (d.s_approved == 0)
    return Escalation(
        asks=int(asked.sum()), asks_needed=int((asked & help_).sum()),
        needed_not_asked=int((help_ & ~asked).sum()), steps_needing_help=int(help_.sum()),
        reviews=int(rev.sum()), denials=int(denied.sum()),
        wrong_approved=int((rev & (d.s_approved == 1) & wrong).sum()),
        right_denied=int((denied & right).sum()),
        human_seconds=float(d.human_seconds[d.scored].sum()),
    )


def summarize(d: RunData, cost_per_ask: float = 1.0, cost_per_error: float = 10.0,
              deep: bool = True) -> RunSummary:
    scored = d.scored
    succ = d.success[scored]
    n = int(scored.sum())
    k = int(np.nansum(succ))
    nodes, predicted = node_stats(d)
    failed = scored & (d.success == 0)
    fe = Counter(d.first_error_node[failed & (d.first_error_node != "")])
    by_scenario = []
    for name in sorted(set(d.scenario)):
        m = d.scenario == name
        ms = m & scored
        by_scenario.append(ScenarioLine(
            scenario=name, success=Proportion.of(int(np.nansum(d.success[ms])), int(ms.sum())),
            errors=int((m & ~scored).sum())))
    step_scored = scored[d.s_ep] if len(d.s_ep) else np.zeros(0, dtype=bool)
    latency = {
        "episode_wall_ms": _pct(d.wall_ms[scored]),
        "episode_sim_seconds": _pct(d.sim_time[scored]),
        "episode_steps": _pct(d.n_steps[scored]),
        "episode_cost": _pct(d.cost[scored]),
        "step_harness_us": _pct(d.s_wall_us[step_scored]),
    }
    return RunSummary(
        run_id=d.run_id, episodes=len(d.ep_id),
        end_reasons=dict(Counter(map(str, d.end_reason))), errors=int((~scored).sum()),
        success=Proportion.of(k, n), by_scenario=by_scenario, trials=trial_stats(d),
        nodes=nodes, first_error_nodes=dict(fe.most_common()),
        failed_without_graded_error=int((failed & (d.first_error_node == "")).sum()),
        user_fault_failures=int((failed & d.user_fault).sum()),
        predicted_success=predicted, observed_success=k / n if n else None,
        escalation=escalation_counts(d), latency=latency,
        reliability=reliability(d, cost_per_ask, cost_per_error) if deep and n else None,
        policies=policy_table(d),
        decisive_errors=_decisive(d),
    )


def _decisive(d: RunData) -> DecisiveErrors | None:
    if not d.attributions:
        return None
    found = [(f, k) for f, k in d.attributions if k is not None]
    return DecisiveErrors(attributed=len(d.attributions), found=len(found),
                          first_is_decisive=sum(f == k for f, k in found),
                          by_node=dict(Counter(k for _, k in found).most_common()))
