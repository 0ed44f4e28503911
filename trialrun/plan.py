"""The run plan: what to run, decided once.

`RunPlan.build` applies the command line's overrides once, builds each scenario's graders once
(the loader has already looked up every plugin class and validated its options), and
enumerates the episodes lazily: scenario × task × seed × trial. Executors run a plan; they
never decide what to run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from trialrun.agents.base import Agent
from trialrun.checkpoints import CheckpointPolicy
from trialrun.graders.base import Grader
from trialrun.humans import Human
from trialrun.registry import resolve
from trialrun.sandbox.world import World
from trialrun.scenarios.loader import LoadedScenario
from trialrun.scenarios.schema import Scenario
from trialrun.trajectory import EpisodeKey, EpisodeResult


def stable_rng(*parts: object) -> random.Random:
    # str seeds hash with SHA-512 in random.Random: stable across processes and platforms.
    return random.Random(":".join(map(str, parts)))


@dataclass
class ScenarioPlan:
    """What every episode of one scenario shares, built once: graders, classes, tasks."""

    loaded: LoadedScenario
    node_graders: dict[str, list[Grader]]
    outcome_graders: list[Grader]
    world_grader: Grader
    tasks: dict[str, dict[str, Any]]
    irreversible_nodes: frozenset[str]
    reversible_nodes: frozenset[str]  # nodes the scenario marks `irreversible: false`
    policy_label: str
    graders_wait: bool  # a grader may wait outside this process (`Grader.waits`)
    # Per node, the graders that run at it (the world's first) and whether one reads the
    # state: looked up once per plan, not per step.
    _graders_at: dict[str, tuple[tuple[Grader, ...], bool]] = field(
        default_factory=dict, init=False, repr=False)

    @classmethod
    def build(cls, loaded: LoadedScenario) -> ScenarioPlan:
        sc = loaded.scenario
        world_grader = grader_of("world")
        outcome = [grader_of(g.type, g.options, g.name) for g in sc.graders]
        node_graders = {node: [grader_of(g.type, g.options, g.name) for g in spec.graders]
                        for node, spec in sc.nodes.items()}
        return cls(
            loaded=loaded, node_graders=node_graders,
            outcome_graders=outcome or [world_grader], world_grader=world_grader,
            graders_wait=any(g.waits for g in [world_grader, *outcome, *(
                g for gs in node_graders.values() for g in gs)]),
            tasks={t["id"]: t for t in loaded.tasks},
            irreversible_nodes=frozenset(n for n, s in sc.nodes.items() if s.irreversible),
            reversible_nodes=frozenset(n for n, s in sc.nodes.items()
                                       if s.irreversible is False),
            policy_label=loaded.policy_cls.label(loaded.policy_options))

    @property
    def scenario(self) -> Scenario:
        return self.loaded.scenario

    @property
    def world_cls(self) -> type[World]:
        return self.loaded.world_cls

    @property
    def agent_cls(self) -> type[Agent]:
        return self.loaded.agent_cls

    def graders_at(self, node: str) -> tuple[tuple[Grader, ...], bool]:
        """The graders of a step at `node`, the world's first, and whether one reads the
        world's state."""
        at = self._graders_at.get(node)
        if at is None:
            graders = self.node_graders.get(node, ())
            at = self._graders_at[node] = ((self.world_grader, *graders),
                                           any(g.needs_state for g in graders))
        return at

    def new_world(self, key: EpisodeKey) -> World:
        return self.loaded.world_cls(self.loaded.world_options, self.tasks[key.task], key.seed)

    def new_agent(self) -> Agent:
        return self.loaded.agent_cls(self.loaded.agent_options)

    def new_human(self, key: EpisodeKey, salt: str = "human") -> Human:
        return self.loaded.human_cls(self.loaded.human_options,
                                     stable_rng(salt, key.seed, key.trial))

    def prefix_for(self, key: EpisodeKey) -> Any:
        """The recorded steps this episode replays first (`start_from`), or None."""
        return next((p for p in self.scenario.start_from if (p.task, p.seed, p.trial)
                     == (key.task, key.seed, key.trial)), None)

    def new_policy(self) -> CheckpointPolicy:
        return self.loaded.policy_cls(self.loaded.policy_options)

    def keys(self) -> Iterator[EpisodeKey]:
        """Every episode, one at a time: nothing here holds the whole plan."""
        sc = self.scenario
        seeds = range(sc.seeds) if isinstance(sc.seeds, int) else sc.seeds
        for task in self.loaded.tasks:
            for seed in seeds:
                for trial in range(sc.trials):
                    yield EpisodeKey(scenario=sc.name, task=task["id"], seed=seed, trial=trial)

    @property
    def planned(self) -> int:
        """Arithmetic: a plan of a billion episodes costs nothing to count."""
        sc = self.scenario
        seeds = sc.seeds if isinstance(sc.seeds, int) else len(sc.seeds)
        return len(self.loaded.tasks) * seeds * sc.trials


def grader_of(name: str, options: dict[str, Any] | None = None,
              label: str | None = None) -> Grader:
    """A grader by name, its options validated (the loader has already checked them)."""
    klass = resolve("grader", name)
    return klass(klass.Options.model_validate(options or {}), label)


@dataclass
class RunPlan:
    """Every episode of a run, in a fixed order, and the overrides that shaped it (stored
    with the run, so that a resume plans exactly the same episodes)."""

    scenarios: dict[str, ScenarioPlan]
    overrides: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    # Paused episodes that go on (`run --resume` once their review is answered), by key:
    # their record is the prefix each replays before deciding live again.
    resume_from: dict[str, EpisodeResult] = field(default_factory=dict)

    @classmethod
    def build(cls, loaded: list[LoadedScenario], overrides: dict[str, Any] | None = None,
              limit: int | None = None) -> RunPlan:
        overrides = {k: v for k, v in (overrides or {}).items() if v}
        return cls({ls.name: ScenarioPlan.build(apply_overrides(ls, overrides))
                    for ls in loaded}, overrides, limit)

    @classmethod
    def from_sources(cls, sources: dict[str, str], overrides: dict[str, Any] | None = None,
                     limit: int | None = None, origin: str = "<run>") -> RunPlan:
        """The same plan rebuilt from its scenarios' text: how a resume, or a worker in
        another process or on another node, gets exactly the driver's plan."""
        from trialrun.scenarios.loader import load_scenario_source

        return cls.build([load_scenario_source(src, f"{origin}/{name}")
                          for name, src in sources.items()], overrides, limit)

    def keys(self) -> Iterator[EpisodeKey]:
        n = 0
        for plan in self.scenarios.values():
            for key in plan.keys():
                if self.limit is not None and n >= self.limit:
                    return
                n += 1
                yield key

    @property
    def planned(self) -> int:
        total = sum(p.planned for p in self.scenarios.values())
        return total if self.limit is None else min(total, self.limit)

    def sources(self) -> dict[str, str]:
        return {name: p.loaded.source for name, p in self.scenarios.items()}


def apply_overrides(ls: LoadedScenario, overrides: dict[str, Any]) -> LoadedScenario:
    """`--trials`, `--seeds` and `--sandbox` on top of a loaded scenario, in place."""
    sc = ls.scenario
    backend = overrides.get("sandbox")
    if backend and ls.world_cls.uses_sandbox:
        current = sc.world.sandbox
        spec: dict | str = backend
        if isinstance(current, dict):
            # image, dockerfile and pool mean nothing to the local backend
            keep = {k: v for k, v in current.items()
                    if backend == "docker" or k not in ("image", "dockerfile", "pool")}
            spec = {**keep, "backend": backend}
        sc = sc.model_copy(update={"world": sc.world.model_copy(update={"sandbox": spec})})
        ls.world_options = ls.world_cls.Options.model_validate(sc.world.options)
    counts = {k: overrides[k] for k in ("trials", "seeds") if k in overrides}
    if counts:
        from trialrun.defaults import MAX_SEEDS, MAX_TRIALS
        from trialrun.errors import BadInput

        for k, top in (("trials", MAX_TRIALS), ("seeds", MAX_SEEDS)):
            v = counts.get(k)
            if v is not None and not (isinstance(v, int) and 1 <= v <= top):
                raise BadInput(f"--{k} {v!r}: expected a whole number from 1 to {top:,}")
        sc = sc.model_copy(update=counts)
    ls.scenario = sc
    return ls
