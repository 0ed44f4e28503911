"""Checkpoint policies side by side, and where to put checkpoints.

A policy comparison runs the same scenarios and seeds under several checkpoint policies in
one run (each variant's scenario is named `NAME@POLICY`), and reports success, human reviews,
human minutes and cost per policy, with the success-vs-human-cost frontier.

The optimiser reads measured per-node accuracies and places per-decision checkpoints: a
review at node n with `on_deny: retry` turns its accuracy p into the approve/deny-with-redo
value g = p·s / (p·s + (1−p)(1−r)) (ANALYSIS.md §2, model B, one-step segments) at 1/a
reviews per decision. Nodes whose decisions are irreversible are forced; the rest are chosen
by gain under the budget (exact: the objective is a sum over nodes).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel

from trialrun.analysis.data import RunData, group_ids
from trialrun.analysis.placement import ApproveDeny
from trialrun.analysis.stats import wilson


class PolicyResult(BaseModel):
    policy: str
    episodes: int
    success: float | None
    success_lo: float | None
    success_hi: float | None
    reviews_per_episode: float
    human_minutes_per_episode: float
    aborted: int
    on_frontier: bool = False


def policy_table(d: RunData) -> list[PolicyResult]:
    """One row per checkpoint policy (the stored `policy` column), over the episodes every
    policy ran, for runs that compare more than one; empty otherwise."""
    labels = d.policy if d.policy is not None else np.full(len(d.ep_id), "never", dtype=object)
    if len(set(labels)) < 2:
        return []
    # Policies are compared on the tasks, seeds and trials every one of them ran (what
    # compare-policies runs); a suite whose scenarios merely use different policies on
    # different tasks is not a comparison.
    keys, _ = group_ids(d.codes("task")[0], d.seed, d.trial)
    label_set = set(labels.tolist())
    ran = [np.bincount(keys[labels == label], minlength=int(keys.max()) + 1) > 0
           for label in label_set]
    common = np.all(ran, axis=0)
    if not common.any():
        return []
    shared = common[keys]
    out = []
    for label in sorted(label_set, key=str):
        m = (labels == label) & d.scored & shared
        n = int(m.sum())
        k = int(np.nansum(d.success[m]))
        lo, hi = wilson(k, n) if n else (None, None)
        out.append(PolicyResult(
            policy=label, episodes=n, success=k / n if n else None, success_lo=lo,
            success_hi=hi, reviews_per_episode=float(d.reviews[m].mean()) if n else 0.0,
            human_minutes_per_episode=float(d.human_seconds[m].mean() / 60) if n else 0.0,
            aborted=int((d.end_reason[m] == "aborted").sum())))
    # Pareto frontier: no other policy has at least the success for at most the human time.
    for p in out:
        p.on_frontier = p.success is not None and not any(
            q is not p and q.success is not None and q.success >= p.success
            and q.human_minutes_per_episode <= p.human_minutes_per_episode
            and (q.success > p.success or q.human_minutes_per_episode
                 < p.human_minutes_per_episode) for q in out)
    return out


class NodeCheckpoint(BaseModel):
    node: str
    accuracy: float  # p, given a clean prefix
    visits_per_episode: float
    with_review: float  # g
    reviews_per_episode: float
    forced: bool  # irreversible: always reviewed


class PlacementPlan(BaseModel):
    nodes: list[str]
    budget: int
    baseline_success: float
    predicted_success: float
    expected_reviews_per_episode: float
    expected_human_minutes_per_episode: float
    candidates: list[NodeCheckpoint]
    frontier: list[tuple[int, list[str], float, float]]  # (budget, nodes, success, reviews)


def node_accuracies(d: RunData) -> dict[str, tuple[float, float]]:
    """Per node: (accuracy given a clean prefix, graded visits per scored episode)."""
    from trialrun.analysis.summary import node_stats

    stats, _ = node_stats(d)
    return {n.node: (n.accuracy.rate, n.visits_per_episode) for n in stats
            if n.accuracy.rate is not None}


def place_checkpoints(d: RunData, budget: int, recall: float, specificity: float,
                      seconds_per_review: float, irreversible: set[str] | None = None
                      ) -> PlacementPlan:
    """Choose up to `budget` nodes to review so as to maximise predicted success."""
    irreversible = irreversible or set()
    acc = node_accuracies(d)
    model = ApproveDeny(recall=recall, specificity=specificity)
    cands = []
    for node, (p, v) in acc.items():
        seg = model.segment(p, 1)
        cands.append(NodeCheckpoint(node=node, accuracy=p, visits_per_episode=v,
                                    with_review=seg.success,
                                    reviews_per_episode=seg.reviews * v,
                                    forced=node in irreversible))
    forced = [c for c in cands if c.forced]
    if len(forced) > budget:
        raise ValueError(f"{len(forced)} irreversible node(s) must be reviewed "
                         f"({', '.join(c.node for c in forced)}), more than the budget {budget}")

    def gain(c: NodeCheckpoint) -> float:
        if c.accuracy <= 0:
            return math.inf
        return c.visits_per_episode * (math.log(max(c.with_review, 1e-12))
                                       - math.log(c.accuracy))

    scored = d.scored
    baseline = float(np.nanmean(d.success[scored])) if scored.any() else 0.0
    ranked = sorted((c for c in cands if not c.forced), key=gain, reverse=True)

    def plan(b: int) -> tuple[list[NodeCheckpoint], float, float]:
        chosen = forced + [c for c in ranked[: max(0, b - len(forced))] if gain(c) > 0]
        factor = math.exp(sum(gain(c) for c in chosen))
        return chosen, min(1.0, baseline * factor), sum(c.reviews_per_episode for c in chosen)

    chosen, predicted, reviews = plan(budget)
    frontier = []
    for b in range(len(forced), len(cands) + 1):
        ch, pr, rv = plan(b)
        frontier.append((b, [c.node for c in ch], pr, rv))
    return PlacementPlan(
        nodes=[c.node for c in chosen], budget=budget, baseline_success=baseline,
        predicted_success=predicted, expected_reviews_per_episode=reviews,
        expected_human_minutes_per_episode=reviews * seconds_per_review / 60,
        candidates=sorted(cands, key=gain, reverse=True), frontier=frontier)
