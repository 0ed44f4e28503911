"""A small world and agent for the validation corpus (`tests/test_validation_corpus.py`),
written the way a user would, including hooks that raise: the corpus names them by import
path (`corpus_toy:CounterWorld`), with this folder on PYTHONPATH.

- `CounterWorld`: count up to a task's `target` with `add(amount)`, then `report(text)`;
  declares its `outcome_keys`, so outcome expressions are checked too. A task's `boom` field
  makes a hook raise: `init` (the constructor), `reset`, or `reject` (a ValueError: a task the
  world rejects, the ordinary way).
- `CounterAgent`: declares the nodes it decides at (`plan`, `count`, `tell`, `finish`).
- `BrokenToolsWorld`: `tool_names()` raises. `BrokenGenerateWorld`: `generate_tasks` raises.
- `StrictOptionsWorld`: its options validator raises a KeyError (not a ValueError).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trialrun.agents.base import Agent, AgentOptions
from trialrun.sandbox.world import Verdict, World, tool
from trialrun.trajectory import Decision, Observation


class CounterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step_limit: int = Field(100, ge=1, description="the largest amount one add() may add")


class CounterTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: int = Field(ge=0, description="where to count to")
    boom: Literal["init", "reset", "reject"] | None = None


class CounterWorld(World):
    Options = CounterOptions
    Task = CounterTask
    outcome_keys: ClassVar[frozenset[str]] = frozenset({"state", "messages", "success",
                                                        "reached"})

    def __init__(self, options: Any, task: dict[str, Any], seed: int) -> None:
        super().__init__(options, task, seed)
        if self.spec.boom == "init":
            raise RuntimeError("cannot open the counter")

    def reset(self) -> Observation:
        if self.spec.boom == "reset":
            settings: dict[str, str] = {}
            return Observation(text=settings["zip"])  # a user's KeyError
        if self.spec.boom == "reject":
            raise ValueError("target must be reachable")
        self.count = 0
        self.messages: list[str] = []
        return Observation(text=f"count to {self.spec.target}", data={"target": self.spec.target})

    @tool(seconds=1)
    def add(self, amount: int) -> int:
        """Add to the counter.

        Args:
            amount: how much to add
        """
        self.count += amount
        return self.count

    @tool(seconds=1)
    def report(self, text: str) -> dict[str, bool]:
        """Tell the user.

        Args:
            text: the message
        """
        self.messages.append(text)
        return {"sent": True}

    def judge(self, decision: Decision) -> Verdict:
        return Verdict(correct=True)

    def state(self) -> dict[str, Any]:
        return {"count": self.count, "messages": self.messages}

    def outcome(self) -> dict[str, Any]:
        reached = self.count == self.spec.target
        return {"state": self.state(), "messages": self.messages, "success": reached,
                "reached": reached}

    @classmethod
    def generate_tasks(cls, n: int, seed: int, difficulty: str = "medium",
                       spread: int = 10) -> list[dict[str, Any]]:
        return [{"id": f"t{i}", "target": (seed + i) % spread} for i in range(n)]


class BrokenToolsWorld(CounterWorld):
    @classmethod
    def tool_names(cls, options: BaseModel | None) -> set[str] | None:
        raise RuntimeError("tool list not ready")


class BrokenGenerateWorld(CounterWorld):
    @classmethod
    def generate_tasks(cls, n: int, seed: int, difficulty: str = "medium",
                       **params: Any) -> list[dict[str, Any]]:
        table: dict[str, int] = {}
        return [{"id": "x", "target": table[difficulty]}]


class StrictOptions(CounterOptions):
    @model_validator(mode="after")
    def _lookup(self) -> StrictOptions:
        if self.step_limit == 13:
            raise KeyError("unlucky")
        return self


class StrictOptionsWorld(CounterWorld):
    Options = StrictOptions


class CounterAgentOptions(AgentOptions):
    error_rate: float = Field(0.0, ge=0, le=1)


class CounterAgent(Agent):
    Options = CounterAgentOptions
    nodes: ClassVar[frozenset[str]] = frozenset({"plan", "count", "tell", "finish"})

    async def decide(self, obs: Observation) -> Decision:
        return Decision(kind="finish", node="finish")


class ExpectedStateWorld(CounterWorld):
    """States the expected final state (for state_equals) and declares its state's keys, so
    a state_equals path is checked when the scenario loads."""

    outcome_keys: ClassVar[frozenset[str]] = CounterWorld.outcome_keys | {"expected_state"}
    state_keys: ClassVar[frozenset[str]] = frozenset({"count", "messages"})

    def outcome(self) -> dict[str, Any]:
        return {**super().outcome(), "expected_state": {"count": self.spec.target}}
