"""A user's LangGraph graph, evaluated unmodified.

    agent:
      type: langgraph
      params:
        graph: my_agent.graph:build        # a compiled graph, or a factory returning one
        graph_args: {model: gpt-4o-mini}   # keyword arguments for the factory
        node_map: {refund: resolve}        # tool -> node, where the graph does not say

The world's tools are handed to the graph as LangChain tools: a factory is called as
`build(tools=[...], **graph_args)`; a compiled graph finds them in
`config["configurable"]["tools"]`. Each tool call the graph makes is one decision of the
episode (`SelfDrivingAgent`), reviewed, executed and graded, and the graph's tool receives
what became of it as text: the output (JSON), `Error: …`, or a reviewer's denial.

The node of a decision: `node_map[tool]` when given; else the graph node whose output asked
for the call (an `AIMessage` tool call, matched by tool and arguments); else the graph node
that ran the tool, unless it only runs tools others decided (`tool_nodes`, the prebuilt
`ToolNode`'s "tools"); else the scenario's `node_map`, then the tool's name.

The graph starts from `{"messages": [HumanMessage(task)]}` (or `{input_key: task}`), the task
being the instruction and the world's first observation. Its final words (the last
message's content) finish the episode. `interrupt(value)` pauses it; the harness answers and
resumes (`Command(resume={id: answer})`):
- a proposed action — `{"tool": name, "args": {...}}` (or `"name"`/`"arguments"`, or
  LangChain's `{"action_requests": [{"name", "args"}]}`), with an optional `"description"` —
  becomes that tool call with `Decision.approval` set: it is always reviewed by the
  scenario's human (the checkpoint policy's `on_deny` says what a deny does). Approved, it
  runs at that step and the answer is `{"approved": True, "result": text}`; when the graph
  then calls that tool with those arguments, the call returns the same text without running
  again. Denied (or taken over), the answer is `{"approved": False, "comment": text}`, and
  the graph goes on as it was written to.
- anything else is a question: an `ask_human` decision, answered with the human's words.

A graph without a checkpointer gets an in-memory one (interrupts need one); each episode is
its own thread. With `checkpointer: FILE.sqlite` the graph's checkpoints are durable, its
thread named by the run and episode: when the scenario's human is a real reviewer
(`human: {type: reviewer}`), an episode paused at an approval goes on in another process
(`trialrun run --resume RUN_ID` once the item is answered) from the graph's own checkpoint —
the recorded steps replayed into the world, the graph resumed with the reviewer's answer,
no node before the interrupt run again. Mind LangGraph's own pitfalls: a node re-runs from
its top when resumed, and a bare `except Exception` in a node swallows the interrupt.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import Field, field_validator

from trialrun.agents.base import AgentContext, AgentError, Feedback
from trialrun.agents.self_driving import (
    CannotAdopt,
    Port,
    SelfDrivingAgent,
    SelfDrivingOptions,
    outcome_text,
)
from trialrun.registry import PluginNotFound, load_object, register
from trialrun.scope import episode_scope
from trialrun.trajectory import Decision, Observation, ToolSpec

__all__ = ["LangGraphAgent", "LangGraphOptions"]


class LangGraphOptions(SelfDrivingOptions):
    graph: str = Field(description="import path 'pkg.module:name' of a compiled graph or of a "
                       "factory build(tools=..., **graph_args) returning one")
    graph_args: dict[str, Any] = Field(default_factory=dict,
                                       description="keyword arguments for the factory")
    input_key: str = Field("messages", description="the state key the task goes in; "
                           "'messages' starts a conversation with one HumanMessage")
    tool_nodes: list[str] = Field(default_factory=lambda: ["tools"], description="graph "
                                  "nodes that only run tools other nodes decided")
    recursion_limit: int = Field(200, ge=1, description="graph steps per episode")
    checkpointer: str = Field("memory", description="where the graph's checkpoints live: "
                              "memory, or a SQLite file, so that an episode paused for a "
                              "reviewer goes on from the graph's own checkpoint in another "
                              "process (`run --resume`)")

    @field_validator("graph")
    @classmethod
    def _importable(cls, v: str) -> str:
        try:
            load_object(v, "langgraph graph")
        except PluginNotFound as e:
            raise ValueError(str(e)) from None
        return v


def _key(tool: str, args: Any) -> str:
    return tool + json.dumps(args, sort_keys=True, default=str)


def _proposal(value: Any) -> tuple[str, dict[str, Any], str] | None:
    """The action an interrupt asks to approve, if it proposes one: (tool, args, words)."""
    if not isinstance(value, dict):
        return None
    req = value
    requests = value.get("action_requests")
    if isinstance(requests, list) and requests and isinstance(requests[0], dict):
        req = requests[0]
    tool = req.get("tool", req.get("name", req.get("action")))
    args = req.get("args", req.get("arguments", {}))
    if not isinstance(tool, str) or not isinstance(args, dict):
        return None
    words = req.get("description") or value.get("description") or value.get("question")
    return tool, args, str(words or f"may I run {tool}?")


@register("agent", "langgraph")
class LangGraphAgent(SelfDrivingAgent):
    Options = LangGraphOptions

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        self._approval_fb: Feedback | None = None  # a resumed episode's answered review
        self._approval_ready = anyio.Event()

    @property
    def durable(self) -> bool:
        return self.options.checkpointer != "memory"

    async def drive(self, port: Port) -> str | None:
        opts: LangGraphOptions = self.options
        self._port = port
        self._approved: dict[str, str] = {}  # an approved interrupt's action, already run
        self._decided_by: dict[str, str] = {}  # (tool, args) -> the node that asked for it
        tools = [self._tool(spec) for spec in port.tools]
        scope = episode_scope.get()
        # A durable thread is named by the run and episode, so another process finds it.
        thread = f"trialrun:{scope.run_id}:{scope.key}" if self.durable and scope.run_id \
            else f"trialrun-{uuid.uuid4().hex}"
        config = {"configurable": {"thread_id": thread, "tools": tools},
                  "callbacks": [_DeciderTracker(self._decided_by)],
                  "recursion_limit": opts.recursion_limit}
        async with self._checkpointer() as saver:
            graph = self._graph(tools, saver)
            task = port.prompt()
            state: Any = ({"messages": [HumanMessage(task)]} if opts.input_key == "messages"
                          else {opts.input_key: task})
            if scope.resuming and self.durable:
                pending = (await graph.aget_state(config)).interrupts
                if not pending:
                    raise CannotAdopt(f"langgraph: thread {thread} has no pending interrupt "
                                      "to go on from")
                await self._approval_ready.wait()  # the paused review, answered
                assert self._approval_fb is not None
                state = Command(resume={i.id: self._approval_answer(i.value, self._approval_fb)
                                        for i in pending})
            elif self.durable:
                await saver.adelete_thread(thread)  # a fresh start (a retry) begins clean
            while True:
                out = await graph.ainvoke(state, config)
                pending = out.get("__interrupt__") if isinstance(out, dict) else None
                if not pending:
                    return _final_words(out)
                state = Command(resume={i.id: await self._answer(i.value) for i in pending})

    @asynccontextmanager
    async def _checkpointer(self) -> AsyncIterator[Any]:
        if not self.durable:
            yield InMemorySaver()
            return
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(self.options.checkpointer) as saver:
            try:
                await saver.setup()
            except Exception as e:  # noqa: BLE001 - the harness's store, not the agent
                raise AgentError(f"langgraph checkpointer {self.options.checkpointer}: "
                                 f"{type(e).__name__}: {e}") from e
            yield saver

    async def adopt(self, decision: Decision, obs: Observation) -> None:
        """Going on from a pause, the graph's own checkpoint holds the recorded steps: each
        is taken as done; the paused review's answer comes with its feedback."""
        if not (self.durable and episode_scope.get().resuming):
            await super().adopt(decision, obs)

    async def feedback(self, fb: Feedback) -> None:
        if self._current is None and fb.decision.approval is not None:  # an adopted review
            self._approval_fb = fb
            self._approval_ready.set()
            return
        await super().feedback(fb)

    def _graph(self, tools: list[Any], saver: Any) -> Any:
        opts: LangGraphOptions = self.options
        obj = load_object(opts.graph, "langgraph graph")
        if not hasattr(obj, "ainvoke") and callable(obj):
            obj = obj(tools=tools, **opts.graph_args)
        if hasattr(obj, "compile") and not hasattr(obj, "ainvoke"):
            obj = obj.compile()  # a StateGraph the factory did not compile
        if not hasattr(obj, "ainvoke"):
            raise TypeError(f"{opts.graph} gave {type(obj).__name__}, not a compiled graph")
        if self.durable or getattr(obj, "checkpointer", None) in (None, False):
            obj = obj.copy(update={"checkpointer": saver})
        return obj

    def _tool(self, spec: ToolSpec) -> Any:
        """The world tool `spec` as a LangChain tool whose every call is a decision."""
        async def run(config: RunnableConfig, **args: Any) -> str:
            done = self._approved.pop(_key(spec.name, args), None)
            if done is not None:
                return done
            ran_in = (config.get("metadata") or {}).get("langgraph_node", "")
            fb = await self._port.call(spec.name, args, node=self._node(spec.name, args,
                                                                         ran_in))
            return outcome_text(fb)

        return StructuredTool(name=spec.name, description=spec.description or spec.name,
                              args_schema=spec.parameters, coroutine=run)

    def _node(self, tool: str, args: dict[str, Any], ran_in: str = "") -> str:
        opts: LangGraphOptions = self.options
        mapped = opts.node_of("tool_call", tool)
        if mapped:
            return mapped
        decider = self._decided_by.get(_key(tool, args))
        if decider:
            return decider
        return ran_in if ran_in and ran_in not in opts.tool_nodes else ""

    def _approval_answer(self, value: Any, fb: Feedback) -> dict[str, Any]:
        """The answer to an approval interrupt once its step was reviewed: approved, the
        action has run (and the graph's own call of it gets that result); otherwise why not."""
        text = outcome_text(fb)
        if fb.denied or fb.executed is not None:
            return {"approved": False, "comment": text}
        proposal = _proposal(value)
        if proposal is not None:
            self._approved[_key(proposal[0], proposal[1])] = text
        return {"approved": True, "result": text}

    async def _answer(self, value: Any) -> Any:
        """The answer to one `interrupt(value)`: a reviewed action, or a human's words."""
        proposal = _proposal(value)
        if proposal is None:
            question = value.get("question", value) if isinstance(value, dict) else value
            return await self._port.ask_human(
                question if isinstance(question, str) else json.dumps(question, default=str))
        tool, args, words = proposal
        fb = await self._port.call(tool, args, node=self._node(tool, args), approval=words)
        return self._approval_answer(value, fb)


def _final_words(out: Any) -> str | None:
    if isinstance(out, dict) and out.get("messages"):
        content = getattr(out["messages"][-1], "content", None)
        return content if isinstance(content, str) else json.dumps(content, default=str)
    return None


class _DeciderTracker(BaseCallbackHandler):
    """Notes which graph node asked for each tool call (its output's `AIMessage.tool_calls`),
    so that the call is graded at the node that decided it, not the one that ran it."""

    run_inline = True  # called in the graph's own task, in order

    def __init__(self, decided_by: dict[str, str]) -> None:
        self.decided_by = decided_by
        self.nodes: dict[Any, str] = {}

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any,
                       metadata: dict[str, Any] | None = None, **kw: Any) -> None:
        node = (metadata or {}).get("langgraph_node")
        if node and kw.get("name") == node:  # the node itself, not a runnable inside it
            self.nodes[run_id] = node

    def on_chain_end(self, outputs: Any, *, run_id: Any, **kw: Any) -> None:
        node = self.nodes.pop(run_id, None)
        if node is None:
            return
        messages = outputs.get("messages", []) if isinstance(outputs, dict) else []
        for m in messages if isinstance(messages, list) else [messages]:
            for call in getattr(m, "tool_calls", None) or []:
                self.decided_by[_key(call["name"], call.get("args", {}))] = node
