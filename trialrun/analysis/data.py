"""A run, read from the store into flat numpy arrays: the analysis' only input.

Reading rows straight into arrays (no ORM objects) keeps 100,000-episode runs analysable in
seconds; every analysis module works on `RunData` and never touches the store itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import text

from trialrun.store import Store


@dataclass
class RunData:
    run_id: str
    # per episode
    ep_id: np.ndarray  # str
    scenario: np.ndarray  # str
    task: np.ndarray  # str
    seed: np.ndarray
    trial: np.ndarray
    agent: np.ndarray  # str
    end_reason: np.ndarray  # str
    success: np.ndarray  # float: 1, 0, or nan (errors)
    n_steps: np.ndarray
    wall_ms: np.ndarray
    sim_time: np.ndarray
    cost: np.ndarray
    tokens: np.ndarray
    reviews: np.ndarray
    asks: np.ndarray
    human_seconds: np.ndarray
    first_error_node: np.ndarray  # str, "" when no graded error
    ambiguous: np.ndarray  # bool
    user_fault: np.ndarray  # bool
    # per step (sorted by episode, then index)
    s_ep: np.ndarray  # index into the episode arrays
    s_idx: np.ndarray
    s_node: np.ndarray  # int code into `nodes`
    s_kind: np.ndarray  # str
    s_passed: np.ndarray  # int8: 1 passed, 0 failed, -1 not graded
    s_help: np.ndarray  # bool: help was needed here
    s_irrev: np.ndarray  # bool: the decision was irreversible
    s_reviewed: np.ndarray  # bool
    s_approved: np.ndarray  # int8: 1, 0, -1 (not reviewed)
    s_conf: np.ndarray  # float, nan when the agent gave none
    s_sim: np.ndarray
    s_wall_us: np.ndarray
    nodes: list[str]
    # (first error node, decisive error node) of failed episodes attributed by
    # counterfactual replay (`trialrun attribute`); empty until that has run.
    attributions: list[tuple[str | None, str | None]] = field(default_factory=list)

    @property
    def scored(self) -> np.ndarray:
        """Episodes that count in metrics: everything but infrastructure errors."""
        return self.end_reason != "error"

    def first_fail_idx(self) -> np.ndarray:
        """Per episode, the step index of the first failed graded step (large if none)."""
        big = np.iinfo(np.int64).max
        out = np.full(len(self.ep_id), big, dtype=np.int64)
        failed = self.s_passed == 0
        np.minimum.at(out, self.s_ep[failed], self.s_idx[failed])
        return out


def load_run(store: Store, run_id: str) -> RunData:
    run = store.get_run(run_id)
    with store.engine.connect() as c:
        eps = c.execute(text(
            "SELECT id, scenario, task, seed, trial, agent, end_reason, success, n_steps, "
            "wall_ms, sim_time, cost, tokens, reviews, asks, first_error_node, ambiguous, "
            "user_fault, human_seconds FROM episode WHERE run_id = :r ORDER BY id"),
            {"r": run.id}).all()
        steps = c.execute(text(
            "SELECT s.episode_id, s.idx, s.node, s.kind, s.passed, s.help_needed, s.reviewed, "
            "s.approved, s.confidence, s.sim_time, s.wall_us, s.irreversible FROM step s JOIN "
            "episode e ON "
            "e.id = s.episode_id WHERE e.run_id = :r ORDER BY s.episode_id, s.idx"),
            {"r": run.id}).cursor.fetchall()  # raw DBAPI rows: no Row objects for 10^6 steps
        atts = c.execute(text(
            "SELECT first_error_node, decisive_node FROM attribution WHERE run_id = :r"),
            {"r": run.id}).all()
    cols = list(zip(*eps, strict=True)) if eps else [()] * 19
    pos = {eid: i for i, eid in enumerate(cols[0])}
    scols = list(zip(*steps, strict=True)) if steps else [()] * 12
    nodes = sorted(set(scols[2]))
    code = {n: i for i, n in enumerate(nodes)}

    def tri(values: tuple) -> np.ndarray:
        return np.array([-1 if v is None else int(v) for v in values], dtype=np.int8)

    return RunData(
        run_id=run.id,
        ep_id=np.array(cols[0], dtype=object), scenario=np.array(cols[1], dtype=object),
        task=np.array(cols[2], dtype=object), seed=np.array(cols[3], dtype=np.int64),
        trial=np.array(cols[4], dtype=np.int64), agent=np.array(cols[5], dtype=object),
        end_reason=np.array(cols[6], dtype=object),
        success=np.array([np.nan if v is None else float(v) for v in cols[7]]),
        n_steps=np.array(cols[8], dtype=np.int64), wall_ms=np.array(cols[9], dtype=float),
        sim_time=np.array(cols[10], dtype=float), cost=np.array(cols[11], dtype=float),
        tokens=np.array(cols[12], dtype=np.int64), reviews=np.array(cols[13], dtype=np.int64),
        asks=np.array(cols[14], dtype=np.int64),
        human_seconds=np.array(cols[18], dtype=float),
        first_error_node=np.array([v or "" for v in cols[15]], dtype=object),
        ambiguous=np.array(cols[16], dtype=bool), user_fault=np.array(cols[17], dtype=bool),
        s_ep=np.array([pos[e] for e in scols[0]], dtype=np.int64),
        s_idx=np.array(scols[1], dtype=np.int64),
        s_node=np.array([code[n] for n in scols[2]], dtype=np.int64),
        s_kind=np.array(scols[3], dtype=object), s_passed=tri(scols[4]),
        s_help=np.array(scols[5], dtype=bool), s_irrev=np.array(scols[11], dtype=bool),
        s_reviewed=np.array(scols[6], dtype=bool),
        s_approved=tri(scols[7]),
        s_conf=np.array([np.nan if v is None else v for v in scols[8]], dtype=float),
        s_sim=np.array(scols[9], dtype=float), s_wall_us=np.array(scols[10], dtype=np.int64),
        nodes=nodes, attributions=[tuple(a) for a in atts],
    )
