"""The world protocol: a simulated environment with state, a seeded RNG and a simulated clock.

A world offers tools, executes tool calls, snapshots and restores its state, and knows the
ground truth its node graders need (what a sound decision is at this point). Worlds never read
the wall clock or the global RNG: same seed and same decisions give the same trajectory.

Register a world with `@register_world("name")`, by import path (`pkg.module:Class`) in the
scenario, or through the `trialrun.worlds` entry point group.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import random
from abc import ABC, abstractmethod
from importlib.metadata import entry_points
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from trialrun.trajectory import Decision, Observation, ToolResult, ToolSpec


class ToolError(Exception):
    """The agent called a tool wrongly (unknown tool, bad arguments, not allowed now).

    Raised by `World.execute`; the episode loop turns it into a failed tool result and a
    graded agent error, never a crash.
    """


def call_tool_method(world: World, tool: str, args: dict[str, Any],
                     seconds: dict[str, float]) -> ToolResult:
    """Dispatch a tool call to the world's `_t_<tool>` method, advancing the simulated clock
    by the tool's duration; unknown tools and bad arguments are the agent's errors."""
    handler = getattr(world, f"_t_{tool}", None)
    if handler is None or tool not in seconds:
        raise ToolError(f"unknown tool {tool!r}; tools: {', '.join(sorted(seconds))}")
    world.clock.advance(seconds[tool])
    try:
        out = handler(**args)
    except TypeError as e:
        raise ToolError(f"{tool}: bad arguments: {e}") from None
    return ToolResult(ok=True, output=out)


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

    correct: bool
    reason: str = ""
    help_needed: bool = False  # asking a human here was the right call


class World(ABC):
    """Base class for every simulated world.

    Subclasses set `name` and implement the abstract methods. `config` is the scenario's
    `world:` block (minus `type`), `task` one entry of its `tasks:`.
    """

    name: ClassVar[str] = ""
    # Pydantic models (extra="forbid") for the scenario's `world:` options and for each task's
    # world-specific fields; the loader validates against them and reports file:line errors.
    Config: ClassVar[type[BaseModel] | None] = None
    Task: ClassVar[type[BaseModel] | None] = None
    # True for worlds whose tools block on I/O (containers): the loop runs them in a thread.
    blocking: ClassVar[bool] = False
    # True for worlds whose side effects happen in a sandbox (`world.sandbox`), so that
    # `trialrun run --sandbox docker|local` can switch where they run.
    uses_sandbox: ClassVar[bool] = False
    # Simulated seconds a step costs when a tool does not say otherwise.
    sim_seconds_per_step: ClassVar[float] = 1.0

    def __init__(self, config: dict[str, Any], task: dict[str, Any], seed: int) -> None:
        self.config = config
        self.task = task
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = SimClock()
        # Parsed once here from the models the class declares; subclasses annotate
        # `cfg: MyConfig` and `spec: MyTask` for their own typed access.
        self.cfg: Any = self.Config.model_validate(config) if self.Config else None
        self.spec: Any = self.Task.model_validate(
            {k: task[k] for k in self.Task.model_fields if k in task}) if self.Task else None

    # --- lifecycle -------------------------------------------------------------------
    @abstractmethod
    def reset(self) -> Observation:
        """Build the initial state from the seed and return the first observation."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (containers, files). Called once, also after errors."""

    # --- tools -----------------------------------------------------------------------
    @abstractmethod
    def tools(self) -> list[ToolSpec]:
        """The tools the agent may call now."""

    @abstractmethod
    def execute(self, node: str, tool: str, args: dict[str, Any]) -> ToolResult:
        """Run one tool call; raise ToolError for an agent's bad call."""

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
    def check_task(cls, config: dict[str, Any], task: dict[str, Any]) -> list[str]:
        """Problems with a task beyond its fields' types, reported by the loader at the
        task's line. By default an in-process world is built and reset once (seed 0): a
        ValueError there is a bad task, better said at load time than retried at run time."""
        if cls.blocking:
            return []
        try:
            world = cls(config, task, 0)
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
    def tool_names(cls, config: dict[str, Any]) -> set[str] | None:
        """Names of all tools this world can offer (for validating scenarios); None: dynamic."""
        return None


_WORLDS: dict[str, type[World]] = {}
_BUILTIN_MODULES = {
    "retail": "trialrun.sandbox.worlds.retail",
    "vending": "trialrun.sandbox.worlds.vending",
    "calendar": "trialrun.sandbox.worlds.calendar",
    "workflow": "trialrun.sandbox.worlds.workflow",
    "codebase": "trialrun.sandbox.worlds.codebase",
}


def register_world(name: str):
    def deco(cls: type[World]) -> type[World]:
        cls.name = name
        _WORLDS[name] = cls
        return cls

    return deco


def load_class(path: str, kind: str) -> type:
    """Import `pkg.module:Class` (or `pkg.module.Class`)."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise LookupError(f"{kind} {path!r}: expected a name or an import path 'pkg.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise LookupError(f"{kind} {path!r}: cannot import module {module_name!r} ({e})") from e
    try:
        return getattr(module, attr)
    except AttributeError:
        raise LookupError(f"{kind} {path!r}: module {module_name!r} has no {attr!r}") from None


def known_worlds() -> list[str]:
    names = set(_BUILTIN_MODULES) | set(_WORLDS)
    names |= {ep.name for ep in entry_points(group="trialrun.worlds")}
    return sorted(names)


def world_class(name: str) -> type[World]:
    """Resolve a world by registered name, built-in name, entry point or import path."""
    if name in _WORLDS:
        return _WORLDS[name]
    if name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
        if name in _WORLDS:
            return _WORLDS[name]
    for ep in entry_points(group="trialrun.worlds"):
        if ep.name == name:
            cls = ep.load()
            _WORLDS[name] = cls
            return cls
    if ":" in name or "." in name:
        cls = load_class(name, "world")
        if not (isinstance(cls, type) and issubclass(cls, World)):
            raise LookupError(f"world {name!r} is not a subclass of trialrun.sandbox.world.World")
        return cls
    raise LookupError(f"unknown world {name!r}; known: {', '.join(known_worlds())}")
