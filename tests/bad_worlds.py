"""Worlds for tests/test_check_world.py: one small world that passes every check, and
variants of it that each break one rule of the World contract on purpose.

Named by import path in the tests (`tests.bad_worlds:WallClockWorld`), never registered.
"""

from __future__ import annotations

import random
import time
from datetime import datetime  # bound at import: the checker must patch this name too
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from trialrun.agents.base import Agent
from trialrun.sandbox.world import ToolError, Verdict, World, WorldStatus, tool
from trialrun.trajectory import Decision, Observation, ToolResult, ToolSpec


class CounterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step_max: int = 3


class CounterTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: int = 5


class CounterWorld(World):
    """Count up to the task's target: the smallest world that passes every check."""

    name = "counter"
    Options = CounterOptions
    Task = CounterTask
    options: CounterOptions
    spec: CounterTask

    def reset(self) -> Observation:
        self.count = 0
        self.log: list[int] = []
        self.noise = self.rng.randint(0, 1000)  # seeded: differs between seeds only
        return Observation(text=f"Count to {self.spec.target}.",
                           data={"target": self.spec.target, "noise": self.noise})

    @tool(seconds=5)
    def add(self, n: int) -> dict[str, int]:
        """Add to the count.

        Args:
            n: how much to add, 1 to step_max
        """
        if not 1 <= n <= self.options.step_max:
            raise ToolError(f"n must be 1 to {self.options.step_max}")
        self.count += n
        self.log.append(n)
        return {"count": self.count}

    @tool(seconds=1)
    def peek(self) -> int:
        """Read the count."""
        return self.count

    def judge(self, d: Decision) -> Verdict | None:
        if d.kind == "tool_call" and d.tool == "add":
            ok = self.count + int(d.args.get("n", 0)) <= self.spec.target
            return Verdict(correct=ok, reason="stays within the target" if ok else "overshoots")
        if d.kind == "finish":
            return Verdict(correct=self.count == self.spec.target, reason="at the target?")
        return None

    def reference_decision(self, d: Decision) -> Decision | None:
        need = self.spec.target - self.count
        if d.kind == "tool_call" and d.tool == "add" and need >= 1:
            return Decision(kind="tool_call", node=d.node, tool="add",
                            args={"n": min(need, self.options.step_max)})
        return None

    def status(self) -> WorldStatus:
        return WorldStatus(metrics={"count": float(self.count)})

    def outcome(self) -> dict[str, Any]:
        return {"state": self.state(), "success": self.count == self.spec.target}

    def state(self) -> dict[str, Any]:
        return {"count": self.count, "log": list(self.log), "noise": self.noise}

    def load_state(self, state: dict[str, Any]) -> None:
        self.count, self.log, self.noise = state["count"], list(state["log"]), state["noise"]

    @classmethod
    def generate_tasks(cls, n: int, seed: int, difficulty: str = "medium",
                       **params: Any) -> list[dict[str, Any]]:
        rng = random.Random(seed)
        return [{"id": f"count-{i}", "target": rng.randint(4, 9)} for i in range(n)]


# --- determinism ---------------------------------------------------------------------------
class WallClockWorld(CounterWorld):
    """Reads the wall clock into its state (`time.time()`)."""

    name = "bad-wall-clock"

    def reset(self) -> Observation:
        obs = super().reset()
        self.opened_at = time.time()
        return obs

    def state(self) -> dict[str, Any]:
        return {**super().state(), "opened_at": self.opened_at}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.opened_at = state["opened_at"]


class DatetimeWorld(CounterWorld):
    """Stamps each addition with `datetime.now()`, a name bound by `from datetime import`."""

    name = "bad-datetime"

    def execute(self, node: str, tool: str, args: dict[str, Any]) -> ToolResult:
        result = super().execute(node, tool, args)
        if tool == "add" and result.ok:
            result.output["at"] = datetime.now().isoformat()
        return result


class GlobalRandomWorld(CounterWorld):
    """Draws from the global `random` module instead of self.rng."""

    name = "bad-global-random"

    def reset(self) -> Observation:
        obs = super().reset()
        self.noise = random.randint(0, 10**9)
        return obs


class NumpyGlobalWorld(CounterWorld):
    """Draws from numpy's global RNG (`numpy.random.randint`) instead of self.rng."""

    name = "bad-numpy-random"

    def reset(self) -> Observation:
        import numpy

        obs = super().reset()
        self.noise = int(numpy.random.randint(0, 10**9))
        return obs


class UnseededWorld(CounterWorld):
    """A fresh unseeded RNG per world: differs even with the same seed."""

    name = "bad-unseeded"

    def reset(self) -> Observation:
        obs = super().reset()
        self.noise = random.Random().randint(0, 10**9)
        return obs


# --- snapshot / restore --------------------------------------------------------------------
class LeakyRestoreWorld(CounterWorld):
    """load_state forgets the log: restore does not give the snapshot's state back."""

    name = "bad-restore"

    def load_state(self, state: dict[str, Any]) -> None:
        self.count, self.noise = state["count"], state["noise"]


class HiddenStateWorld(CounterWorld):
    """Keeps a call counter outside state(): a restored world answers differently."""

    name = "bad-hidden-state"

    def reset(self) -> Observation:
        self.peeks = 0
        return super().reset()

    def peek(self) -> int:  # not a new @tool: overrides what the `peek` tool calls
        self.peeks += 1
        return self.count * 100 + self.peeks


class NoRestoreWorld(CounterWorld):
    """Does not implement load_state (the World default raises NotImplementedError)."""

    name = "no-restore"
    load_state = World.load_state


# --- tools ---------------------------------------------------------------------------------
class BrokenSchemaWorld(CounterWorld):
    """Hand-written tool specs with a bad type, a missing required name, a duplicate, an
    invalid name and no description."""

    name = "bad-schema"

    def tools(self) -> list[ToolSpec]:
        return [
            ToolSpec(name="add", description="Add to the count.", parameters={
                "type": "object", "properties": {"n": {"type": "int"}}, "required": ["n", "m"]}),
            ToolSpec(name="add", description="Add again.",
                     parameters={"type": "object", "properties": {}}),
            ToolSpec(name="peek now", description="", parameters={"type": "object"}),
        ]


class CrashingToolWorld(CounterWorld):
    """A lookup tool that lets KeyError escape instead of raising ToolError."""

    name = "bad-crash"
    table: ClassVar[dict[str, int]] = {"a": 1}

    @tool()
    def lookup(self, key: str) -> int:
        """Look a key up.

        Args:
            key: the key
        """
        return self.table[key]


# --- models, names, ground truth -------------------------------------------------------------
class LooseOptions(BaseModel):  # no extra="forbid": a misspelled option passes silently
    step_max: int = 3


class Limits(BaseModel):  # nested, and loose too
    most: int = 9


class LooseTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: int = 5
    limits: Limits = Limits()


class LooseModelsWorld(CounterWorld):
    name = "bad-models"
    Options = LooseOptions
    Task = LooseTask


class UnnamedWorld(CounterWorld):
    name = ""


class SilentWorld(CounterWorld):
    """No ground truth at all: judge and reference_decision always say None."""

    name = "silent"

    def judge(self, d: Decision) -> Verdict | None:
        return None

    def reference_decision(self, d: Decision) -> Decision | None:
        return None


class MeddlingJudgeWorld(CounterWorld):
    """judge() changes the state it should only read."""

    name = "bad-judge"

    def judge(self, d: Decision) -> Verdict | None:
        self.log.append(0)
        return super().judge(d)


class WrongTypesWorld(CounterWorld):
    """status() and outcome() return the wrong types; state() is not JSON."""

    name = "bad-types"

    def status(self) -> Any:
        return {"done": False}

    def outcome(self) -> Any:
        return [self.count]

    def state(self) -> dict[str, Any]:
        return {**super().state(), "seen": {self.count}}


class NoTasksWorld(CounterWorld):
    """Does not generate tasks: the checker needs a scenario file."""

    name = "no-tasks"
    generate_tasks = World.__dict__["generate_tasks"]  # the base's: NotImplementedError


class NotAWorld:
    name = "not-a-world"


class FinishAgent(Agent):
    """Finishes at once (scenario files in the tests need an agent)."""

    async def decide(self, obs: Observation) -> Decision:
        return Decision(kind="finish", node="finish", text="done")
