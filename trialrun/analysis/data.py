"""A run, read from the store into flat numpy arrays: the analysis' only input.

Reading columns straight into arrays (no ORM objects) keeps 100,000-episode runs analysable in
seconds; every analysis module works on `RunData` and never touches the store itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
    first_error_step: np.ndarray  # int, int64 max when no graded error
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
    policy: np.ndarray | None = None  # str per episode: the checkpoint policy's label
    # The scenarios' escalation prices (`escalation:` in YAML): c_h and c_e.
    cost_per_ask: float = 1.0
    cost_per_error: float = 10.0
    # The agents' labels in the order the run's scenarios name them (the first is the
    # reference of an agent comparison).
    agent_order: list[str] = field(default_factory=list)
    _codes: dict[str, tuple[np.ndarray, list[Any]]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def scored(self) -> np.ndarray:
        """Episodes that count in metrics: everything but infrastructure errors and
        episodes paused for a reviewer (they are not over)."""
        return (self.end_reason != "error") & (self.end_reason != "paused")

    def first_fail_idx(self) -> np.ndarray:
        """Per episode, the step index of its first error (`EpisodeResult.first_error`, stored
        once when the episode is saved); a large number when it has none."""
        return self.first_error_step

    def codes(self, name: str) -> tuple[np.ndarray, list[Any]]:
        """A text column (an object array field) as integer codes into its distinct values,
        sorted: grouping and comparing by code costs a numpy pass, not a Python comparison
        per row. Cached: the fields are not changed after loading."""
        if name not in self._codes:
            values = getattr(self, name)
            cats = sorted(set(values.tolist()), key=lambda v: (v is None, str(v)))
            index = {c: i for i, c in enumerate(cats)}
            self._codes[name] = (np.fromiter(map(index.__getitem__, values), np.int64,
                                             len(values)), cats)
        return self._codes[name]

    def is_(self, name: str, value: Any) -> np.ndarray:
        """`getattr(self, name) == value`, by code."""
        codes, cats = self.codes(name)
        return codes == cats.index(value) if value in cats else np.zeros(len(codes), bool)


def group_ids(*cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by the tuple of their values in `cols` (integer arrays of one length):
    each row's group, numbered in the tuples' sorted order, and each group's first row."""
    n = len(cols[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.lexsort(cols[::-1])
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for c in cols:
        s = c[order]
        new[1:] |= s[1:] != s[:-1]
    gid = np.empty(n, dtype=np.int64)
    gid[order] = np.cumsum(new) - 1
    return gid, order[new]


def str_ranks(values: np.ndarray) -> np.ndarray:
    """Integers ranked by their decimal text ("10" before "9"): the order of keys that hold
    them as text."""
    uniq, inv = np.unique(values, return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[sorted(range(len(uniq)), key=lambda i: str(uniq[i]))] = np.arange(len(uniq))
    return rank[inv.ravel()]


_NONE = np.iinfo(np.int64).max
_EPISODE_COLS = ["id", "scenario", "task", "seed", "trial", "agent", "policy", "end_reason",
                 "success", "n_steps", "wall_ms", "sim_time", "cost", "tokens", "reviews",
                 "asks", "first_error_node", "first_error_step", "ambiguous", "user_fault",
                 "human_seconds"]
_STEP_COLS = ["idx", "node", "kind", "passed", "help_needed", "reviewed",
              "approved", "confidence", "sim_time", "wall_us", "irreversible"]


_TEXT = {"scenario": "scenario", "task": "task", "agent": "agent", "end_reason": "end_reason",
         "first_error_node": "first_error_node", "policy": "policy", "kind": "s_kind"}
_MISSING = {"first_error_node": "", "policy": "never"}  # what a NULL (or "") stands for


def load_run(store: Store, run_id: str) -> RunData:
    """A stored run as arrays, episodes in key order (scenario, task, seed, trial) and steps
    by episode then index: one columnar read per table through the store (the only code
    that speaks SQL). The key order, not the random episode ids, makes two identical runs
    analyse, and report, alike."""
    run = store.get_run(run_id)
    e, s = store.run_arrays(run.id, _EPISODE_COLS, _STEP_COLS,
                            codes=frozenset([*_TEXT, "node"]))
    ask, err, agents = scenario_facts(store.scenario_sources(run.id))
    text, codes = {}, {}
    for col, name in _TEXT.items():
        src = s if col == "kind" else e
        values = [_MISSING[col] if col in _MISSING and not v else "" if v is None else v
                  for v in src.pop(f"{col}.values")]
        cats = sorted(set(values), key=str)  # `RunData.codes`' order
        at = {v: i for i, v in enumerate(cats)}  # (a run has thousands of tasks)
        rank = np.array([at[v] for v in values] or [0], dtype=np.int64)
        c = rank[src.pop(col)]
        codes[name] = (c, cats)
        text[name] = np.array([*cats, None], dtype=object)[c]
    nodes = [v if v is not None else "" for v in s.pop("node.values")]
    node_at = {v: i for i, v in enumerate(sorted(set(nodes)))}
    node_rank = np.array([node_at[v] for v in nodes] or [0], dtype=np.int64)
    null = Store.NULL_INT
    success = e["success"].astype(float)
    success[e["success"] < 0] = np.nan
    first_step = e["first_error_step"]
    d = RunData(
        run_id=run.id, ep_id=e["id"], scenario=text["scenario"], task=text["task"],
        seed=e["seed"], trial=e["trial"], agent=text["agent"], end_reason=text["end_reason"],
        success=success, n_steps=e["n_steps"], wall_ms=e["wall_ms"], sim_time=e["sim_time"],
        cost=e["cost"], tokens=e["tokens"], reviews=e["reviews"], asks=e["asks"],
        human_seconds=e["human_seconds"], first_error_node=text["first_error_node"],
        first_error_step=np.where(first_step == null, _NONE, first_step),
        ambiguous=e["ambiguous"] == 1, user_fault=e["user_fault"] == 1,
        s_ep=s["episode"], s_idx=s["idx"], s_node=node_rank[s["node"]],
        s_kind=text["s_kind"], s_passed=s["passed"], s_help=s["help_needed"] == 1,
        s_irrev=s["irreversible"] == 1, s_reviewed=s["reviewed"] == 1,
        s_approved=s["approved"], s_conf=s["confidence"], s_sim=s["sim_time"],
        s_wall_us=s["wall_us"], nodes=sorted(set(nodes)),
        # sorted: the store gives them in no order, and ties in the report follow it
        attributions=sorted(((a.first_error_node, a.decisive_node)
                             for a in store.attributions(run.id)),
                            key=lambda x: (str(x[0]), str(x[1]))),
        policy=text["policy"], cost_per_ask=ask, cost_per_error=err, agent_order=agents,
    )
    d._codes.update(codes)  # the codes the store read: no pass over the rows to make them
    return d


def scenario_facts(sources: dict[str, str]) -> tuple[float, float, list[str]]:
    """What the analysis needs from the run's stored scenarios, read in one pass: the
    `escalation:` prices (c_h per ask, c_e per unasked error; a run mixing scenarios with
    different prices uses the highest, which the report prints) and each scenario's agent
    label (`agent.name`, else its type) in the run's order."""
    import yaml

    from trialrun.scenarios.schema import EscalationSpec

    specs, agents = [], []
    for text in sources.values():
        data = yaml.safe_load(text)
        data = data if isinstance(data, dict) else {}
        specs.append(EscalationSpec.model_validate(data.get("escalation") or {}))
        agent = data.get("agent")
        label = (agent.get("name") or agent.get("type")) if isinstance(agent, dict) else None
        if isinstance(label, str) and label not in agents:
            agents.append(label)
    specs = specs or [EscalationSpec()]
    return max(x.cost_per_ask for x in specs), max(x.cost_per_error for x in specs), agents
