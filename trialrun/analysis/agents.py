"""Which agent should ship: several agents on the same scenarios, tasks, seeds and trials.

Agents are compared only on the episodes every one of them ran (a key is the scenario without
its `@variant` label, the task, the seed and the trial), so the comparison is paired: the
difference of each agent from the reference agent (the first one named) is a paired
difference with a bootstrap CI that resamples whole task × seed groups (the trials of one
task and seed share a world, so they are not independent), and McNemar's exact test on the
discordant episodes. The cheapest agent whose success meets a stated bar is marked; with
`bar_on_lower_bound` it is the lower end of the success CI that must meet it.
"""

from __future__ import annotations

import hashlib

import numpy as np
from pydantic import BaseModel

from trialrun.analysis.data import RunData, group_ids, str_ranks
from trialrun.analysis.stats import bootstrap_ci, mcnemar, pass_hat_k, percentiles, wilson


class AgentResult(BaseModel):
    agent: str
    episodes: int  # scored episodes in the comparison (the keys every agent ran)
    successes: int
    success: float | None
    success_lo: float | None  # Wilson 95% CI
    success_hi: float | None
    pass_hat_k: float | None  # over the trials of each task × seed (k = the fewest trials)
    k: int
    cost_per_episode: float
    tokens_per_episode: float
    wall_ms_p50: float | None
    asks_per_episode: float
    reviews_per_episode: float
    # Paired against the reference agent (None for the reference itself).
    diff: float | None = None  # success minus the reference's, on the same episodes
    diff_lo: float | None = None  # 95% CI, bootstrap resampling whole tasks
    diff_hi: float | None = None
    mcnemar_p: float | None = None  # exact, on the discordant episodes
    meets_bar: bool | None = None
    cheapest_meeting_bar: bool = False


class AgentComparison(BaseModel):
    reference: str
    bar: float | None
    bar_on_lower_bound: bool
    keys: int  # (scenario, task, seed, trial) every agent ran
    rows: list[AgentResult]


def _base(scenario: str) -> str:
    return scenario.rsplit("@", 1)[0]


def agent_comparison(d: RunData, bar: float | None = None,
                     bar_on_lower_bound: bool = False) -> AgentComparison | None:
    """The agents of a run side by side, or None when the run has one agent."""
    seen = set(d.agent.tolist())
    # In the order the run's scenarios name them; the first is the reference.
    agents = [a for a in d.agent_order if a in seen] + sorted(seen - set(d.agent_order))
    if len(agents) < 2:
        return None
    # The comparison key (scenario without its variant, task, seed, trial) as one group id,
    # groups in the order of the keys' text "scenario␟task␟seed␟trial".
    sc_codes, sc_names = d.codes("scenario")
    bases = sorted({_base(s) for s in sc_names})
    base = np.array([bases.index(_base(s)) for s in sc_names] or [0])[sc_codes]
    task, seed = d.codes("task")[0], str_ranks(d.seed)
    key, _ = group_ids(base, task, seed, str_ranks(d.trial))
    scored = d.scored
    agent_codes, agent_names = d.codes("agent")
    # per agent, its episode of each key (the last one, as a dict keyed by key would keep)
    per_agent = {}
    for a in agents:
        rows = np.flatnonzero((agent_codes == agent_names.index(a)) & scored)
        of_key = np.full(int(key.max()) + 1 if len(key) else 0, -1, dtype=np.int64)
        np.maximum.at(of_key, key[rows], rows)
        per_agent[a] = of_key
    common = np.flatnonzero(np.all([v >= 0 for v in per_agent.values()], axis=0))
    if not len(common):
        return None
    ref = agents[0]
    ref_idx = per_agent[ref][common]
    # the bootstrap's clusters (scenario, task, seed: `cluster_of`), numbered in text order
    cluster, _ = group_ids(base, task, seed)
    rows = []
    for a in agents:
        idx = per_agent[a][common]
        s = d.success[idx]
        n, k = len(idx), int(np.nansum(s))
        lo, hi = wilson(k, n)
        row = AgentResult(
            agent=a, episodes=n, successes=k, success=k / n, success_lo=lo, success_hi=hi,
            k=0, pass_hat_k=None,
            cost_per_episode=float(d.cost[idx].mean()),
            tokens_per_episode=float(d.tokens[idx].mean()),
            wall_ms_p50=percentiles(d.wall_ms[idx].tolist(), (50,)).get(50),
            asks_per_episode=float(d.asks[idx].mean()),
            reviews_per_episode=float(d.reviews[idx].mean()))
        row.k, row.pass_hat_k = _pass_hat_k(d, idx, cluster)
        if a != ref:
            _paired(d, ref_idx, idx, cluster[ref_idx], row)
        rows.append(row)
    if bar is not None:
        for r in rows:
            r.meets_bar = (r.success_lo if bar_on_lower_bound else r.success) >= bar
        meeting = [r for r in rows if r.meets_bar]
        if meeting:
            min(meeting, key=lambda r: (r.cost_per_episode, -r.success)).cheapest_meeting_bar \
                = True
    return AgentComparison(reference=ref, bar=bar, bar_on_lower_bound=bar_on_lower_bound,
                           keys=len(common), rows=rows)


def cluster_of(key: str) -> str:
    """The bootstrap's cluster of a comparison key: its scenario, task and seed."""
    return key.rsplit("\x1f", 1)[0]


def _pass_hat_k(d: RunData, idx: np.ndarray, cluster: np.ndarray) -> tuple[int, float | None]:
    """pass^k over the trials of each (scenario without variant, task, seed) in `idx`."""
    _, group = np.unique(cluster[idx], return_inverse=True)
    n = np.bincount(group.ravel())
    c = np.bincount(group.ravel(), weights=d.success[idx]).astype(np.int64)
    k = int(n.min())
    if k < 2:
        return k, None
    return k, float(np.mean([pass_hat_k(int(a), int(b), k) for a, b in zip(n, c, strict=True)]))


def _paired(d: RunData, ref_idx: np.ndarray, idx: np.ndarray, tasks: np.ndarray,
            row: AgentResult) -> None:
    a, b = d.success[ref_idx], d.success[idx]
    row.diff = float(b.mean() - a.mean())
    row.mcnemar_p = mcnemar(int(((a == 1) & (b == 0)).sum()),
                            int(((a == 0) & (b == 1)).sum())).p_exact
    # One row of sums per task: (episodes, reference successes, this agent's successes).
    names, inv = np.unique(tasks, return_inverse=True)
    clusters = np.zeros((len(names), 3))
    np.add.at(clusters, inv, np.column_stack([np.ones_like(a), a, b]))
    if len(names) < 2:
        return
    # The seed comes from the data, so the interval does not change from one report to the
    # next.
    seed = int.from_bytes(hashlib.blake2b(clusters.tobytes(), digest_size=8).digest(), "big")
    ci = bootstrap_ci(lambda s: (s[..., 2] - s[..., 1]) / s[..., 0], clusters, n_boot=4000,
                      seed=seed)
    row.diff_lo, row.diff_hi = ci.lo, ci.hi


# --- one table for every rendering (terminal, HTML) -----------------------------------------
def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def agent_rows(a: AgentComparison) -> tuple[list[str], list[list[str]]]:
    """The agents side by side: headers and rows, as every report prints them."""
    headers = ["agent", "episodes", "success (95% CI)", "pass^k", "cost/ep", "p50 ms/ep",
               "asks/ep", "vs reference (95% CI)", "McNemar p", "ships"]
    rows = []
    for r in a.rows:
        diff = "reference" if r.diff is None else (
            f"{100 * r.diff:+.1f} pts" + ("" if r.diff_lo is None else
                                         f" [{100 * r.diff_lo:+.1f}, {100 * r.diff_hi:+.1f}]"))
        rows.append([r.agent, str(r.episodes),
                     f"{_pct(r.success)} [{100 * r.success_lo:.1f}, {100 * r.success_hi:.1f}]",
                     "–" if r.pass_hat_k is None else f"{r.pass_hat_k:.3f} (k={r.k})",
                     f"{r.cost_per_episode:.4f}",
                     "–" if r.wall_ms_p50 is None else f"{r.wall_ms_p50:.1f}",
                     f"{r.asks_per_episode:.2f}", diff,
                     "–" if r.mcnemar_p is None else f"{r.mcnemar_p:.3g}",
                     "★" if r.cheapest_meeting_bar else ("✓" if r.meets_bar else "")])
    return headers, rows


def agent_note(a: AgentComparison) -> str:
    bar = "" if a.bar is None else (
        f" The bar: success{' (lower end of its CI)' if a.bar_on_lower_bound else ''} "
        f"≥ {_pct(a.bar)}.")
    return (f"On the {a.keys} task × seed × trial episode(s) every agent ran; differences "
            f"are paired on them, against the reference, {a.reference}; ✓ reaches the bar, ★ is "
            f"the cheapest that does.{bar}")
