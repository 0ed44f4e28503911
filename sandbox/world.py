"""The world protocol: a simulated environment with state, a seeded RNG and a simulated clock.

A world offers tools, executes tool calls, snapshots and restores its state, and knows the
ground truth its node graders need (what a sound decision is at this point). Worlds never read
the wall clock or the global RNG: same seed and same decisions give the same trajectory.

A world is one folder (`sandbox/worlds/retail/`): the world class, its policy/judge, its task
generator and its scripted reference agent side by side. Register it with
`@register("world", "name")`, name it by import path (`pkg.module:Class`) in the scenario, or
publish it through the `trialrun.worlds` entry point group. Check it with
`trialrun check-world pkg.module:Class`.
"""

from __future__ import annotations

import hashlib
import json
import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from trialrun.registry import register
from trialrun.sandbox.tools import DeclaredTool, ToolError, collect_tools, tool
from trialrun.trajectory import Decision, Observation, ToolResult, ToolSpec

__all__ = ["SimClock", "ToolError", "Verdict", "World", "WorldStatus", "register", "tool"]


class SimClock:
    """Simulated time in seconds since the episode began. Worlds advance it explicitly."""

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WorldStatus(BaseModel):
    """Whether the world has ended the episode on its own, and the numbers it reports."""

    done: bool = False
    reason: str = ""  # e.g. "goal reached", "bankrupt"
    metrics: dict[str, float] = Field(default_factory=dict)


class Verdict(BaseModel):
    """The world's ground truth about one decision, for node graders and escalation."""

    # A value, never changed once given: worlds may hand out one instance many times.
    model_config = ConfigDict(frozen=True)

    correct: bool
    reason: str = ""
    help_needed: bool = False  # asking a human here was the right call


class World(ABC):
    """Base class for every simulated world.

    A subclass implements `reset` and `state`, declares its tools with `@tool` methods, and
    overrides the ground-truth hooks it can answer (`judge`, `reference_decision`, `status`,
    `outcome`). `options` is the scenario's `world:` block (minus `type`) validated by
    `Options`; `task` is one entry of its `tasks:` (its world-specific fields validated by
    `Task`, parsed into `self.spec`). `seed` seeds `self.rng`, the only randomness a world may
    use; `self.clock` is the only time it may read.
    """

    name: ClassVar[str] = ""
    # Pydantic models (extra="forbid") for the scenario's `world:` options and for each task's
    # world-specific fields; the loader validates against them and reports file:line errors.
    Options: ClassVar[type[BaseModel] | None] = None
    Task: ClassVar[type[BaseModel] | None] = None
    # Tools declared with @tool, collected once per class (name -> DeclaredTool).
    declared_tools: ClassVar[dict[str, DeclaredTool]] = {}
    # True for worlds whose tools block on I/O (containers): the loop runs them in a thread.
    blocking: ClassVar[bool] = False
    # True for worlds whose side effects happen in a sandbox (`world.sandbox`), so that
    # `trialrun run --sandbox docker|local` can switch where they run.
    uses_sandbox: ClassVar[bool] = False
    # Simulated seconds a message to the user or an ask_human costs (a tool costs its own
    # `@tool(seconds=...)`; reviews and human answers add the human's seconds).
    sim_seconds_per_step: ClassVar[float] = 1.0
    # The keys `outcome()` returns, so `trialrun validate` can check outcome expressions
    # (None: unknown, not checked).
    outcome_keys: ClassVar[frozenset[str] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.declared_tools = collect_tools(cls)
        clash = [n for n in cls.declared_tools if n in _WORLD_API]
        if clash:
            raise TypeError(f"{cls.__name__}: tool name(s) {', '.join(clash)} shadow World "
                            "methods; name the method otherwise and pass @tool(name=...)")

    def __init__(self, options: BaseModel | dict[str, Any] | None, task: dict[str, Any],
                 seed: int) -> None:
        self.task = task
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = SimClock()
        # Parsed once from the models the class declares (the plan passes them validated);
        # subclasses annotate `options: MyOptions` and `spec: MyTask` for typed access.
        if self.Options is not None and not isinstance(options, self.Options):
            options = self.Options.model_validate(options or {})
        self.options: Any = options
        self.spec: Any = self.Task.model_validate(
            {k: task[k] for k in self.Task.model_fields if k in task}) if self.Task else None

    # --- lifecycle -------------------------------------------------------------------
    @abstractmethod
    def reset(self) -> Observation:
        """Build the initial state from the seed and return the first observation."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (containers, files). Called once, also after errors."""

    # --- tools -----------------------------------------------------------------------
    def tools(self) -> list[ToolSpec]:
        """The tools the agent may call, read once after `reset` (default: every `@tool` the
        class declares). A call a tool refuses in the current state raises ToolError."""
        return [t.spec for t in self.declared_tools.values()]

    def execute(self, node: str, tool: str, args: dict[str, Any]) -> ToolResult:
        """Run one tool call; raise ToolError for an agent's bad call. The default dispatches
        to the `@tool` method (`call_tool`); override to add checks around it."""
        return self.call_tool(tool, args)

    def call_tool(self, tool: str, args: dict[str, Any]) -> ToolResult:
        """Validate the arguments against the tool's signature, advance the simulated clock
        by its `seconds`, run it, and wrap what it returns in a ToolResult."""
        declared = self.declared_tools.get(tool)
        if declared is None:
            raise ToolError(f"unknown tool {tool!r}; tools: {', '.join(self.declared_tools)}")
        parsed = declared.validate(args)
        self.clock.advance(declared.seconds)
        out = getattr(self, declared.method)(**parsed)
        return out if isinstance(out, ToolResult) else ToolResult(ok=True, output=out)

    def observe(self) -> Observation:
        """The observation after a step (default: nothing new)."""
        return Observation()

    def on_message(self, text: str) -> Observation:
        """The agent spoke to the user without a tool; worlds with users answer here."""
        return Observation()

    def human_answer(self, question: str) -> str:
        """What a well-informed human says when the agent asks for help (ask_human)."""
        return ""

    # --- ground truth ----------------------------------------------------------------
    def judge(self, decision: Decision) -> Verdict | None:
        """Is this decision sound, given the state before it takes effect? None: unknown."""
        return None

    def reference_decision(self, decision: Decision) -> Decision | None:
        """The sound decision in place of this one, for a human who takes over a step."""
        return None

    def status(self) -> WorldStatus:
        """Whether the world ended the episode (goal reached, bankrupt...)."""
        return WorldStatus()

    def outcome(self) -> dict[str, Any]:
        """Facts the outcome graders read: final state, messages, score inputs."""
        return {"state": self.state()}

    # --- state -----------------------------------------------------------------------
    @abstractmethod
    def state(self) -> dict[str, Any]:
        """The world's state as plain JSON-able data (what snapshots and digests cover)."""

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": json.loads(json.dumps(self.state())),
            "rng": self.rng.getstate(),
            "clock": self.clock.now,
        }

    def restore(self, snap: dict[str, Any]) -> None:
        self.load_state(snap["state"])
        self.rng.setstate(snap["rng"])
        self.clock.now = snap["clock"]

    def load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError(f"world {self.name!r} cannot restore state")

    def digest(self) -> str:
        """A short hash of the state: equal digests, equal worlds (replay checks these)."""
        blob = json.dumps(self.state(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()

    # --- authoring helpers -----------------------------------------------------------
    @classmethod
    def check_task(cls, options: BaseModel, task: dict[str, Any]) -> list[str]:
        """Problems with a task beyond its fields' types, reported by the loader at the
        task's line. By default an in-process world is built and reset once (seed 0): a
        ValueError there is a bad task, better said at load time than retried at run time."""
        if cls.blocking:
            return []
        try:
            world = cls(options, task, 0)
            world.reset()
            world.close()
        except ValueError as e:
            return [str(e)]
        return []

    @classmethod
    def generate_tasks(
        cls, n: int, seed: int, difficulty: str = "medium", **params: Any
    ) -> list[dict[str, Any]]:
        """Task variants from a seed, for `tasks: {generate: N, seed: S}`."""
        raise NotImplementedError(f"world {cls.name!r} does not generate tasks")

    @classmethod
    def tool_names(cls, options: BaseModel | None) -> set[str] | None:
        """Names of every tool this world can offer, for validating scenarios (default: the
        declared tools); None when the set is only known at run time."""
        return set(cls.declared_tools) or None


# Names a tool method must not take: they are the World protocol itself.
_WORLD_API = frozenset(n for n in dir(World) if not n.startswith("_")) - {"name"}
