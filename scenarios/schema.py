"""The scenario schema: what a scenario YAML file may say, as pydantic models.

`trialrun schema` prints `Scenario.model_json_schema()` so editors can autocomplete and check
scenarios. World-specific blocks (`world:` options, each task's fields) and grader options
are validated by the world's and grader's own models at load time (see `loader.py`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trialrun.defaults import MAX_SEEDS, MAX_TRIALS
from trialrun.trajectory import Decision

SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1  # a seed is stored as a signed 64-bit integer


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GraderSpec(BaseModel):
    """A grader by `type`; its other keys are that grader's options."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="grader name (world, assert, args_match, reply_contains, "
                      "state_equals) or pkg.mod:Class")
    name: str | None = Field(None, description="label in reports (default: the type)")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class NodeSpec(Strict):
    description: str = ""
    graders: list[GraderSpec] = Field(default_factory=list)
    irreversible: bool | None = Field(
        None, description="override whether decisions here are irreversible"
    )


class AgentSpec(Strict):
    type: str = Field(description="scripted:retail, openai, or an import path pkg.mod:Class")
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(None, description="label in reports (default: the type)")

    @property
    def label(self) -> str:
        return self.name or self.type


class WorldSpec(BaseModel):
    """`type` picks the world; the other keys are that world's options."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="retail, vending, calendar, workflow, codebase or pkg.mod:Class")
    sandbox: dict[str, Any] | str | None = Field(
        None, description="where side effects happen: docker, local, or "
        "{backend: local|docker, image, limits, setup, files}"
    )

    @property
    def options(self) -> dict[str, Any]:
        opts = dict(self.model_extra or {})
        if self.sandbox is not None:
            opts["sandbox"] = self.sandbox
        return opts


class UserSpec(BaseModel):
    """A simulated user's structured instructions (tau-bench style)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", description="why the user makes contact")
    knows: dict[str, Any] = Field(default_factory=dict, description="facts the user can give")
    does_not_know: list[str] = Field(default_factory=list)
    persona: str = ""
    misremembers: dict[str, Any] = Field(
        default_factory=dict, description="facts the user gets wrong: {fact: wrong value}")
    error_rate: float = Field(0.0, ge=0, le=1, description="P(a fact is told wrongly)")


class TaskSpec(BaseModel):
    """One task; world-specific fields are checked by the world's task model."""

    model_config = ConfigDict(extra="allow")

    id: str
    instruction: str = ""
    ambiguous: bool = Field(
        False, description="ambiguous by construction: asking the human is the right call"
    )
    user: UserSpec | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class GenerateTasks(Strict):
    generate: int = Field(gt=0, le=100_000, description="how many task variants")
    seed: int = 0
    difficulty: Literal["easy", "medium", "hard"] = "medium"
    params: dict[str, Any] = Field(default_factory=dict)


class HumanSpec(BaseModel):
    """Who answers at checkpoints and ask_human: a human by `type` (simulated, scripted,
    oracle, or pkg.mod:Class); the other keys are that human's options (`recall`,
    `false_deny_rate`, `seconds_per_review`, ... for `simulated`), checked at load time."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("simulated", description="simulated, scripted, oracle or pkg.mod:Class")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class CheckpointSpec(BaseModel):
    """A checkpoint policy by name (never, always, every_n, before_irreversible,
    below_confidence, budget, nodes, or pkg.mod:Class); keys other than those below are the
    policy's options (`n`, `threshold`, `budget`, `nodes`), checked at load time."""

    model_config = ConfigDict(extra="allow")

    policy: str = Field("never", description="never | always | every_n | before_irreversible "
                        "| below_confidence | budget | nodes | pkg.mod:Class")
    on_deny: Literal["retry", "takeover", "abort"] = Field(
        "retry",
        description="retry: the agent is told and decides again; takeover: the human does "
        "the step right; abort: the episode ends",
    )
    max_retries: int = Field(2, ge=0, description="retry: denials before the episode aborts")
    human: HumanSpec = Field(default_factory=HumanSpec)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EscalationSpec(Strict):
    cost_per_ask: float = Field(1.0, ge=0, description="c_h: the price of one ask_human")
    cost_per_error: float = Field(10.0, ge=0, description="c_e: the price of an unasked error")


class Budgets(Strict):
    max_steps: int = Field(50, ge=1)
    max_sim_time: float | None = Field(None, gt=0, description="simulated seconds")
    max_wall_time: float | None = Field(300.0, gt=0, description="wall seconds per episode")
    max_cost: float | None = Field(None, gt=0, description="model spend per episode")
    success_if_truncated: bool = Field(
        False, description="count an episode that ran out of a budget as a success when its "
        "outcome graders pass (e.g. a business that must survive a set time); by default a "
        "truncated episode is never a success")


class ProvenanceEpisode(Strict):
    """One failed episode behind a regression case."""

    episode: str = Field(description="the episode id (`trialrun show EPISODE`)")
    trial: int
    first_error: dict[str, Any] = Field(
        default_factory=dict, description="where it first went wrong: step, node, reason")


class Provenance(Strict):
    """Where a regression case came from (written by `trialrun regress`); informational:
    running the case does not read it."""

    run: str = Field(description="the run the failure was found in")
    scenario: str = Field(description="the scenario's name in that run")
    task: str
    seed: int
    episodes: list[ProvenanceEpisode] = Field(default_factory=list)


class RecordedAnswer(Strict):
    approved: bool
    seconds: float = 0.0
    cost: float = 0.0
    reviewer: str = "recorded"


class RecordedPrefix(Strict):
    """Steps one episode replays from a record before its agent decides: a regression case
    that starts where the agent went wrong (`trialrun regress --from-first-error`)."""

    task: str
    seed: int
    trial: int = Field(ge=0)
    decisions: list[Decision] = Field(description="the recorded decisions, in order; the "
                                      "agent adopts them as its own")
    answers: list[RecordedAnswer] = Field(
        default_factory=list, description="the checkpoint answers given in those steps")


class Scenario(Strict):
    """A scenario file: the world, the task(s), the agent, graders, checkpoints, trials."""

    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    world: WorldSpec
    tasks: list[TaskSpec] | GenerateTasks = Field(
        description="a list of tasks, or {generate: N, seed: S} for task variants the world "
        "generates")
    agent: AgentSpec
    nodes: dict[str, NodeSpec] = Field(default_factory=dict)
    node_map: dict[str, str] = Field(
        default_factory=dict,
        description="tool name -> node name, for agents that do not name nodes",
    )
    graders: list[GraderSpec] = Field(default_factory=list, description="outcome graders")
    checkpoints: CheckpointSpec = Field(default_factory=CheckpointSpec)
    escalation: EscalationSpec = Field(default_factory=EscalationSpec)
    trials: int = Field(1, ge=1, le=MAX_TRIALS)
    seeds: list[int] | int = Field(1, description="a list of seeds, or how many (0..n-1)")
    budgets: Budgets = Field(default_factory=Budgets)
    provenance: Provenance | None = Field(
        None, description="where a regression case came from (run, episodes, first errors); "
        "written by `trialrun regress`, not read when the case runs")
    start_from: list[RecordedPrefix] = Field(
        default_factory=list, description="recorded steps an episode (task, seed, trial) "
        "replays before its agent decides; written by `trialrun regress --from-first-error`")

    @field_validator("start_from")
    @classmethod
    def _prefixes(cls, v: list[RecordedPrefix], info: Any) -> list[RecordedPrefix]:
        trials, seeds, tasks = (info.data.get(k) for k in ("trials", "seeds", "tasks"))
        known = {t.id for t in tasks} if isinstance(tasks, list) else None
        seed_set = set(range(seeds)) if isinstance(seeds, int) else set(seeds or [])
        for p in v:
            if known is not None and p.task not in known:
                raise ValueError(f"start_from: no task {p.task!r} (tasks: "
                                 f"{', '.join(sorted(known))})")
            if seeds is not None and p.seed not in seed_set:
                raise ValueError(f"start_from: seed {p.seed} is not one of the scenario's seeds")
            if trials is not None and p.trial >= trials:
                raise ValueError(f"start_from: trial {p.trial} but the scenario has {trials} "
                                 "trial(s)")
        return v

    @field_validator("trials", "seeds", mode="before")
    @classmethod
    def _no_booleans(cls, v: Any, info: Any) -> Any:
        """YAML reads `true`/`yes` as a boolean, which pydantic would take as 1."""
        what = "a number of trials" if info.field_name == "trials" else \
            "a list of seeds, or how many"
        if isinstance(v, bool):
            raise ValueError(f"{info.field_name}: expected {what}, not the boolean "
                             f"{str(v).lower()} (YAML reads true, yes and on as booleans)")
        if isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, bool):
                    raise ValueError(f"{info.field_name}[{i}]: expected an integer seed, not "
                                     f"{str(item).lower()}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | int) -> list[int] | int:
        if isinstance(v, int) and v < 1:
            raise ValueError("seeds must be a positive count or a list of integers")
        if isinstance(v, int) and v > MAX_SEEDS:
            raise ValueError(f"seeds: {v:,} seeds is more than the {MAX_SEEDS:,} allowed")
        if isinstance(v, list):
            if not v:
                raise ValueError("seeds must not be empty")
            if len(v) > MAX_SEEDS:
                raise ValueError(f"seeds: {len(v):,} seeds is more than the {MAX_SEEDS:,} "
                                 "allowed")
            seen: dict[int, int] = {}
            for i, seed in enumerate(v):
                if not SEED_MIN <= seed <= SEED_MAX:
                    raise ValueError(f"seeds[{i}]: seed {seed} does not fit a 64-bit integer "
                                     f"({SEED_MIN} to {SEED_MAX})")
                if seed in seen:
                    raise ValueError(f"seeds[{i}]: duplicate seed {seed} (also "
                                     f"seeds[{seen[seed]}]): each seed runs once per trial")
                seen[seed] = i
        return v

    @field_validator("tasks")
    @classmethod
    def _unique_task_ids(cls, v: list[TaskSpec] | GenerateTasks) -> list[TaskSpec] | GenerateTasks:
        if isinstance(v, list):
            if not v:
                raise ValueError("tasks must not be empty")
            seen: dict[str, int] = {}
            for i, t in enumerate(v):
                if t.id in seen:
                    raise ValueError(f"tasks[{i}].id: duplicate task id {t.id!r} (also "
                                     f"tasks[{seen[t.id]}])")
                seen[t.id] = i
        return v

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)
