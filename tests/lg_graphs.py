"""Small LangGraph graphs the LangGraph-agent tests evaluate (imported by path, as a user's)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import interrupt

EMAIL = "chen.n@example.com"


def _tools(config: RunnableConfig) -> dict[str, Any]:
    return {t.name: t for t in config["configurable"]["tools"]}


async def _verify(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    out = await _tools(config)["find_customer"].ainvoke({"email": EMAIL})
    return {"messages": [AIMessage(out)]}


async def _lookup(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    out = await _tools(config)["get_order"].ainvoke({"order_id": "O-3001"})
    return {"messages": [AIMessage(out)]}


async def _answer(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    await _tools(config)["reply"].ainvoke({"message": "Order O-3001 is pending."})
    return {"messages": [AIMessage("told the customer")]}


def _chain(*nodes: tuple[str, Any]) -> Any:
    g = StateGraph(MessagesState)
    for name, fn in nodes:
        g.add_node(name, fn)
    names = [n for n, _ in nodes]
    for a, b in zip([START, *names], [*names, END], strict=True):
        g.add_edge(a, b)
    return g.compile()


# A compiled graph (no factory): its nodes call the world's tools from the config, so each
# call is graded at the node that made it.
direct = _chain(("verify", _verify), ("lookup", _lookup), ("answer", _answer))


def _ask(state: MessagesState) -> dict[str, Any]:
    said = interrupt("Which order does the customer mean?")
    return {"messages": [AIMessage(f"human said: {said}")]}


asks = _chain(("ask", _ask))


def _crash(state: MessagesState) -> dict[str, Any]:
    raise ValueError("the model's JSON had no 'action' key")


crashes = _chain(("verify", _verify), ("plan", _crash))


def react(tools: list[Any], plan: list[tuple[str, dict[str, Any]]]) -> Any:
    """A factory: an `agent` node that emits the planned tool calls one turn at a time (in
    place of a model), the prebuilt ToolNode to run them, and an approval gate before cancel."""
    tools = [t for t in tools if t.name != "finish"]

    def agent(state: MessagesState) -> dict[str, Any]:
        turn = sum(bool(getattr(m, "tool_calls", None)) for m in state["messages"])
        if turn >= len(plan):
            return {"messages": [AIMessage("all done")]}
        name, args = plan[turn]
        return {"messages": [AIMessage("", tool_calls=[{"name": name, "args": args,
                                                         "id": f"call{turn}"}])]}

    def gate(state: MessagesState) -> dict[str, Any]:
        call = state["messages"][-1].tool_calls[0]
        if call["name"] == "cancel":
            answer = interrupt({"tool": call["name"], "args": call["args"]})
            if not answer["approved"]:
                return {"messages": [AIMessage(f"skipped: {answer['comment']}")]}
        return {}

    def route(state: MessagesState) -> str:
        return "gate" if state["messages"][-1].tool_calls else END

    def after_gate(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else "agent"

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_node("gate", gate)
    g.add_node("tools", ToolNode(tools))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", route, ["gate", END])
    g.add_conditional_edges("gate", after_gate, ["tools", "agent"])
    g.add_edge("tools", "agent")
    return g.compile()


async def _model_down(state: MessagesState) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient(timeout=2) as client:  # nothing listens on port 9
        await client.post("http://127.0.0.1:9/v1/chat/completions", json={})
    return {}


model_down = _chain(("verify", _verify), ("agent", _model_down))
