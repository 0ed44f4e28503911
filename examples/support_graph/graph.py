"""A customer-support agent written as a plain LangGraph graph, with nothing of trialrun in it.

    START -> agent -> (tool calls?) -> approve -> tools -> agent ... -> END

- `agent` asks a chat model behind any OpenAI-compatible endpoint (`OPENAI_BASE_URL`,
  `OPENAI_MODEL`, `OPENAI_API_KEY`) what to do next, offering it the tools it was built with;
- `approve` pauses with `interrupt()` before any call of an irreversible tool and asks a human
  to approve it; a denied call is not run, and the model is told;
- `tools` is LangGraph's prebuilt `ToolNode`.

trialrun evaluates it unmodified (`scenario.yaml` beside this file): it hands the world's
tools to `build(tools=...)`, grades every tool call at its node, and answers each
`interrupt()` with the scenario's human.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
from langchain_core.messages import (
    AIMessage,
    SystemMessage,
    ToolMessage,
    convert_to_openai_messages,
)
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt

SYSTEM = ("You are a customer-support agent for an online shop. Follow the shop's written "
          "policy exactly. Verify the customer before acting on an order. Tell the customer "
          "what you did with the reply tool, then answer with a short summary and no tool call.")


class ChatModel:
    """The smallest OpenAI-compatible chat client the graph needs (httpx, one request per turn)."""

    def __init__(self, model: str | None = None, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", temperature: float = 0.0) -> None:
        self.model = model or os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL")
                         or "https://api.openai.com/v1").rstrip("/")
        self.api_key = os.environ.get(api_key_env, "")
        self.temperature = temperature

    async def __call__(self, messages: list[Any], tools: list[Any]) -> AIMessage:
        body = {"model": self.model, "temperature": self.temperature,
                "messages": convert_to_openai_messages(messages),
                "tools": [convert_to_openai_tool(t) for t in tools]}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(f"{self.base_url}/chat/completions", json=body,
                                  headers=headers)
            r.raise_for_status()
        msg = r.json()["choices"][0]["message"]
        calls = [{"name": c["function"]["name"], "id": c["id"],
                  "args": json.loads(c["function"].get("arguments") or "{}")}
                 for c in msg.get("tool_calls") or []]
        return AIMessage(msg.get("content") or "", tool_calls=calls)


def build(tools: list[Any], model: str | None = None, base_url: str | None = None,
          needs_approval: tuple[str, ...] = ("refund", "cancel", "exchange"),
          system_prompt: str = SYSTEM) -> Any:
    chat = ChatModel(model, base_url)
    # The harness offers its own `finish`; this graph finishes by answering without a call.
    tools = [t for t in tools if t.name != "finish"]

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await chat([SystemMessage(system_prompt), *state["messages"]],
                                        tools)]}

    def approve(state: MessagesState) -> Command:
        calls = state["messages"][-1].tool_calls
        answers = {c["id"]: interrupt({"tool": c["name"], "args": c["args"],
                                       "description": f"The agent wants to {c['name']}."})
                   for c in calls if c["name"] in needs_approval}
        if all(a.get("approved") for a in answers.values()):
            return Command(goto="tools")
        # Something was denied: nothing more runs this turn, and the model reads why.
        notes = [ToolMessage(answers[c["id"]].get("comment") or answers[c["id"]].get("result")
                             if c["id"] in answers else "Not run: another call was denied.",
                             tool_call_id=c["id"]) for c in calls]
        return Command(goto="agent", update={"messages": notes})

    def route(state: MessagesState) -> str:
        return "approve" if state["messages"][-1].tool_calls else END

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("approve", approve, destinations=("tools", "agent"))
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["approve", END])
    graph.add_edge("tools", "agent")
    return graph.compile()
