"""The agent protocol: what trialrun evaluates.

An agent receives observations and the tools on offer and returns one decision at a time,
each at a named node of its workflow graph. Agents are async because real ones wait on model
APIs; scripted agents just return. Agents draw randomness only from `ctx.rng` (seeded per
episode), so a run is reproducible.
"""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from trialrun.trajectory import Decision, Observation, ToolResult, ToolSpec
from trialrun.waits import reset_unless_declared


class AgentOptions(BaseModel):
    """Base of every agent's options model (`agent.params` in YAML): unknown keys refused.

    Validators may read `info.context["world"]` (the world class the scenario names) to check
    options against it, e.g. node names; the loader passes it."""

    model_config = ConfigDict(extra="forbid")


class NodeMapOptions(AgentOptions):
    """Options of agents whose decisions do not name their node themselves (an LLM, an
    external process): one rule names them, the same for every such agent."""

    node_map: dict[str, str] = Field(
        default_factory=dict, description="tool name -> node; the keys ask_human and finish "
        "name those decisions' nodes (default: ask_human, finish)")
    reply_node: str = Field("reply", description="node of a message without a tool call")

    def node_of(self, kind: str, tool: str | None = None) -> str:
        """The node of a decision: `node_map[tool]` for a tool call ("" when unmapped: the
        loop then uses the scenario's `node_map`, else the tool's name), `reply_node` for a
        message, `node_map[kind]` or the kind itself for ask_human and finish."""
        if kind == "tool_call":
            return self.node_map.get(tool or "", "")
        if kind == "message":
            return self.reply_node
        return self.node_map.get(kind) or kind


# What an agent is told when a reviewer denied its call (the episode did not run it).
DENIED = "Denied: a human reviewer did not approve this call, so it did not run."


def result_text(result: ToolResult | None) -> str:
    """A tool's result as an agent reads it: the output (JSON unless it is text), or
    `Error: ...`. The openai agent's replay keys hold this text: change it and recorded
    conversations no longer match."""
    if result is None:
        return ""
    if not result.ok:
        return f"Error: {result.error or 'the call failed'}"
    out = result.output
    if isinstance(out, str):
        return out
    return json.dumps(out, ensure_ascii=False, default=str)


class AgentError(Exception):
    """An infrastructure fault in the agent (model API down, 429, process died).

    The runner retries the episode and records it as an error of the run, never as the
    agent's mistake. Raise it for faults outside the agent's control; a subclass that would
    fail again however often it is tried sets `retryable = False`.
    """

    retryable: bool = True


class AgentContext(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    instruction: str
    tools: list[ToolSpec]
    task: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    rng: random.Random = Field(default_factory=random.Random, exclude=True)


class Feedback(BaseModel):
    """What happened to the agent's last decision."""

    decision: Decision
    # What actually ran, when a human took over the step and did something else.
    executed: Decision | None = None
    result: ToolResult | None = None
    denied: bool = False  # a human denied it at a checkpoint
    human_answer: str | None = None  # the reply to an ask_human


class Agent(ABC):
    """Base class of every agent under test.

    The loop calls `start` once, then `decide` for each step and `feedback` with what became
    of that decision, then `close`. `options` is the scenario's `agent.params`, validated by
    the class's `Options` model when the scenario loads. Raise `AgentError` for faults outside
    the agent's control (a model API down): they are infrastructure errors, retried and never
    scored. A decision that is wrong or malformed is the agent's own, graded, never raised.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[AgentOptions]] = AgentOptions
    # The nodes this agent can decide at, when it knows them (scripted agents, graphs);
    # `trialrun validate` warns about graders on nodes no step can reach. None: unknown.
    nodes: ClassVar[frozenset[str] | None] = None
    # Whether its coroutines may wait on something outside this process (a model API, a
    # subprocess). An episode in which nothing waits is timed per step, not by a timer (see
    # `Episode.run`); say False only for an agent that never awaits anything that suspends.
    # A subclass that writes its coroutines anew waits unless it says otherwise.
    waits: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        reset_unless_declared(cls, ("start", "decide", "feedback", "adopt", "close",
                                    "running"))

    def __init__(self, options: AgentOptions | dict[str, Any] | None = None) -> None:
        if not isinstance(options, self.Options):
            options = self.Options.model_validate(options or {})
        self.options: Any = options

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        self.ctx = ctx
        self.observation = first

    @abstractmethod
    async def decide(self, obs: Observation) -> Decision:
        """Choose the next decision given the latest observation."""

    async def feedback(self, fb: Feedback) -> None:  # noqa: B027 - optional hook
        """Told the result of the last decision (tool output, denial, human answer)."""

    async def adopt(self, decision: Decision, obs: Observation) -> None:
        """Take a recorded decision as this agent's own (a fork replays the record up to its
        step, then this agent goes on). The default decides and discards the result, so a
        seeded agent draws its randomness as in the recording; agents with a conversation
        (LLMs) put the recorded turn into it instead, with no model call."""
        await self.decide(obs)

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def running(self, ctx: AgentContext, first: Observation
                ) -> AbstractAsyncContextManager[None]:
        """The agent's life in one episode: `start`, the steps, then `close` whatever ended
        it. Agents that run their own loop beside the episode's (`SelfDrivingAgent`) keep
        their task here, so it never outlives the episode (override with an
        `asynccontextmanager`)."""
        return _Life(self, ctx, first)


class _Life:
    """`Agent.running`'s default: a plain context manager (an `asynccontextmanager`'s
    generator costs more than a step of an in-process episode)."""

    __slots__ = ("agent", "ctx", "first")

    def __init__(self, agent: Agent, ctx: AgentContext, first: Observation) -> None:
        self.agent, self.ctx, self.first = agent, ctx, first

    async def __aenter__(self) -> None:
        await self.agent.start(self.ctx, self.first)

    async def __aexit__(self, *exc: object) -> None:
        await self.agent.close()
