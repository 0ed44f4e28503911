"""Agents that run their own loop: a LangGraph graph, an MCP client, a framework's agent.

The episode pulls one decision at a time; these agents push, calling a tool whenever their
own loop chooses. `SelfDrivingAgent` inverts one into the other, once for all of them: the
agent's `drive(port)` runs in its own task beside the episode, and each call it makes on the
`Port` (a tool, a question to a human, a message, finishing) arrives as the episode's next
decision, goes through the checkpoint policy and the human, is executed by the world and
graded like any other, and what became of it (the result, a denial, the human's answer) is
what the call returns. When `drive` returns, the agent has finished; when the episode ends
first (finished, a budget, an abort), the agent's task is cancelled.

An exception escaping `drive` is the agent's own crash: the episode ends there, as a
`finish` decision whose text says what was raised, and is scored like any other unfinished
work. A fault outside the agent is an infrastructure error, retried and never scored:
`AgentError`, and what the usual clients raise when a model endpoint fails (httpx transport
errors, 429 and 5xx statuses, the OpenAI/Anthropic SDKs' connection, timeout, rate-limit
and server errors), also as the cause of what the agent raised.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from trialrun.agents.base import (
    DENIED,
    Agent,
    AgentContext,
    AgentError,
    Feedback,
    NodeMapOptions,
    result_text,
)
from trialrun.trajectory import Decision, Observation, ToolResult, ToolSpec

__all__ = ["Port", "SelfDrivingAgent", "SelfDrivingOptions", "outcome_text"]



class CannotAdopt(AgentError):
    """A recorded decision was handed to an agent that makes its own (a fork past step 0)."""

    retryable = False


class SelfDrivingOptions(NodeMapOptions):
    """Options every self-driving agent shares: the one rule that names its decisions'
    nodes (`node_map`, `reply_node`)."""


@dataclass
class _Pending:
    """A decision waiting for the episode, and the slot its feedback comes back in."""

    decision: Decision | AgentError
    done: anyio.Event = field(default_factory=anyio.Event)
    feedback: Feedback | None = None


def outcome_text(fb: Feedback) -> str:
    """What became of a call, in words an agent reads: the output, the error, a denial, or
    what a human did instead."""
    if fb.denied:
        return DENIED
    said = result_text(fb.result or ToolResult(ok=True))
    if fb.executed is not None:
        return f"A human reviewer took over and ran {fb.executed.label()} instead: {said}"
    return said


# Exceptions of the usual model SDKs that mean the endpoint, not the agent, failed.
_SDK_FAULTS = frozenset({"APIConnectionError", "APITimeoutError", "RateLimitError",
                         "InternalServerError", "ServiceUnavailableError", "OverloadedError"})


def _model_fault(e: BaseException, depth: int = 0) -> str | None:
    """Why `e` (raised by an agent's own code) is a fault of its model endpoint — a
    connection that failed, a timeout, 429 or 5xx — or None: the agent's own crash."""
    import httpx

    if depth > 8:
        return None
    if isinstance(e, BaseExceptionGroup):
        faults = [_model_fault(x, depth + 1) for x in e.exceptions]
        return next((f for f in faults if f), None)
    if isinstance(e, httpx.TransportError):
        return f"{type(e).__name__}: {e}"
    if isinstance(e, httpx.HTTPStatusError) and (e.response.status_code == 429
                                                 or e.response.status_code >= 500):
        return f"HTTP {e.response.status_code} from {e.request.url}"
    if any(c.__name__ in _SDK_FAULTS for c in type(e).__mro__):
        return f"{type(e).__name__}: {e}"
    cause = e.__cause__ or e.__context__
    return _model_fault(cause, depth + 1) if cause is not None and depth < 8 else None


class Port:
    """The world as a self-driving agent sees it: every call is one decision of the
    episode, and returns once the episode has reviewed, executed and graded it."""

    def __init__(self, agent: SelfDrivingAgent, ctx: AgentContext, first: Observation,
                 send: MemoryObjectSendStream[_Pending]) -> None:
        self._agent = agent
        self._send = send
        self.ctx = ctx
        self.first = first
        self.tools: list[ToolSpec] = ctx.tools

    @property
    def observation(self) -> Observation:
        """The world's latest observation (the first one until a step has run)."""
        return self._agent.observation

    def prompt(self) -> str:
        """The task as one text: the instruction, then the first observation's text."""
        parts = [self.ctx.instruction, self.first.text]
        return "\n\n".join(p for p in dict.fromkeys(parts) if p)

    async def submit(self, decision: Decision) -> Feedback:
        """Send a decision to the episode; returns its feedback. A `finish` never returns:
        the episode ends and this task is cancelled."""
        pending = _Pending(decision)
        await self._send.send(pending)
        await pending.done.wait()
        assert pending.feedback is not None
        return pending.feedback

    async def call(self, tool: str, args: dict[str, Any], *, node: str = "",
                   approval: str | None = None, text: str | None = None) -> Feedback:
        """Call a world tool. `node` "" names it by the agent's `node_map` (then the
        scenario's, then the tool's name); `approval` says the agent asks a human to approve
        it first (always reviewed)."""
        node = node or self._agent.options.node_of("tool_call", tool)
        return await self.submit(Decision(kind="tool_call", node=node, tool=tool, args=args,
                                          approval=approval, text=text))

    async def ask_human(self, question: str, *, node: str = "") -> str:
        """Ask a human for help; returns the answer."""
        node = node or self._agent.options.node_of("ask_human")
        fb = await self.submit(Decision(kind="ask_human", node=node, text=question))
        return fb.human_answer or ""

    async def say(self, text: str, *, node: str = "") -> str:
        """Send a message (to the user of the world); returns what the world answers."""
        node = node or self._agent.options.node_of("message")
        fb = await self.submit(Decision(kind="message", node=node, text=text))
        if fb.denied:
            return DENIED
        return result_text(fb.result) if fb.result and fb.result.output is not None else ""

    async def finish(self, text: str = "", *, node: str = "") -> None:
        """End the episode: the agent is done. Does not return."""
        node = node or self._agent.options.node_of("finish")
        await self.submit(Decision(kind="finish", node=node, text=text))


class SelfDrivingAgent(Agent):
    """Base of agents that run their own loop (see the module's docstring).

    Subclasses implement `drive(port)`: run the agent, calling `port.call`, `port.ask_human`,
    `port.say`, and return the agent's final answer (or call `port.finish`)."""

    Options = SelfDrivingOptions

    @abstractmethod
    async def drive(self, port: Port) -> str | None:
        """Run the agent to its end; return its final words (None: nothing to say)."""

    @asynccontextmanager
    async def running(self, ctx: AgentContext, first: Observation) -> AsyncIterator[None]:
        await self.start(ctx, first)
        send, self._inbox = anyio.create_memory_object_stream[_Pending](math.inf)
        self._current: _Pending | None = None
        self.port = Port(self, ctx, first, send)
        failed: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._drive, send)
                try:
                    yield
                except Exception as e:  # noqa: BLE001 - re-raised below, not in a group
                    failed = e
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self._inbox.close()
            await self.close()
        if failed is not None:  # the episode's own error (InfraError...), as it was raised
            raise failed

    async def _drive(self, send: MemoryObjectSendStream[_Pending]) -> None:
        """The agent's task. Nothing escapes it but cancellation: its end is a decision."""
        finish_node = self.options.node_of("finish")
        try:
            words = await self.drive(self.port)
            last: Decision | AgentError = Decision(kind="finish", node=finish_node,
                                                   text=words or "")
        except AgentError as e:
            last = e
        except Exception as e:  # noqa: BLE001 - the agent's own crash ends its episode
            fault = _model_fault(e)
            last = AgentError(f"the agent's model endpoint failed: {fault}") if fault else \
                Decision(kind="finish", node=finish_node,
                         text=f"the agent raised {type(e).__name__}: {e}"[:2000])
        await send.send(_Pending(last))

    async def adopt(self, decision: Decision, obs: Observation) -> None:
        raise CannotAdopt(f"{self.name or type(self).__name__} runs its own loop and cannot "
                          "take over a recorded prefix: fork it at step 0")

    async def decide(self, obs: Observation) -> Decision:
        self.observation = obs
        inbox: MemoryObjectReceiveStream[_Pending] = self._inbox
        self._current = await inbox.receive()
        if isinstance(self._current.decision, AgentError):
            raise self._current.decision
        return self._current.decision

    async def feedback(self, fb: Feedback) -> None:
        current, self._current = self._current, None
        if current is not None:
            current.feedback = fb
            current.done.set()
