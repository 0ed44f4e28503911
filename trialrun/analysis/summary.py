"""The run summary: outcome success, repeated trials, per-node accuracy, first errors,
predicted vs observed success, escalation and checkpoint counts, cost and latency.

Everything here reads `RunData` (the store, flattened) and returns pydantic models that the
terminal report, `--json` and the HTML report all render. Episodes that ended in an
infrastructure error are counted apart and never scored.

One name, one meaning: each quantity below has one field name, used as is in `--json`, and
one line in `MEANINGS` that the terminal and the HTML report print next to it.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from pydantic import BaseModel, Field

from trialrun.analysis.agents import AgentComparison, agent_comparison
from trialrun.analysis.data import RunData, group_ids
from trialrun.analysis.policies import PolicyResult, policy_table
from trialrun.analysis.reliability import (
    PROPAGATION_MEANING,
    SHARED_CAUSE_MEANING,
    CleanPrefix,
    Reliability,
    ask_vs_need,
    chain_rule_success,
    clean_prefix,
    reliability,
)
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


# Each quantity: the label every rendering uses, and the line that says what it means.
LABELS: dict[str, str] = {
    "success": "success",
    "predicted_success": "predicted success",
    "recovered": "succeeded despite a graded error",
    "failed_without_graded_error": "failed with no graded error",
    "accuracy_per_episode": "accuracy per episode",
    "accuracy": "accuracy per call",
    "marginal": "marginal accuracy",
    "visits_per_episode": "visits/ep",
    "first_errors": "first errors",
    "blame": "blame",
    "co_error_ratio": "co-error ratio",
    "shared_cause": "shared cause",
    "propagation": "propagation",
    "steps_needing_help": "steps that needed help",
    "help_rate": "help rate",
    "rescued": "rescued by the fork",
}
MEANINGS: dict[str, str] = {
    "success": "scored episodes whose outcome graders passed (Wilson 95% CI)",
    "predicted_success": (
        "the per-node accuracies multiplied along the chain rule, in episodes: the share of "
        "episodes with no graded error, which is success if every graded error is fatal"),
    "recovered": "scored episodes that succeeded although a step was graded wrong",
    "failed_without_graded_error": "scored episodes that failed with every step graded right",
    "accuracy_per_episode": (
        "of the episodes that reached the node before any error, the share in which the "
        "node made no error (Wilson 95% CI)"),
    "accuracy": (
        "the node's graded decisions that were right, counting only those made before any "
        "error in the episode (Wilson 95% CI)"),
    "marginal": "per call, over every graded decision at the node, errors upstream included",
    "visits_per_episode": "graded decisions at the node per scored episode",
    "first_errors": "scored episodes whose first graded error is at the node",
    "blame": "the node's share of the success lost to graded errors (−ln of its chain-rule "
             "factor over the sum)",
    "co_error_ratio": SHARED_CAUSE_MEANING,
    "shared_cause": "whether errors at different nodes come together beyond knock-on effects",
    "propagation": PROPAGATION_MEANING,
    "steps_needing_help": (
        "decisions (finishing included) where the world judged that asking a human was right"),
    "help_rate": "share of decisions at which the agent asked a human",
    "rescued": "failed episodes that succeed when forked, the same prefix replayed and the "
               "changed agent deciding from the fork's step (Wilson 95% CI)",
}


class NodeStats(BaseModel):
    node: str
    steps: int = Field(description="graded decisions at the node")
    accuracy: Proportion = Field(description=MEANINGS["accuracy"])
    accuracy_per_episode: Proportion = Field(description=MEANINGS["accuracy_per_episode"])
    marginal: Proportion = Field(description=MEANINGS["marginal"])
    visits_per_episode: float = Field(description=MEANINGS["visits_per_episode"])
    first_errors: int = Field(description=MEANINGS["first_errors"])


class TrialStats(BaseModel):
    k: int
    pass_at_k: float
    pass_hat_k: float
    tasks: int  # task × seed groups with at least k scored trials


class Escalation(BaseModel):
    asks: int
    asks_needed: int  # asked where help was needed (true positives)
    needed_not_asked: int  # help was needed, the agent went on alone
    steps_needing_help: int = Field(description=MEANINGS["steps_needing_help"])
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


# --- LLM judges (issue 10): noisy grades, kept apart from trusted ones -------------------
LABELS.update({
    "judge_pass_rate": "judge pass rate (raw)",
    "rogan_gladen": "judge-corrected (Rogan–Gladen)",
    "ppi": "judge-corrected (PPI)",
    "humans_only": "people's labels alone",
    "judge_agreement": "agreement with people",
    "cohens_kappa": "Cohen's κ",
    "judge_sensitivity": "sensitivity",
    "judge_specificity": "specificity",
    "judge_self_agreement": "judge self-agreement",
    "not_judged": "not judged",
    "judged_success": "success resting on a judge",
    "position_bias": "position-bias rate",
    "first_position": "first-position preference",
    "a_preference": "preference for A",
})
MEANINGS.update({
    "judge_pass_rate": (
        "the items (decisions at the node, or episodes) the judge passed, of those it judged, "
        "uncorrected: biased by the judge's errors (Wilson 95% CI)"),
    "rogan_gladen": (
        "the pass rate corrected for the judge's sensitivity Se and specificity Sp measured "
        "on its golden set: (raw + Sp − 1)/(Se + Sp − 1); the 95% CI counts the golden set's "
        "own sampling error (delta method); valid if the judge errs on this run as it did on "
        "the golden set"),
    "ppi": (
        "prediction-powered estimate: the judge's mean on the run's unlabelled items plus the "
        "mean of (person − judge) on its labelled items (95% CI); unbiased when the labelled "
        "items are a random sample of the run's"),
    "humans_only": "the pass rate of the run's labelled items by people's labels alone "
                   "(Wilson 95% CI)",
    "judge_agreement": "golden examples where the judge's verdict equals the person's label "
                       "(Wilson 95% CI)",
    "cohens_kappa": "agreement beyond chance, (p_o − p_e)/(1 − p_e); 95% CI by resampling "
                    "the golden examples",
    "judge_sensitivity": "of the golden examples people passed, the share the judge passed "
                         "(Wilson 95% CI)",
    "judge_specificity": "of the golden examples people failed, the share the judge failed "
                         "(Wilson 95% CI)",
    "judge_self_agreement": (
        "the chance that two of the judge's samples on the same item give the same verdict, "
        "averaged over items (Krippendorff's α beside it); low means single verdicts are "
        "unreliable"),
    "not_judged": "items the judge gave no readable verdict on: counted apart, never as a "
                  "pass or a fail",
    "judged_success": "scored episodes whose success was decided by judge (noisy) outcome "
                      "grades alone, with no trusted outcome grade",
    "position_bias": "pairs whose verdict changed when the two answers swapped places "
                     "(counted as ties; Wilson 95% CI)",
    "first_position": "of the verdicts naming a winner, the share naming the answer shown "
                      "first (50% without position bias; Wilson 95% CI)",
    "a_preference": "(A's wins + half the ties) / judged pairs",
})


class PairwiseSummary(BaseModel):
    judge: str
    a: str  # what side A is (an agent or a run)
    b: str
    pairs: int
    judged: int
    not_judged: int
    a_wins: int  # both orders said A
    b_wins: int
    ties: int  # both orders said tie, or the orders disagreed
    position_flips: int
    position_bias: Proportion = Field(description=MEANINGS["position_bias"])
    first_position: Proportion = Field(description=MEANINGS["first_position"])
    a_preference: float | None = Field(description=MEANINGS["a_preference"])


class CorrectedRate(BaseModel):
    method: str  # "rogan_gladen" or "ppi"
    estimate: float
    se: float
    lo: float  # estimate ± 1.96 SE, clipped to [0, 1]
    hi: float
    n: int  # judged items of the run
    n_labelled: int = 0  # PPI: the run's items people labelled


class JudgeCalibrationInfo(BaseModel):
    """The calibration a judge line uses (or the stale one it no longer matches)."""

    id: int
    created_at: str
    golden: str
    examples: int
    agreement: Proportion = Field(description=MEANINGS["judge_agreement"])
    kappa: float | None = Field(description=MEANINGS["cohens_kappa"])
    kappa_lo: float | None = None
    kappa_hi: float | None = None
    sensitivity: Proportion = Field(description=MEANINGS["judge_sensitivity"])
    specificity: Proportion = Field(description=MEANINGS["judge_specificity"])
    fingerprint: str


class JudgeLine(BaseModel):
    """One judge's grades in a run: raw, corrected, and which to believe."""

    grader: str
    scope: str  # "node" or "outcome"
    nodes: list[str] = Field(default_factory=list)
    source: str  # "run" (graded as it ran) or "regrade" (trialrun grade)
    model: str | None = None
    fingerprint: str | None = None
    samples: int = 1
    not_judged: int = Field(0, description=MEANINGS["not_judged"])
    raw: Proportion = Field(description=MEANINGS["judge_pass_rate"])
    rogan_gladen: CorrectedRate | None = Field(None, description=MEANINGS["rogan_gladen"])
    ppi: CorrectedRate | None = Field(None, description=MEANINGS["ppi"])
    humans_only: Proportion | None = Field(None, description=MEANINGS["humans_only"])
    believe: str = "raw"  # "ppi", "rogan_gladen", "raw" or "none"
    why: str = ""
    calibration: JudgeCalibrationInfo | None = None
    calibration_stale: str | None = None  # the judge changed since its calibration: how
    self_agreement: float | None = Field(None, description=MEANINGS["judge_self_agreement"])
    self_alpha: float | None = None
    warnings: list[str] = Field(default_factory=list)


class JudgeReport(BaseModel):
    lines: list[JudgeLine]
    judged_success: int = Field(0, description=MEANINGS["judged_success"])


class RunSummary(BaseModel):
    run_id: str
    episodes: int
    end_reasons: dict[str, int]
    errors: int
    success: Proportion
    by_scenario: list[ScenarioLine]
    trials: list[TrialStats]
    nodes: list[NodeStats]
    first_error_nodes: dict[str, int] = Field(description=MEANINGS["first_errors"])
    failed_without_graded_error: int = Field(
        description=MEANINGS["failed_without_graded_error"])
    user_fault_failures: int
    predicted_success: float | None = Field(description=MEANINGS["predicted_success"])
    recovered: int = Field(0, description=MEANINGS["recovered"])
    escalation: Escalation
    latency: dict[str, Percentiles] = Field(default_factory=dict)
    reliability: Reliability | None = None
    policies: list[PolicyResult] = Field(default_factory=list)  # compare-policies runs
    decisive_errors: DecisiveErrors | None = None
    agents: AgentComparison | None = None  # runs of several agents on the same episodes
    judges: JudgeReport | None = None  # LLM-judge (noisy) grades: trialrun.calibration


def _pct(values: np.ndarray) -> Percentiles:
    p = percentiles(values, (50, 90, 99))
    return Percentiles(p50=p.get(50), p90=p.get(90), p99=p.get(99))


def node_stats(d: RunData, cp: CleanPrefix | None = None
               ) -> tuple[list[NodeStats], float | None]:
    """Per-node accuracy (per call and per episode, given a clean prefix; marginal) and the
    predicted success (`reliability.chain_rule_success`, the definition in `MEANINGS`)."""
    scored_ep = d.scored
    cp = cp if cp is not None else clean_prefix(d, np.flatnonzero(scored_ep))
    in_scored = scored_ep[d.s_ep] if len(d.s_ep) else np.zeros(0, dtype=bool)
    graded = (d.s_passed >= 0) & in_scored
    first_fail = d.first_fail_idx()
    clean = d.s_idx <= first_fail[d.s_ep] if len(d.s_ep) else np.zeros(0, dtype=bool)
    n_eps = int(scored_ep.sum())
    reached, erred = cp.reached_count, cp.erred_count
    # Per node at once: graded steps, those passed, and the same before the first error.
    size = len(d.nodes)
    ok = d.s_passed == 1
    n_all = np.bincount(d.s_node[graded], minlength=size)
    k_all = np.bincount(d.s_node[graded & ok], minlength=size)
    n_clean = np.bincount(d.s_node[graded & clean], minlength=size)
    k_clean = np.bincount(d.s_node[graded & clean & ok], minlength=size)
    out: list[NodeStats] = []
    for code, node in enumerate(d.nodes):
        if not n_all[code]:
            continue
        out.append(NodeStats(
            node=node, steps=int(n_all[code]),
            accuracy=Proportion.of(int(k_clean[code]), int(n_clean[code])),
            accuracy_per_episode=Proportion.of(int(reached[code] - erred[code]),
                                               int(reached[code])),
            marginal=Proportion.of(int(k_all[code]), int(n_all[code])),
            visits_per_episode=round(int(n_all[code]) / n_eps, 4) if n_eps else 0.0,
            first_errors=int(erred[code])))
    return out, chain_rule_success(cp)


def trial_stats(d: RunData) -> list[TrialStats]:
    """pass@k and pass^k over the trials of each (scenario, task, seed), averaged."""
    rows = np.flatnonzero(d.scored)
    if not len(rows):
        return []
    group, _ = group_ids(d.codes("scenario")[0][rows], d.codes("task")[0][rows], d.seed[rows])
    n = np.bincount(group)
    c = np.bincount(group, weights=np.nan_to_num(d.success[rows])).astype(np.int64)
    max_n = int(n.max())
    out = []
    for k in sorted({1, 2, 3, 5, 8, 10, max_n}):
        if k > max_n:
            continue
        eligible = n >= k
        # each distinct (n, c) computed once: groups share few
        pairs, inv = np.unique(np.stack([n[eligible], c[eligible]]), axis=1,
                               return_inverse=True)
        inv = inv.ravel()
        at = np.array([pass_at_k(int(a), int(b), k) for a, b in pairs.T])[inv]
        hat = np.array([pass_hat_k(int(a), int(b), k) for a, b in pairs.T])[inv]
        out.append(TrialStats(k=k, tasks=int(eligible.sum()), pass_at_k=float(np.mean(at)),
                              pass_hat_k=float(np.mean(hat))))
    return out


def escalation_counts(d: RunData) -> Escalation:
    asked, needed = ask_vs_need(d, d.scored)
    rev = d.s_reviewed & (d.scored[d.s_ep] if len(d.s_ep) else np.zeros(0, dtype=bool))
    wrong = d.s_passed == 0
    right = d.s_passed == 1
    denied = rev & (d.s_approved == 0)
    return Escalation(
        asks=int(asked.sum()), asks_needed=int((asked & needed).sum()),
        needed_not_asked=int((needed & ~asked).sum()), steps_needing_help=int(needed.sum()),
        reviews=int(rev.sum()), denials=int(denied.sum()),
        wrong_approved=int((rev & (d.s_approved == 1) & wrong).sum()),
        right_denied=int((denied & right).sum()),
        human_seconds=float(d.human_seconds[d.scored].sum()),
    )


def summarize(d: RunData, cost_per_ask: float | None = None,
              cost_per_error: float | None = None, deep: bool = True,
              bar: float | None = None, bar_on_lower_bound: bool = False) -> RunSummary:
    """The run in one model. Escalation prices default to the scenarios' (`RunData`); `bar`
    is the success an agent must reach to be worth shipping (marks the cheapest that does)."""
    if cost_per_ask is None:
        cost_per_ask = d.cost_per_ask
    if cost_per_error is None:
        cost_per_error = d.cost_per_error
    scored = d.scored
    succ = d.success[scored]
    n = int(scored.sum())
    k = int(np.nansum(succ))
    cp = clean_prefix(d, np.flatnonzero(scored))
    nodes, predicted = node_stats(d, cp)
    failed = scored & (d.success == 0)
    fe = Counter({d.nodes[c]: int(v) for c, v in enumerate(cp.erred_count) if v})
    graded_error = np.zeros(len(d.ep_id), dtype=bool)
    graded_error[cp.eps] = cp.first_error >= 0
    by_scenario = []
    sc, names = d.codes("scenario")
    sc_n = np.bincount(sc[scored], minlength=len(names))
    sc_k = np.bincount(sc[scored], weights=np.nan_to_num(d.success[scored]),
                       minlength=len(names))
    sc_err = np.bincount(sc[~scored], minlength=len(names))
    for i, name in enumerate(names):
        by_scenario.append(ScenarioLine(
            scenario=name, success=Proportion.of(int(sc_k[i]), int(sc_n[i])),
            errors=int(sc_err[i])))
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
        end_reasons=_counts(d, "end_reason"), errors=int((~scored).sum()),
        success=Proportion.of(k, n), by_scenario=by_scenario, trials=trial_stats(d),
        nodes=nodes, first_error_nodes=dict(fe.most_common()),
        failed_without_graded_error=int((failed & ~graded_error).sum()),
        user_fault_failures=int((failed & d.user_fault).sum()),
        predicted_success=predicted,
        recovered=int((scored & graded_error & (d.success == 1)).sum()),
        escalation=escalation_counts(d), latency=latency,
        reliability=reliability(d, cost_per_ask, cost_per_error, cp=cp) if deep and n
        else None,
        policies=policy_table(d),
        agents=agent_comparison(d, bar, bar_on_lower_bound),
        decisive_errors=_decisive(d),
    )


def _counts(d: RunData, name: str) -> dict[str, int]:
    """How many episodes hold each value of a text column, by value."""
    codes, cats = d.codes(name)
    n = np.bincount(codes, minlength=len(cats))
    return {str(c): int(n[i]) for i, c in enumerate(cats) if n[i]}


def _decisive(d: RunData) -> DecisiveErrors | None:
    if not d.attributions:
        return None
    found = [(f, k) for f, k in d.attributions if k is not None]
    return DecisiveErrors(attributed=len(d.attributions), found=len(found),
                          first_is_decisive=sum(f == k for f, k in found),
                          by_node=dict(Counter(k for _, k in found).most_common()))
