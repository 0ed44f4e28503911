"""A scripted reference agent for the retail world, with per-node error knobs.

It follows the written policy step by step. `error_rates: {node: p}` makes it err at a node
with probability p (given a clean prefix), so runs with known ground truth are possible:
wrong identity (a typo it then corrects), the wrong order, a wrong amount or a forbidden
action, a reply that omits the outcome. `ask: when_ambiguous | never | always` sets its
escalation behaviour.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field

from trialrun.agents.base import AgentContext, Feedback
from trialrun.agents.scripted import ScriptedAgent, ScriptedOptions
from trialrun.registry import register
from trialrun.trajectory import Decision, Observation

NODES = ("verify_identity", "lookup_order", "lookup_product", "clarify", "resolve", "reply",
         "finish")


class RetailAgentOptions(ScriptedOptions):
    error_nodes = NODES

    ask: Literal["when_ambiguous", "never", "always"] = Field(
        "when_ambiguous", description="when to ask a human supervisor")
    # Correlated errors by construction: some episodes are "bad days" on which every node's
    # error rate is multiplied, so errors cluster in the same episodes.
    bad_day_rate: float = Field(0.0, ge=0, le=1)
    bad_day_multiplier: float = Field(1.0, ge=1)


@register("agent", "scripted:retail")
class ScriptedRetailAgent(ScriptedAgent):
    nodes = frozenset(NODES)  # every node its decisions name
    Options = RetailAgentOptions
    options: RetailAgentOptions
    waits = False  # pure computation

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        opts = self.options
        if opts.bad_day_rate > 0 and self.rng.random() < opts.bad_day_rate:  # a bad day
            self.rates = {k: min(1.0, v * opts.bad_day_multiplier)
                          for k, v in self.rates.items()}
        d = first.data
        self.customer: dict[str, str] = d["customer"]
        self.request: dict[str, Any] = d["request"]
        self.windows = _windows(d["policy"])
        self.phase = "verify_identity"
        self.customer_id: str | None = None
        self.candidates: list[dict[str, Any]] = []
        self.order_id: str | None = self.request.get("order_id")
        self.order: dict[str, Any] | None = None
        self.outcome_facts: str = ""
        self.asked = False
        self.all_orders: list[str] = []
        self.products: dict[str, dict[str, Any]] = {}

    async def decide(self, obs: Observation) -> Decision:
        ph = self.phase
        if ph == "verify_identity":
            email = self.customer["email"]
            erred = self._err(ph)
            if erred:
                email = email.replace("@", ".@", 1)  # a typo: the lookup will fail
            return self._call(ph, "find_customer", erred, email=email)
        if ph == "list_orders":
            return self._call("lookup_order", "list_orders", customer_id=self.customer_id)
        if ph == "choose_order":
            matches = self.candidates
            if len(matches) > 1 and self.options.ask != "never" and not self.asked:
                self.asked = True
                return Decision(kind="ask_human", node="clarify",
                                text=f"The customer's request could mean orders "
                                f"{', '.join(m['order_id'] for m in matches)}. Which one?",
                                confidence=0.5)
            if self.order_id is None:
                self.order_id = self.rng.choice(matches)["order_id"] if matches else None
            self.phase = "get_order"
            return await self.decide(obs)
        if ph == "get_order":
            oid = self.order_id
            erred = self._err("lookup_order")
            if erred:
                others = [o for o in self.all_orders if o != oid]
                oid = self.rng.choice(others) if others else oid
            return self._call("lookup_order", "get_order", erred, order_id=oid)
        if ph == "search":
            return self._call("lookup_product", "search_products", query="")
        if ph == "resolve":
            if self.options.ask == "always" and not self.asked:
                self.asked = True
                return Decision(kind="ask_human", node="clarify",
                                text="May I go ahead with this request?", confidence=0.5)
            return self._resolve()
        if ph == "reply":
            return self._reply()
        return Decision(kind="finish", node="finish", text="resolved")

    def _resolve(self) -> Decision:
        o = self.order or {}
        r = self.request
        kind = r["type"]
        status, days = o.get("status"), o.get("days_since_delivery")
        delivered = status == "delivered" and days is not None
        erred = self._err("resolve")
        action: Decision | None = None
        if kind == "refund":
            if delivered and days <= self.windows["refund"]:
                amount = o["total"] if not erred else round(o["total"] * 0.9, 2)
                action = self._call("resolve", "refund", erred, order_id=o["id"], amount=amount)
                self.outcome_facts = f"We refunded {o['total']:.2f} to your card."
            elif erred and delivered:
                action = self._call("resolve", "refund", erred, order_id=o["id"],
                                    amount=o["total"])
                self.outcome_facts = f"We refunded {o['total']:.2f} to your card."
            else:
                self.outcome_facts = (
                    f"Sorry, refunds are only possible within {self.windows['refund']} days of "
                    f"delivery." if delivered else f"Your order is {status}; it has not been "
                    "delivered, so it cannot be refunded.")
        elif kind == "cancel":
            if status in ("pending", "processing"):
                target = o["id"] if not erred else self._other_order(o["id"])
                action = self._call("resolve", "cancel", erred, order_id=target)
                self.outcome_facts = f"Your order {o['id']} is cancelled."
            else:
                self.outcome_facts = ("That order was delivered and cannot be cancelled; "
                                      "you can ask for a refund instead.")
        elif kind == "exchange":
            new_sku = r.get("new_sku")
            item = o["items"][0]
            new = self.products.get(new_sku or "")
            if (delivered and days <= self.windows["exchange"] and new
                    and new["price"] == item["price"]):
                sku = new_sku if not erred else self._other_product(new_sku, item["price"])
                action = self._call("resolve", "exchange", erred, order_id=o["id"],
                                    sku=item["sku"], new_sku=sku)
                self.outcome_facts = f"We will exchange it for the {new['name']}."
            else:
                self.outcome_facts = "Sorry, we cannot exchange this order under our policy."
        else:
            self.outcome_facts = f"Your order {o.get('id')} is {status}."
        # Nothing to do under the policy: go straight to telling the customer why.
        return action or self._reply()

    def _reply(self) -> Decision:
        self.phase = "reply"
        erred = self._err("reply")
        text = self.outcome_facts if not erred else "Thanks for reaching out, all sorted."
        return Decision(kind="tool_call", node="reply", tool="reply", args={"message": text},
                        confidence=self._confidence(erred))

    def _other_order(self, oid: str) -> str:
        others = [o for o in self.all_orders if o != oid]
        return self.rng.choice(others) if others else oid

    def _other_product(self, sku: str | None, price: float) -> str:
        same = [p["sku"] for p in self.products.values() if p["sku"] != sku]
        return self.rng.choice(same)

    async def feedback(self, fb: Feedback) -> None:
        # What ran is what the result answers: a human who took over may have done otherwise.
        d, res = fb.executed or fb.decision, fb.result
        if fb.denied:
            return  # the same phase decides again
        if d.kind == "ask_human":
            m = re.search(r"order (\S+?)\.?$", fb.human_answer or "")
            if m:
                self.order_id = m.group(1)
            if self.phase == "choose_order":
                self.phase = "get_order"
            return
        if d.kind != "tool_call" or res is None:
            return
        if d.tool == "find_customer":
            if res.ok:
                self.customer_id = res.output["customer_id"]
                self.phase = "list_orders"
            return  # on failure: retry with the right email
        if d.tool == "list_orders" and res.ok:
            self.all_orders = [o["order_id"] for o in res.output]
            mention = self.request.get("mentions") or ""
            self.candidates = [o for o in res.output
                               if mention and any(mention in i for i in o["items"])]
            self.phase = "choose_order" if self.order_id is None else "get_order"
            return
        if d.tool == "get_order":
            if res.ok:
                self.order = res.output
                self.phase = "search" if self.request["type"] == "exchange" else "resolve"
            return
        if d.tool == "search_products" and res.ok:
            self.products = {p["sku"]: p for p in res.output}
            self.phase = "resolve"
            return
        if d.tool in ("refund", "cancel", "exchange"):
            self.phase = "reply"
            return
        if d.tool == "reply":
            self.phase = "finish"


def _windows(policy: str) -> dict[str, int]:
    refund, exchange = _window_days(policy)
    return {"refund": refund, "exchange": exchange}


@lru_cache(maxsize=64)  # the policy text is the same every episode of a scenario
def _window_days(policy: str) -> tuple[int, int]:
    refund = re.search(r"within (\d+) days of delivery", policy)
    exchange = re.search(r"delivered orders within (\d+) days", policy)
    return (int(refund.group(1)) if refund else 30,
            int(exchange.group(1)) if exchange else 45)
