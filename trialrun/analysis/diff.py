"""Two runs compared episode by episode: what got worse, what got better, and whether it is
more than chance.

Episodes are paired, never pooled. Within each scenario and task, an episode of run A is
paired with the episode of run B on the same seed and trial; when the two runs share no
seed of a task at all (two runs of one agent on different seeds), that task's episodes are
paired in order (seed, then trial) instead, and `paired_by_task` counts them. Pairs where
either episode ended in an infrastructure error are left out (they were never scored).

Every difference is B minus A on the same pairs, with a 95% CI from a paired bootstrap that
resamples whole task × seed groups (the trials of one seed share a world, so they are not
independent; `agents.cluster_of` is the same grouping) 4000 times with a seed derived from
the data, so one pair of runs always gives the same interval. Success and each node's
accuracy also get McNemar's exact test on the discordant pairs; the node tests are
corrected for their number (Holm), so a run-to-run wobble at one of many nodes is not
reported as a change.

One name, one meaning: each quantity has one field name (used as is in `--json`) and one
line in `DIFF_MEANINGS` that the terminal and the HTML page print next to it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
from pydantic import BaseModel, Field, computed_field

from trialrun.analysis.data import RunData
from trialrun.analysis.reliability import ask_vs_need, clean_prefix
from trialrun.analysis.stats import bootstrap_ci, cluster_sums, mcnemar
from trialrun.analysis.summary import LABELS, MEANINGS, Proportion

ALPHA = 0.05  # a change is reported as significant below this (Holm-corrected for nodes)
N_BOOT = 4000

DIFF_LABELS: dict[str, str] = {
    "success": LABELS["success"],
    "accuracy_per_episode": LABELS["accuracy_per_episode"],
    "newly_failing": "newly failing",
    "newly_passing": "newly passing",
    "ask_precision": "Ask precision",
    "ask_recall": "Ask recall",
    "ask_f1": "Ask-F1",
    "over_escalation": "over-escalation",
    "under_escalation": "under-escalation",
    "asks_per_episode": "asks/ep",
    "reviews_per_episode": "reviews/ep",
    "cost_per_episode": "cost/ep",
    "wall_ms_per_episode": "wall ms/ep",
    "steps_per_episode": "steps/ep",
    "tokens_per_episode": "tokens/ep",
    "sim_seconds_per_episode": "simulated s/ep",
}
DIFF_MEANINGS: dict[str, str] = {
    "success": MEANINGS["success"] + ", on the paired episodes; the difference is B − A",
    "accuracy_per_episode": MEANINGS["accuracy_per_episode"],
    "newly_failing": "pairs whose episode succeeded in A and failed in B",
    "newly_passing": "pairs whose episode failed in A and succeeded in B",
    "ask_precision": "of the decisions where the agent asked a human, the share where help "
                     "was needed",
    "ask_recall": "of the decisions where help was needed, the share where the agent asked",
    "ask_f1": "harmonic mean of Ask precision and Ask recall",
    "over_escalation": "of the decisions where help was not needed, the share where the "
                       "agent asked anyway",
    "under_escalation": "of the decisions where help was needed, the share where the agent "
                        "went on alone",
    "asks_per_episode": "times the agent asked a human, per episode",
    "reviews_per_episode": "decisions a human reviewed at a checkpoint, per episode",
    "cost_per_episode": "model spend per episode",
    "wall_ms_per_episode": "wall-clock milliseconds per episode",
    "steps_per_episode": "decisions per episode",
    "tokens_per_episode": "model tokens per episode",
    "sim_seconds_per_episode": "simulated seconds per episode",
    "ci": "95% CI of B − A from a paired bootstrap resampling whole task × seed groups "
          "(4000 draws, seed derived from the data)",
    "mcnemar_p": "McNemar's exact test on the discordant pairs (two-sided); for nodes, "
                 "Holm-corrected over the nodes tested",
}


class Delta(BaseModel):
    """A quantity in A and in B on the same pairs, and B − A with its 95% CI."""

    a: float | None
    b: float | None
    delta: float | None
    lo: float | None = None
    hi: float | None = None


class PairedCase(BaseModel):
    scenario: str
    task: str
    seed: int  # run B's
    trial: int
    episode_a: str
    episode_b: str
    failed_episode: str  # the one that failed: B's if newly failing, A's if newly passing
    first_error_node: str | None = None  # of the episode that failed
    first_error_step: int | None = None


class SuccessDiff(BaseModel):
    a: Proportion
    b: Proportion
    delta: float | None
    lo: float | None
    hi: float | None
    newly_failing: int = Field(description=DIFF_MEANINGS["newly_failing"])
    newly_passing: int = Field(description=DIFF_MEANINGS["newly_passing"])
    mcnemar_p: float = Field(description=DIFF_MEANINGS["mcnemar_p"])
    significant: bool


class NodeDiff(BaseModel):
    node: str
    a: Proportion = Field(description=MEANINGS["accuracy_per_episode"])
    b: Proportion
    delta: float | None
    lo: float | None
    hi: float | None
    newly_wrong: int  # pairs that reached the node clean in both: right in A, wrong in B
    newly_right: int
    mcnemar_p: float  # exact, uncorrected
    mcnemar_p_holm: float  # Holm-corrected over the nodes tested
    significant: bool


class RunDiff(BaseModel):
    run_a: str
    run_b: str
    pairs: int  # scored pairs compared
    paired_by_task: int  # pairs matched by order within a task (the runs share no seed)
    only_a: int  # scored episodes of A with no partner in B
    only_b: int
    unscored_pairs: int  # pairs left out: an infrastructure error on either side
    success: SuccessDiff
    nodes: list[NodeDiff]
    escalation: dict[str, Delta]  # ask_precision, ask_recall, ask_f1, over/under_escalation
    per_episode: dict[str, Delta]  # asks, reviews, cost, wall ms, steps, tokens, sim seconds
    newly_failing: list[PairedCase]
    newly_passing: list[PairedCase]
    findings: list[str]

    @computed_field  # in --json too: what `diff --fail-on-regression` acts on
    @property
    def regressed(self) -> bool:
        """Success or a node got significantly worse."""
        return (self.success.significant and (self.success.delta or 0) < 0) or any(
            n.significant and (n.delta or 0) < 0 for n in self.nodes)


# --- pairing -----------------------------------------------------------------------------------
class _Pairs:
    def __init__(self, ia: list[int], ib: list[int], clusters: list[str], by_task: int,
                 only_a: int, only_b: int, unscored: int) -> None:
        self.ia = np.array(ia, dtype=np.int64)
        self.ib = np.array(ib, dtype=np.int64)
        self.clusters = np.array(clusters, dtype=object)
        self.by_task, self.only_a, self.only_b, self.unscored = by_task, only_a, only_b, unscored


def _groups(d: RunData) -> dict[tuple[str, str], list[tuple[int, int, int]]]:
    out: dict[tuple[str, str], list[tuple[int, int, int]]] = defaultdict(list)
    for i, (s, t, seed, trial) in enumerate(zip(d.scenario, d.task, d.seed, d.trial,
                                                strict=True)):
        out[(str(s), str(t))].append((int(seed), int(trial), i))
    for v in out.values():
        v.sort()
    return out


def pair(a: RunData, b: RunData) -> _Pairs:
    """Pair A's episodes with B's (see the module docstring); errors drop out of pairs."""
    ga, gb = _groups(a), _groups(b)
    sa, sb = a.scored, b.scored
    ia: list[int] = []
    ib: list[int] = []
    clusters: list[str] = []
    by_task = only_a = only_b = unscored = 0
    for key in sorted(set(ga) | set(gb)):
        xs, ys = ga.get(key, []), gb.get(key, [])
        ymap = {(s, t): i for s, t, i in ys}
        exact = [(s, t, i, ymap[(s, t)]) for s, t, i in xs if (s, t) in ymap]
        if exact:
            matched = exact
            seeds_a = {(s, t) for s, t, _ in xs}
            only_a += sum(1 for s, t, i in xs if (s, t) not in ymap and sa[i])
            only_b += sum(1 for s, t, i in ys if (s, t) not in seeds_a and sb[i])
        else:  # no seed in common: pair in order
            matched = [(y[0], y[1], x[2], y[2]) for x, y in zip(xs, ys, strict=False)]
            only_a += sum(1 for _, _, i in xs[len(matched):] if sa[i])
            only_b += sum(1 for _, _, i in ys[len(matched):] if sb[i])
        kept = 0
        for seed, _trial, i, j in matched:
            if not (sa[i] and sb[j]):
                unscored += 1
                continue
            ia.append(i)
            ib.append(j)
            clusters.append(f"{key[0]}\x1f{key[1]}\x1f{seed}")
            kept += 1
        if not exact:
            by_task += kept
    return _Pairs(ia, ib, clusters, by_task, only_a, only_b, unscored)


# --- statistics ----------------------------------------------------------------------------------
def _seed_of(rows: np.ndarray) -> int:
    return int.from_bytes(hashlib.blake2b(np.ascontiguousarray(rows).tobytes(),
                                          digest_size=8).digest(), "big")


def paired_ratio_delta(clusters: np.ndarray, values: np.ndarray) -> Delta:
    """B − A of a ratio of sums, `values` per pair (den_a, num_a, den_b, num_b), with a
    bootstrap CI over the pairs' clusters. A mean per episode is den = 1 per pair."""
    if len(values) == 0:
        return Delta(a=None, b=None, delta=None)
    tot = values.sum(axis=0)
    a = float(tot[1] / tot[0]) if tot[0] else None
    b = float(tot[3] / tot[2]) if tot[2] else None
    out = Delta(a=a, b=b, delta=None if a is None or b is None else b - a)
    rows = cluster_sums(clusters, values)
    if out.delta is None or len(rows) < 2:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        ci = bootstrap_ci(lambda s: s[..., 3] / s[..., 2] - s[..., 1] / s[..., 0], rows,
                          n_boot=N_BOOT, seed=_seed_of(rows), ignore_nan=True)
    if np.isfinite(ci.lo) and np.isfinite(ci.hi):
        out.lo, out.hi = float(ci.lo), float(ci.hi)
    return out


def holm(ps: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


def _per_step_counts(d: RunData, values: np.ndarray) -> np.ndarray:
    """Per episode, the number of its steps where `values` holds."""
    if not len(d.s_ep):
        return np.zeros(len(d.ep_id))
    return np.bincount(d.s_ep, weights=values.astype(float), minlength=len(d.ep_id))


def _escalation_counts(d: RunData) -> dict[str, np.ndarray]:
    asked, needed = ask_vs_need(d, np.ones(len(d.ep_id), dtype=bool))
    return {"tp": _per_step_counts(d, asked & needed), "fp": _per_step_counts(d, asked & ~needed),
            "fn": _per_step_counts(d, ~asked & needed),
            "tn": _per_step_counts(d, ~asked & ~needed)}


def diff_runs(a: RunData, b: RunData, limit_cases: int | None = None) -> RunDiff:
    """Run B against run A: paired success, per-node accuracy, escalation, cost, latency."""
    p = pair(a, b)
    n = len(p.ia)
    ones = np.ones(n)
    sa = np.nan_to_num(a.success[p.ia]) if n else np.zeros(0)
    sb = np.nan_to_num(b.success[p.ib]) if n else np.zeros(0)
    fail_new = (sa == 1) & (sb == 0)
    pass_new = (sa == 0) & (sb == 1)
    d = paired_ratio_delta(p.clusters, np.column_stack([ones, sa, ones, sb]) if n
                           else np.zeros((0, 4)))
    mc = mcnemar(int(fail_new.sum()), int(pass_new.sum()))
    success = SuccessDiff(
        a=Proportion.of(int(sa.sum()), n), b=Proportion.of(int(sb.sum()), n),
        delta=d.delta, lo=d.lo, hi=d.hi, newly_failing=int(fail_new.sum()),
        newly_passing=int(pass_new.sum()), mcnemar_p=mc.p_exact,
        significant=mc.p_exact < ALPHA)
    nodes = _node_diffs(a, b, p)
    esc = _escalation_diffs(a, b, p)
    per_ep = {}
    for key, attr in (("asks_per_episode", "asks"), ("reviews_per_episode", "reviews"),
                      ("cost_per_episode", "cost"), ("wall_ms_per_episode", "wall_ms"),
                      ("steps_per_episode", "n_steps"), ("tokens_per_episode", "tokens"),
                      ("sim_seconds_per_episode", "sim_time")):
        va = getattr(a, attr)[p.ia].astype(float) if n else np.zeros(0)
        vb = getattr(b, attr)[p.ib].astype(float) if n else np.zeros(0)
        per_ep[key] = paired_ratio_delta(p.clusters, np.column_stack([ones, va, ones, vb])
                                         if n else np.zeros((0, 4)))

    def cases(mask: np.ndarray, failed: RunData, idx: np.ndarray) -> list[PairedCase]:
        out = []
        for k in np.flatnonzero(mask)[:limit_cases]:
            i, j = int(p.ia[k]), int(p.ib[k])
            f = int(idx[k])
            step = int(failed.first_error_step[f])
            out.append(PairedCase(
                scenario=str(b.scenario[j]), task=str(b.task[j]), seed=int(b.seed[j]),
                trial=int(b.trial[j]), episode_a=str(a.ep_id[i]), episode_b=str(b.ep_id[j]),
                failed_episode=str(failed.ep_id[f]),
                first_error_node=str(failed.first_error_node[f]) or None,
                first_error_step=None if step == np.iinfo(np.int64).max else step))
        return out

    out = RunDiff(
        run_a=a.run_id, run_b=b.run_id, pairs=n, paired_by_task=p.by_task, only_a=p.only_a,
        only_b=p.only_b, unscored_pairs=p.unscored, success=success, nodes=nodes,
        escalation=esc, per_episode=per_ep,
        newly_failing=cases(fail_new, b, p.ib), newly_passing=cases(pass_new, a, p.ia),
        findings=[])
    out.findings = findings(out)
    return out


def _node_diffs(a: RunData, b: RunData, p: _Pairs) -> list[NodeDiff]:
    if not len(p.ia):
        return []
    cpa = clean_prefix(a, np.arange(len(a.ep_id)))
    cpb = clean_prefix(b, np.arange(len(b.ep_id)))
    names = sorted(set(a.nodes) | set(b.nodes))
    ca = {x: i for i, x in enumerate(a.nodes)}
    cb = {x: i for i, x in enumerate(b.nodes)}
    none = np.zeros(len(p.ia), dtype=bool)
    rows, ps = [], []
    for node in names:
        ra = cpa.reached[p.ia, ca[node]] if node in ca else none
        ea = cpa.erred[p.ia, ca[node]] if node in ca else none
        rb = cpb.reached[p.ib, cb[node]] if node in cb else none
        eb = cpb.erred[p.ib, cb[node]] if node in cb else none
        if not (ra.any() or rb.any()):
            continue
        oka, okb = ra & ~ea, rb & ~eb
        vals = np.column_stack([ra, oka, rb, okb]).astype(float)
        dl = paired_ratio_delta(p.clusters, vals)
        both = ra & rb
        wrong, right = int((both & oka & eb).sum()), int((both & ea & okb).sum())
        mp = mcnemar(wrong, right).p_exact
        ps.append(mp)
        rows.append(NodeDiff(
            node=node, a=Proportion.of(int(oka.sum()), int(ra.sum())),
            b=Proportion.of(int(okb.sum()), int(rb.sum())), delta=dl.delta, lo=dl.lo, hi=dl.hi,
            newly_wrong=wrong, newly_right=right, mcnemar_p=mp, mcnemar_p_holm=1.0,
            significant=False))
    for row, adj in zip(rows, holm(ps), strict=True):
        row.mcnemar_p_holm = adj
        row.significant = adj < ALPHA
    return rows


def _escalation_diffs(a: RunData, b: RunData, p: _Pairs) -> dict[str, Delta]:
    if not len(p.ia):
        return {}
    xa = {k: v[p.ia] for k, v in _escalation_counts(a).items()}
    xb = {k: v[p.ib] for k, v in _escalation_counts(b).items()}

    def ratio(num: list[tuple[str, float]], den: list[tuple[str, float]]) -> Delta:
        def s(x: dict[str, np.ndarray], terms: list[tuple[str, float]]) -> np.ndarray:
            return sum(w * x[k] for k, w in terms)

        vals = np.column_stack([s(xa, den), s(xa, num), s(xb, den), s(xb, num)])
        return paired_ratio_delta(p.clusters, vals)

    return {
        "ask_precision": ratio([("tp", 1)], [("tp", 1), ("fp", 1)]),
        "ask_recall": ratio([("tp", 1)], [("tp", 1), ("fn", 1)]),
        "ask_f1": ratio([("tp", 2)], [("tp", 2), ("fp", 1), ("fn", 1)]),
        "over_escalation": ratio([("fp", 1)], [("fp", 1), ("tn", 1)]),
        "under_escalation": ratio([("fn", 1)], [("tp", 1), ("fn", 1)]),
    }


# --- words and tables (every rendering uses these) ----------------------------------------------
def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _pts(d: float | None, lo: float | None, hi: float | None) -> str:
    if d is None:
        return "–"
    ci = "" if lo is None else f" [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    return f"{100 * d:+.1f} pts{ci}"


def _num(d: float | None, lo: float | None = None, hi: float | None = None,
         signed: bool = False) -> str:
    if d is None:
        return "–"
    f = "{:+.4g}" if signed else "{:.4g}"
    ci = "" if lo is None else f" [{f.format(lo)}, {f.format(hi)}]"
    return f.format(d) + ci


def findings(r: RunDiff) -> list[str]:
    """What changed, in sentences, most important first."""
    out = []
    s = r.success
    if r.pairs == 0:
        return ["The runs have no episode in common (no scenario and task both ran): "
                "nothing to compare."]
    change = _pts(s.delta, s.lo, s.hi)
    if s.significant:
        word = "fell" if (s.delta or 0) < 0 else "rose"
        out.append(f"Success {word} from {_pct(s.a.rate)} to {_pct(s.b.rate)} ({change}); "
                   f"McNemar p = {s.mcnemar_p:.3g}: a significant change.")
    else:
        out.append(f"No significant change in success: {_pct(s.a.rate)} → {_pct(s.b.rate)} "
                   f"({change}; McNemar p = {s.mcnemar_p:.3g}).")
    for n in r.nodes:
        if n.significant:
            word = "regressed" if (n.delta or 0) < 0 else "improved"
            out.append(f"Node {n.node} {word}: accuracy per episode {_pct(n.a.rate)} → "
                       f"{_pct(n.b.rate)} ({_pts(n.delta, n.lo, n.hi)}; {n.newly_wrong} "
                       f"newly wrong, {n.newly_right} newly right; Holm-corrected McNemar "
                       f"p = {n.mcnemar_p_holm:.3g}).")
    if not any(n.significant for n in r.nodes) and r.nodes:
        out.append("No node's accuracy changed significantly.")
    if s.newly_failing or s.newly_passing:
        out.append(f"{s.newly_failing} case(s) newly failing, {s.newly_passing} newly "
                   "passing.")
    if r.paired_by_task:
        out.append(f"{r.paired_by_task} pair(s) were matched by task, not by seed (the runs "
                   "share no seed of those tasks).")
    if r.only_a or r.only_b or r.unscored_pairs:
        out.append(f"Left out: {r.only_a} episode(s) only in A, {r.only_b} only in B, "
                   f"{r.unscored_pairs} pair(s) with an infrastructure error.")
    return out


def node_rows(r: RunDiff) -> tuple[list[str], list[list[str]]]:
    headers = ["node", "A", "B", "B − A (95% CI)", "newly wrong", "newly right",
               "McNemar p", ""]
    rows = [[n.node, _pct(n.a.rate) + f" ({n.a.k}/{n.a.n})",
             _pct(n.b.rate) + f" ({n.b.k}/{n.b.n})", _pts(n.delta, n.lo, n.hi),
             str(n.newly_wrong), str(n.newly_right), f"{n.mcnemar_p_holm:.3g}",
             ("▼ worse" if (n.delta or 0) < 0 else "▲ better") if n.significant else ""]
            for n in r.nodes]
    return headers, rows


def measure_rows(r: RunDiff) -> tuple[list[str], list[list[str]]]:
    """Escalation and per-episode measures: A, B and B − A with its CI."""
    headers = ["measure", "A", "B", "B − A (95% CI)", "what it means"]
    rows = []
    for key, x in r.escalation.items():
        rows.append([DIFF_LABELS[key], _pct(x.a), _pct(x.b), _pts(x.delta, x.lo, x.hi),
                     DIFF_MEANINGS[key]])
    for key, x in r.per_episode.items():
        rel = "" if x.a in (None, 0) or x.delta is None else f" ({100 * x.delta / x.a:+.0f}%)"
        rows.append([DIFF_LABELS[key], _num(x.a), _num(x.b),
                     _num(x.delta, x.lo, x.hi, signed=True) + rel, DIFF_MEANINGS[key]])
    return headers, rows


def case_rows(cases: list[PairedCase]) -> tuple[list[str], list[list[str]]]:
    headers = ["scenario", "task", "seed", "trial", "first error", "show"]
    rows = [[c.scenario, c.task, str(c.seed), str(c.trial),
             "–" if c.first_error_node is None else
             f"step {c.first_error_step} at {c.first_error_node}",
             f"trialrun show {c.failed_episode}"] for c in cases]
    return headers, rows
