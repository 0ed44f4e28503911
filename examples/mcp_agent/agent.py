"""A rule-based MCP agent for trialrun's retail world: a real MCP client, no model.

It connects with the `mcp` package's `Client` (over streamable HTTP to $TRIALRUN_MCP_URL, or
over stdio to a server command given after `--`), lists the tools, reads the task
($TRIALRUN_TASK, else the server's instructions) and follows the store policy: verify the
customer, find the order (asking a supervisor when the request could mean several), refund or
cancel when the policy allows, tell the customer the outcome, finish. Exchanges it declines.

    # under trialrun (examples/mcp_agent/scenario.yaml):
    agent: {type: mcp, params: {command: [python, examples/mcp_agent/agent.py]}}

    # against one served episode, over stdio:
    python examples/mcp_agent/agent.py -- trialrun serve-world retail/cancel_pending

Every call and its result goes to stderr; the last line on stdout is its summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from typing import Any

from mcp import Client, StdioServerParameters

NEEDED = {"find_customer", "list_orders", "get_order", "refund", "cancel", "reply"}


def log(msg: str) -> None:
    print(f"[mcp_agent] {msg}", file=sys.stderr, flush=True)


class Retail:
    """One customer request, solved by the policy's rules through MCP tool calls."""

    def __init__(self, client: Client, task: str, tools: dict[str, str]) -> None:
        self.client = client
        self.task = task
        self.tools = tools  # harness role -> the name it is offered under
        line = task.split("Customer:", 1)[-1].strip()
        self.line = line
        window = re.search(r"within (\d+) days of delivery", task)
        self.refund_window = int(window.group(1)) if window else 30

    async def call(self, tool: str, **args: Any) -> tuple[bool, Any]:
        """Call a tool; (ok, the output parsed from JSON when it is JSON)."""
        result = await self.client.call_tool(tool, args)
        text = "".join(getattr(c, "text", "") for c in result.content)
        log(f"{tool}({json.dumps(args)}) -> {'ERROR: ' if result.is_error else ''}{text[:300]}")
        if result.is_error:
            return False, text
        try:
            return True, json.loads(text)
        except ValueError:
            return True, text

    async def solve(self) -> str:
        who = re.search(r"this is (.+?) \(([^()\s]+@[^()\s]+)\)", self.line)
        if who is None:
            return await self.done("I could not tell who the customer is.")
        ok, found = await self.call("find_customer", email=who.group(2))
        if not ok:
            return await self.done("I could not verify the customer's identity.")
        order_id = await self.find_order(found["customer_id"])
        if order_id is None:
            return await self.done("I could not tell which order the customer means.")
        ok, order = await self.call("get_order", order_id=order_id)
        if not ok:
            return await self.done(f"I could not read order {order_id}.")
        return await self.resolve(order)

    async def find_order(self, customer_id: str) -> str | None:
        named = re.search(r"\border ([A-Z][\w-]*\d)", self.line)
        if named:
            return named.group(1)
        mention = re.search(r"the (.+?) I bought", self.line)
        ok, orders = await self.call("list_orders", customer_id=customer_id)
        if not ok or mention is None:
            return None
        matches = [o["order_id"] for o in orders
                   if any(mention.group(1) in item for item in o["items"])]
        if len(matches) == 1:
            return matches[0]
        ok, answer = await self.call(self.tools["ask_human"], question=(
            f"The customer's request could mean orders {', '.join(matches) or 'none'}. "
            "Which one do they mean?"))
        said = re.search(r"order (\S+?)\.?$", str(answer))
        return said.group(1) if ok and said else None

    async def resolve(self, order: dict[str, Any]) -> str:
        oid, status, days = order["id"], order["status"], order.get("days_since_delivery")
        text = self.line.lower()
        if "refund" in text:
            if status == "delivered" and days is not None and days <= self.refund_window:
                return await self.act("refund", f"We refunded {order['total']:.2f} to your "
                                      f"card for order {oid}.", order_id=oid,
                                      amount=order["total"])
            if status == "delivered":
                return await self.done(f"Sorry, refunds are only possible within "
                                       f"{self.refund_window} days of delivery; order {oid} "
                                       f"was delivered {days} days ago.")
            return await self.done(f"Your order {oid} is {status}; it has not been "
                                   "delivered, so it cannot be refunded yet.")
        if "cancel" in text:
            if status in ("pending", "processing"):
                return await self.act("cancel", f"Your order {oid} is cancelled.",
                                      order_id=oid)
            return await self.done(f"Order {oid} is {status} and cannot be cancelled; you "
                                   "can ask for a refund instead.")
        if "exchange" in text:
            return await self.done(f"Sorry, I cannot exchange order {oid} for you; please "
                                   "contact us again with the product you want.")
        return await self.done(f"Your order {oid} is {status}.")

    async def act(self, tool: str, success: str, **args: Any) -> str:
        ok, out = await self.call(tool, **args)
        if ok:
            return await self.done(success)
        why = "a reviewer did not approve it" if "Denied" in str(out) else str(out)
        return await self.done(f"Sorry, I could not {tool} order {args['order_id']}: {why}.")

    async def done(self, message: str) -> str:
        """Tell the customer, then finish."""
        await self.call("reply", message=message)
        await self.call(self.tools["finish"], summary=message)
        return message


async def run(server: str | StdioServerParameters) -> str:
    async with Client(server) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        # A world tool may take a harness tool's name; the harness one is then trialrun_<name>.
        roles = {r: f"trialrun_{r}" if f"trialrun_{r}" in listed else r
                 for r in ("ask_human", "finish")}
        task = os.environ.get("TRIALRUN_TASK") or client.instructions or ""
        missing = NEEDED - listed
        if missing:
            await client.call_tool(roles["finish"], {
                "summary": f"this agent plays the retail world; missing {sorted(missing)}"})
            return "not a retail world"
        return await Retail(client, task, roles).solve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("TRIALRUN_MCP_URL"),
                        help="the MCP endpoint (default: $TRIALRUN_MCP_URL)")
    parser.add_argument("server", nargs=argparse.REMAINDER,
                        help="after --: a command that serves MCP on stdio")
    args = parser.parse_args()
    command = args.server[1:] if args.server[:1] == ["--"] else args.server
    if command:
        server: str | StdioServerParameters = StdioServerParameters(
            command=command[0], args=command[1:], env=dict(os.environ))
    elif args.url:
        server = args.url
    else:
        parser.error("no server: set TRIALRUN_MCP_URL, pass --url, or a command after --")
    print(asyncio.run(run(server)), flush=True)


if __name__ == "__main__":
    main()
