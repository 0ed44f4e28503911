"""A run, read from the store into flat numpy arrays: the analysis' only input.

Reading columns straight into arrays (no ORM objects) keeps 100,000-episode runs analysable in
seconds; every analysis module works on `RunData` and never touches the store itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

    @property
    def scored(self) -> np.ndarray:
        """Episodes that count in metrics: everything but infrastructure errors and
        episodes paused for a reviewer (they are not over)."""
        return (self.end_reason != "error") & (self.end_reason != "paused")

    def first_fail_idx(self) -> np.ndarray:
        """Per episode, the step index of its first error (`EpisodeResult.first_error`, stored
        once when the episode is saved); a large number when it has none."""
        return self.first_error_step


_NONE = np.iinfo(np.int64).max
_EPISODE_COLS = ["id", "scenario", "task", "seed", "trial", "agent", "policy", "end_reason",
                 "success", "n_steps", "wall_ms", "sim_time", "cost", "tokens", "reviews",
                 "asks", "first_error_node", "first_error_step", "ambiguous", "user_fault",
                 "human_seconds"]
_STEP_COLS = ["episode_id", "idx", "node", "kind", "passed", "help_needed", "reviewed",
              "approved", "confidence", "sim_time", "wall_us", "irreversible"]


def load_run(store: Store, run_id: str) -> RunData:
    """A stored run as arrays: two columnar reads through the store (the only code that
    speaks SQL), then vectorised conversion."""
    run = store.get_run(run_id)
    e = store.episode_columns(run.id, _EPISODE_COLS)
    s = store.step_columns(run.id, _STEP_COLS)
    pos = {eid: i for i, eid in enumerate(e["id"])}
    nodes = sorted(set(s["node"]))
    code = {n: i for i, n in enumerate(nodes)}
    ask, err, agents = scenario_facts(store.scenario_sources(run.id))

    def tri(values: list) -> np.ndarray:
        return np.array([-1 if v is None else int(v) for v in values], dtype=np.int8)

    return RunData(
        run_id=run.id,
        ep_id=np.array(e["id"], dtype=object), scenario=np.array(e["scenario"], dtype=object),
        task=np.array(e["task"], dtype=object), seed=np.array(e["seed"], dtype=np.int64),
        trial=np.array(e["trial"], dtype=np.int64), agent=np.array(e["agent"], dtype=object),
        end_reason=np.array(e["end_reason"], dtype=object),
        success=np.array([np.nan if v is None else float(v) for v in e["success"]]),
        n_steps=np.array(e["n_steps"], dtype=np.int64),
        wall_ms=np.array(e["wall_ms"], dtype=float),
        sim_time=np.array(e["sim_time"], dtype=float), cost=np.array(e["cost"], dtype=float),
        tokens=np.array(e["tokens"], dtype=np.int64),
        reviews=np.array(e["reviews"], dtype=np.int64),
        asks=np.array(e["asks"], dtype=np.int64),
        human_seconds=np.array(e["human_seconds"], dtype=float),
        first_error_node=np.array([v or "" for v in e["first_error_node"]], dtype=object),
        first_error_step=np.array([_NONE if v is None else v for v in e["first_error_step"]],
                                  dtype=np.int64),
        ambiguous=np.array(e["ambiguous"], dtype=bool),
        user_fault=np.array(e["user_fault"], dtype=bool),
        s_ep=np.array([pos[x] for x in s["episode_id"]], dtype=np.int64),
        s_idx=np.array(s["idx"], dtype=np.int64),
        s_node=np.array([code[n] for n in s["node"]], dtype=np.int64),
        s_kind=np.array(s["kind"], dtype=object), s_passed=tri(s["passed"]),
        s_help=np.array(s["help_needed"], dtype=bool),
        s_irrev=np.array(s["irreversible"], dtype=bool),
        s_reviewed=np.array(s["reviewed"], dtype=bool), s_approved=tri(s["approved"]),
        s_conf=np.array([np.nan if v is None else v for v in s["confidence"]], dtype=float),
        s_sim=np.array(s["sim_time"], dtype=float),
        s_wall_us=np.array(s["wall_us"], dtype=np.int64),
        nodes=nodes, attributions=[(a.first_error_node, a.decisive_node)
                                   for a in store.attributions(run.id)],
        policy=np.array([p or "never" for p in e["policy"]], dtype=object),
        cost_per_ask=ask, cost_per_error=err, agent_order=agents,
    )


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
