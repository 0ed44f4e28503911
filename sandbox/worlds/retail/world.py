"""Retail customer support: a tool API over a seeded store database, in the spirit of tau-bench.

The world seeds background customers, orders and products from the episode seed and plants
the task's own customer and orders. A written policy (`policy.py`, also shown to the agent)
decides what the right resolution is; the world derives the expected final state and the facts
the reply must state from it, so every decision can be judged against ground truth.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache, lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trialrun.registry import register
from trialrun.sandbox.world import ToolError, Verdict, World, WorldStatus, tool
from trialrun.sandbox.worlds.retail.policy import money, policy_text, resolution
from trialrun.trajectory import Decision, Observation

FIRST_NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia",
               "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara"]
LAST_NAMES = ["Ruiz", "Okafor", "Nakamura", "Schmidt", "Kowalski", "Haddad", "Silva", "Novak",
              "Larsen", "Moreau", "Patel", "Ivanova", "Kim", "Osei", "Rossi"]
CATALOG = [
    ("P100", "blue running shoes", 89.90), ("P101", "red running shoes", 89.90),
    ("P102", "trail shoes", 119.00), ("P110", "rain jacket", 149.00),
    ("P111", "wool sweater", 79.50), ("P112", "linen shirt", 45.00),
    ("P120", "steel water bottle", 24.90), ("P121", "yoga mat", 35.00),
    ("P122", "backpack 20L", 64.00), ("P123", "backpack 30L", 64.00),
    ("P130", "desk lamp", 39.99), ("P131", "headphones", 129.00),
]
CATALOG_SKUS = [c[0] for c in CATALOG]
# What each world's product table starts as (each world changes only its own copy).
_PRODUCTS = {sku: {"sku": sku, "name": n, "price": p, "in_stock": True} for sku, n, p in CATALOG}


# --- what a scenario may say: the `world:` options and each task's fields -------------------
class RetailOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customers: int = Field(12, ge=0, le=10_000, description="background customers")
    orders_per_customer: int = Field(2, ge=0, le=50)
    refund_window_days: int = Field(30, ge=0)
    exchange_window_days: int = Field(45, ge=0)


class PlantedCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    email: str
    zip: str


class PlantedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str
    qty: int = Field(1, ge=1)

    @field_validator("sku")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in CATALOG_SKUS:
            raise ValueError(f"unknown product {v!r}; the catalog has {', '.join(CATALOG_SKUS)}")
        return v


class PlantedOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    items: list[PlantedItem]
    status: Literal["pending", "processing", "delivered", "cancelled", "refunded"]
    days_since_delivery: int | None = Field(None, description="for delivered orders")


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["refund", "cancel", "exchange", "status"]
    order_id: str | None = Field(None, description="null when the customer does not say")
    mentions: str = Field("", description="how the customer refers to the item")
    new_sku: str | None = Field(None, description="exchange: the product wanted instead")
    reason: str = ""


class RetailTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: PlantedCustomer
    orders: list[PlantedOrder] = Field(min_length=1)
    request: Request


@register("world", "retail")
class RetailWorld(World):
    # What outcome() returns: `trialrun validate` checks outcome expressions against it.
    state_keys = frozenset({"orders"})  # what its expected final state holds (state_equals)
    outcome_keys = frozenset({"expected_facts", "expected_state", "messages", "reason", "score",
        "state", "success"})
    Options = RetailOptions
    Task = RetailTask
    options: RetailOptions
    spec: RetailTask

    def __init__(self, options: RetailOptions | dict[str, Any] | None, task: dict[str, Any],
                 seed: int) -> None:
        super().__init__(options, task, seed)
        self.ambiguous = bool(task.get("ambiguous"))
        self.products = {sku: p.copy() for sku, p in _PRODUCTS.items()}  # this episode's

    # --- set-up ----------------------------------------------------------------------
    def reset(self) -> Observation:
        # The background store is drawn exactly as `rng.choice`/`rng.randint` would draw it
        # (same calls, same order, same values), without their Python layers: the reset runs
        # once an episode and was its costliest part.
        below = _below(self.rng)
        bits = self.rng.getrandbits
        self.customers: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        customers, orders = self.customers, self.orders
        # `below(n)` inlined (draw n.bit_length() bits until the value is below n).
        nf, kf = len(FIRST_NAMES), len(FIRST_NAMES).bit_length()
        nl, kl = len(LAST_NAMES), len(LAST_NAMES).bit_length()
        ns, ks = len(CATALOG_SKUS), len(CATALOG_SKUS).bit_length()
        per, n_cust = self.options.orders_per_customer, self.options.customers
        n_order = 5000 + n_cust * per  # the last background order's number
        order_ids = _ids("O", 5001, n_cust * per)
        lines, totals, statuses = _LINES, _TOTALS, _BACKGROUND_STATUSES
        for i, cid in enumerate(_ids("C", 1000, n_cust)):
            r = bits(kf)
            while r >= nf:
                r = bits(kf)
            names = _FULL_NAMES[r]
            heads = _EMAIL_HEADS[r]
            r = bits(kl)
            while r >= nl:
                r = bits(kl)
            name, head = names[r], heads[r]
            r = bits(17)  # zip: 10000 + below(90000)
            while r >= 90000:
                r = bits(17)
            mine = list(order_ids[i * per:(i + 1) * per])
            customers[cid] = {"id": cid, "name": name, "email": f"{head}{i}@example.com",
                              "zip": str(10000 + r), "orders": mine}
            for oid in mine:
                r = bits(ks)
                while r >= ns:
                    r = bits(ks)
                sku = CATALOG_SKUS[r]
                st = bits(3)  # one of 4 statuses, the last two "delivered"
                while st >= 4:
                    st = bits(3)
                r = bits(7)  # days: 1 + below(90)
                while r >= 90:
                    r = bits(7)
                orders[oid] = {"id": oid, "customer_id": cid, "items": [lines[sku].copy()],
                               "total": totals[sku], "status": statuses[st],
                               "days_since_delivery": 1 + r if st >= 2 else None,
                               "refunded": 0.0}
        sc = self.spec.customer
        me = "C0001"
        self.customers[me] = {"id": me, "name": sc.name, "email": sc.email, "zip": sc.zip,
                              "orders": []}
        for o in self.spec.orders:
            self._add_order(me, o.id, [(i.sku, i.qty) for i in o.items], o.status,
                            o.days_since_delivery)
        # One seeded extra order, so that looking up the wrong order is always possible.
        extra = f"O{n_order + 1}"
        sku = CATALOG_SKUS[below(ns)]
        self._add_order(me, extra, [(sku, 1)], "delivered", 60 + below(61))
        self.customer_id = me
        self.verified: str | None = None
        self.clarified = not self.ambiguous
        self.messages: list[str] = []
        # Orders are copied on write (`_apply`), so the untouched ones can be shared by the
        # live table, this snapshot and the expected final state.
        self.initial_orders = dict(self.orders)
        self.touched: set[str] = set()  # orders changed since reset: all a digest must cover
        seed = self.seed  # its JSON, for every digest (int's is its repr; a bool's is not)
        self._seed_json = repr(seed) if type(seed) is int else _compact_json(seed)
        self._digest: str | None = None
        self._touched_json, self._messages_json = "{}", "[]"  # nothing touched or said yet
        self.expected = self._expected_resolution()
        # The text is what an LLM agent reads: the policy it must follow, then the customer.
        policy, opening = self.policy_text(), self._opening_line()
        return Observation(text=f"{policy}\n\nCustomer: {opening}", data={
            "policy": policy, "customer_message": opening,
            "request": self.spec.request.model_dump(),
            "customer": {"email": sc.email, "name": sc.name, "zip": sc.zip},
        })

    def _add_order(self, cid: str, oid: str, items: list[tuple[str, int]], status: str,
                   days: int | None) -> None:
        """Plant an order of (sku, qty) items for customer `cid`."""
        lines = []
        for sku, qty in items:
            p = self.products.get(sku)
            if p is None:
                raise ValueError(f"order {oid}: unknown product sku {sku!r}; known: "
                                 f"{', '.join(self.products)}")
            lines.append({"sku": p["sku"], "name": p["name"], "price": p["price"], "qty": qty})
        total = round(sum(x["price"] * x["qty"] for x in lines), 2)
        self.orders[oid] = {"id": oid, "customer_id": cid, "items": lines, "total": total,
                            "status": status,
                            "days_since_delivery": days if status == "delivered" else None,
                            "refunded": 0.0}
        self.customers[cid]["orders"].append(oid)

    def policy_text(self) -> str:
        return policy_text(self.options.refund_window_days, self.options.exchange_window_days)

    def _opening_line(self) -> str:
        r, c = self.spec.request, self.spec.customer
        what = f"order {r.order_id}" if r.order_id else f"the {r.mentions or 'item'} I bought"
        verbs = {"refund": f"I'd like a refund for {what}",
                 "cancel": f"please cancel {what}",
                 "exchange": f"I want to exchange {what}{self._wanted()}",
                 "status": f"where is {what}?"}
        reason = f" {r.reason}." if r.reason else ""
        return f"Hi, this is {c.name} ({c.email}). {verbs[r.type]}.{reason}"

    def _wanted(self) -> str:
        """An exchange: the product the customer wants instead, as they would name it."""
        sku = self.spec.request.new_sku
        if not sku:
            return ""
        p = self.products.get(sku)
        return f" for the {p['name']} ({sku})" if p else f" for product {sku}"

    # --- the policy, as ground truth ---------------------------------------------------
    def _target_order(self) -> str:
        r = self.spec.request
        if r.order_id:
            return r.order_id
        mine = [o for o in self.spec.orders if any(r.mentions and r.mentions in
                                                    self.products[i.sku]["name"] for i in o.items)]
        # Ambiguous tasks list the intended order first; the human supervisor knows it.
        return (mine or self.spec.orders)[0].id

    def _expected_resolution(self) -> dict[str, Any]:
        oid = self._target_order()
        action, facts = resolution(self.spec.request, self.orders[oid], self.products,
                                   self.options.refund_window_days,
                                   self.options.exchange_window_days)
        expected_orders = dict(self.initial_orders)  # `_apply` copies what it changes
        if action:
            self._apply(expected_orders, action["tool"], action["args"])
        return {"order_id": oid, "action": action, "facts": facts, "orders": expected_orders}

    # --- tools -----------------------------------------------------------------------
    @tool(seconds=20)
    def find_customer(self, email: str | None = None, name: str | None = None,
                      zip: str | None = None) -> dict[str, Any]:
        """Find a customer and verify their identity, by email or by name and zip code.
        Orders can be read or changed only for the customer verified last.

        Args:
            email: the customer's email address, exactly as they gave it
            name: the customer's full name (together with zip)
            zip: the customer's zip code (together with name)
        """
        for c in self.customers.values():
            if (email and c["email"] == email) or (name and zip and c["name"] == name
                                                   and c["zip"] == zip):
                self.verified = c["id"]
                self._changed()
                return {"customer_id": c["id"], "name": c["name"]}
        raise ToolError("no customer matches; check the email, or give name and zip")

    @tool(seconds=10)
    def list_orders(self, customer_id: str) -> list[dict[str, Any]]:
        """List a verified customer's orders: id, status and the names of the items.

        Args:
            customer_id: the id find_customer returned
        """
        if self.verified != customer_id:
            raise ToolError("policy: verify the customer's identity first (find_customer)")
        return [{"order_id": oid, "status": self.orders[oid]["status"],
                 "items": [i["name"] for i in self.orders[oid]["items"]]}
                for oid in self.customers[customer_id]["orders"]]

    @tool(seconds=10)
    def get_order(self, order_id: str) -> dict[str, Any]:
        """Read one order of the verified customer: items with SKU and price, total, amount
        already refunded, status and days since delivery.

        Args:
            order_id: the order's id, e.g. "O-1201"
        """
        return _copy_order(self._verified_order(order_id))

    @tool(seconds=15)
    def search_products(self, query: str) -> list[dict[str, Any]]:
        """Search the catalog by product name: SKU, name, price and stock of each match.

        Args:
            query: part of a product name, e.g. "backpack"; an empty string lists the catalog
        """
        q = query.lower()
        return [p for p in self.products.values() if q in p["name"]]

    @tool(seconds=60, irreversible=True)
    def refund(self, order_id: str, amount: float) -> dict[str, Any]:
        """Refund money on a delivered order of the verified customer. Cannot be undone.

        Args:
            order_id: the order to refund
            amount: the amount to refund, in dollars; at most what is not yet refunded of the
                order's total
        """
        o = self._verified_order(order_id)
        if o["status"] != "delivered":
            raise ToolError(f"order {order_id} is {o['status']}: only delivered orders can be "
                            "refunded")
        if not 0 < float(amount) <= o["total"] - o["refunded"] + 1e-9:
            raise ToolError(f"amount must be between 0 and {money(o['total'] - o['refunded'])}")
        self._apply(self.orders, "refund", {"order_id": order_id, "amount": amount})
        return {"order_id": order_id, "refunded": round(float(amount), 2)}

    @tool(seconds=45, irreversible=True)
    def cancel(self, order_id: str) -> dict[str, Any]:
        """Cancel a pending or processing order of the verified customer. Cannot be undone.

        Args:
            order_id: the order to cancel
        """
        o = self._verified_order(order_id)
        if o["status"] not in ("pending", "processing"):
            raise ToolError(f"order {order_id} is {o['status']} and cannot be cancelled")
        self._apply(self.orders, "cancel", {"order_id": order_id})
        return {"order_id": order_id, "status": "cancelled"}

    @tool(seconds=90, irreversible=True)
    def exchange(self, order_id: str, sku: str, new_sku: str) -> dict[str, Any]:
        """Exchange one item of a delivered order of the verified customer for another
        product. Cannot be undone.

        Args:
            order_id: the order the item belongs to
            sku: the SKU of the item in the order to send back
            new_sku: the SKU of the catalog product to send instead
        """
        o = self._verified_order(order_id)
        if not any(i["sku"] == sku for i in o["items"]):
            raise ToolError(f"order {order_id} has no item {sku!r}")
        if new_sku not in self.products:
            raise ToolError(f"no product {new_sku!r}")
        if o["status"] != "delivered":
            raise ToolError(f"order {order_id} is {o['status']}: only delivered orders can be "
                            "exchanged")
        self._apply(self.orders, "exchange", {"order_id": order_id, "sku": sku,
                                              "new_sku": new_sku})
        return {"order_id": order_id, "exchanged": sku, "for": new_sku}

    @tool(seconds=30)
    def reply(self, message: str) -> dict[str, Any]:
        """Send a message to the customer.

        Args:
            message: the text the customer reads
        """
        self.messages.append(str(message))
        self._changed(messages=True)
        return {"sent": True}

    def _verified_order(self, order_id: str) -> dict[str, Any]:
        if self.verified is None:
            raise ToolError("policy: verify the customer's identity first (find_customer)")
        o = self.orders.get(order_id)
        if o is None:
            raise ToolError(f"no order {order_id!r}")
        if o["customer_id"] != self.verified:
            raise ToolError(f"order {order_id} does not belong to the verified customer")
        return o

    def _apply(self, orders: dict[str, Any], tool: str, args: dict[str, Any]) -> None:
        """The effect of an irreversible action on an orders table: the live one, or the copy
        the expected final state is built on."""
        if orders is self.orders:
            self.touched.add(args["order_id"])
            self._changed(orders=True)
        # Copy on write: the tables share the orders nobody changed (see `reset`).
        o = orders[args["order_id"]] = _copy_order(orders[args["order_id"]])
        if tool == "refund":
            o["refunded"] = round(o["refunded"] + float(args["amount"]), 2)
            o["status"] = "refunded" if o["refunded"] >= o["total"] - 1e-9 else o["status"]
        elif tool == "cancel":
            o["status"] = "cancelled"
        elif tool == "exchange":
            new = self.products[args["new_sku"]]
            for it in o["items"]:
                if it["sku"] == args["sku"]:
                    it.update(sku=new["sku"], name=new["name"], price=new["price"])
                    break
            o["status"] = "exchange_requested"

    def on_message(self, text: str) -> Observation:
        self.messages.append(text)
        self._changed(messages=True)
        return Observation()

    def human_answer(self, question: str) -> str:
        """A supervisor who knows the customer's intent resolves the ambiguity."""
        self.clarified = True
        self._changed()
        oid = self.expected["order_id"]
        return f"The customer means order {oid}."

    # --- ground truth ----------------------------------------------------------------
    def judge(self, d: Decision) -> Verdict:
        exp = self.expected
        if d.kind == "ask_human":
            need = not self.clarified
            return _fixed(True, "ambiguous request: asking is right" if need
                          else "nothing was ambiguous", need)
        if d.kind == "finish":
            ok = bool(self.messages)
            return _fixed(ok, "replied before finishing" if ok
                          else "finished without replying to the customer")
        if d.kind == "message":
            return _fixed(True, "message")
        tool, args = d.tool, d.args
        unclarified = not self.clarified
        if tool == "find_customer":
            c = self.customers[self.customer_id]
            ok = args.get("email") == c["email"] or (args.get("name") == c["name"]
                                                     and args.get("zip") == c["zip"])
            return _fixed(ok, "right customer" if ok else "wrong identity")
        if tool in ("list_orders", "search_products"):
            ok = tool != "list_orders" or args.get("customer_id") == self.customer_id
            return _fixed(ok, "read-only lookup")
        if tool == "get_order":
            if unclarified:
                return _fixed(False, "guessed one of several matching orders instead of asking",
                              True)
            if args.get("order_id") == exp["order_id"]:
                return _fixed(True, "the order in question")
            return Verdict(correct=False, reason=f"looked up {args.get('order_id')}, the "
                           f"customer means {exp['order_id']}")
        if tool in IRREVERSIBLE:
            if unclarified:
                return _fixed(False, "acted on an ambiguous request without asking", True)
            want = exp["action"]
            if want is None:
                return Verdict(correct=False, help_needed=True,
                               reason=f"policy forbids {tool} here: {', '.join(exp['facts'])}")
            if tool == want["tool"] and all(
                    _same(args.get(k), v) for k, v in want["args"].items()):
                return _fixed(True, "as policy requires", False)
            return Verdict(correct=False, help_needed=True, reason=f"expected {want['tool']}"
                           f"({want['args']}), got {tool}({args})")
        if tool == "reply":
            text = str(args.get("message", "")).lower()
            missing = [f for f in exp["facts"] if f.lower() not in text]
            if self.actions_pending():
                return _fixed(False, "replied before resolving the request")
            if not missing:
                return _fixed(True, "states the outcome")
            return Verdict(correct=False, reason=f"reply misses {missing}")
        return Verdict(correct=False, reason=f"unknown tool {tool!r}")

    def reference_decision(self, decision: Decision) -> Decision | None:
        """What a careful agent following the policy would do instead of `decision`."""
        exp, node = self.expected, decision.node
        c = self.customers[self.customer_id]

        def call(tool: str, **args: Any) -> Decision:
            return Decision(kind="tool_call", node=node, tool=tool, args=args)

        tool = decision.tool
        if decision.kind == "finish" and not self.messages:
            return self._reference_reply(node)
        if decision.kind != "tool_call":
            return None
        if tool == "find_customer":
            return call("find_customer", email=c["email"])
        if tool == "list_orders":
            return call("list_orders", customer_id=self.customer_id)
        if not self.clarified and (tool == "get_order" or tool in IRREVERSIBLE):
            return Decision(kind="ask_human", node=node, text="Which order does the customer "
                            "mean?")
        if tool == "get_order":
            return call("get_order", order_id=exp["order_id"])
        if tool in IRREVERSIBLE:
            want = exp["action"]
            if want is None:  # the policy calls for no action: tell the customer why instead
                return self._reference_reply(node)
            return call(want["tool"], **want["args"])
        if tool == "reply":
            return self._reference_reply(node)
        return None

    def _reference_reply(self, node: str) -> Decision:
        text = "Update on your request: " + ", ".join(self.expected["facts"]) + "."
        return Decision(kind="tool_call", node=node, tool="reply", args={"message": text})

    def actions_pending(self) -> bool:
        want = self.expected["action"]
        if want is None:
            return False
        return self.orders[want["args"]["order_id"]] == self.initial_orders[
            want["args"]["order_id"]]

    def status(self) -> WorldStatus:
        return _OPEN  # the world never ends an episode itself (asked after every step)

    def outcome(self) -> dict[str, Any]:
        exp = self.expected
        state_ok = self.orders == exp["orders"]
        said = " ".join(self.messages).lower()
        missing = [f for f in exp["facts"] if f.lower() not in said]
        success = state_ok and not missing
        reason = "resolved per policy" if success else "; ".join(
            x for x in ["orders differ from the policy's outcome" if not state_ok else "",
                        f"reply misses {missing}" if missing else ""] if x)
        return {"state": {"orders": self.orders}, "expected_state": {"orders": exp["orders"]},
                "messages": self.messages, "success": success, "reason": reason,
                "score": float(success), "expected_facts": exp["facts"]}

    # --- state -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"orders": self.orders, "messages": self.messages, "verified": self.verified,
                "clarified": self.clarified}

    def digest(self) -> str:
        # Untouched orders are a function of the seed and the task, so hashing the seed and
        # the touched orders identifies the state as exactly as hashing everything, at a
        # fraction of the cost. The loop digests after every step and most steps change
        # nothing, so a digest is kept until the state changes (`_changed`), and the JSON of
        # the touched orders and of the messages until they do. The blob is, byte for byte,
        # `_compact_json([seed, touched orders, messages, verified, clarified])`.
        if self._digest is None:
            if self._touched_json is None:
                self._touched_json = _compact_json(
                    {k: self.orders[k] for k in sorted(self.touched)})
            if self._messages_json is None:
                self._messages_json = _compact_json(self.messages)
            v, c = self.verified, self.clarified
            blob = (f"[{self._seed_json},{self._touched_json},{self._messages_json},"
                    f"{'null' if v is None else _compact_json(v)},"
                    f"{'true' if c is True else 'false' if c is False else _compact_json(c)}]")
            self._digest = hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()
        return self._digest

    def _changed(self, orders: bool = False, messages: bool = False) -> None:
        """Every change to the state comes here: the next digest is computed afresh, and the
        JSON of the touched orders or of the messages when they changed."""
        self._digest: str | None = None
        if orders:
            self._touched_json: str | None = None
        if messages:
            self._messages_json: str | None = None

    def load_state(self, state: dict[str, Any]) -> None:
        self.orders = copy.deepcopy(state["orders"])
        self.touched = {k for k, o in self.orders.items() if o != self.initial_orders.get(k)}
        self.messages = list(state["messages"])
        self.verified = state["verified"]
        self.clarified = state["clarified"]
        self._changed(orders=True, messages=True)


# The tools that change orders for good, as the class declares them (refund, cancel, exchange).
IRREVERSIBLE = frozenset(name for name, t in RetailWorld.declared_tools.items()
                         if t.spec.irreversible)


def _copy_order(o: dict[str, Any]) -> dict[str, Any]:
    """Copy of one order (a flat dict with one list of flat items): deepcopy is 10x slower."""
    return {**o, "items": [dict(i) for i in o["items"]]}


_OPEN = WorldStatus()
# A background order's status by its draw; `reset` reads "delivered" as index >= 2.
_BACKGROUND_STATUSES = ("pending", "processing", "delivered", "delivered")
# json.dumps(..., separators=(",", ":")) without building an encoder at every digest.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode
# Each first name's full names and email heads (by last name), for the background customers.
_FULL_NAMES = [[f"{first} {last}" for last in LAST_NAMES] for first in FIRST_NAMES]
_EMAIL_HEADS = [[f"{first.lower()}.{last.lower()}" for last in LAST_NAMES]
                for first in FIRST_NAMES]
# One catalog line and total per product, copied into each background order.
_LINES = {sku: {"sku": sku, "name": n, "price": p, "qty": 1} for sku, n, p in CATALOG}
_TOTALS = {sku: round(p * 1, 2) for sku, _n, p in CATALOG}


@lru_cache(maxsize=64)
def _ids(prefix: str, start: int, n: int) -> tuple[str, ...]:
    """`n` consecutive ids from `start` (the background customers' and orders', the same
    every episode of a scenario)."""
    return tuple(f"{prefix}{start + i}" for i in range(n))


def _below(rng: Any) -> Any:
    """`rng._randbelow`, as `Random.choice` and `Random.randint` use it (CPython's
    getrandbits rejection sampling): the same draws, a function call cheaper."""
    bits = rng.getrandbits

    def below(n: int) -> int:
        k = n.bit_length()
        r = bits(k)
        while r >= n:
            r = bits(k)
        return r

    return below


@cache  # called with literal reasons only: a few dozen verdicts at most
def _fixed(correct: bool, reason: str, help_needed: bool | None = None) -> Verdict:
    """A verdict whose fields are all constants, built once (Verdict is frozen). Built with
    exactly the fields given, as `Verdict(...)` at the call site would be."""
    if help_needed is None:
        return Verdict(correct=correct, reason=reason)
    return Verdict(correct=correct, help_needed=help_needed, reason=reason)


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, float) or isinstance(a, float):
        try:
            return abs(float(a) - float(b)) < 0.005
        except (TypeError, ValueError):
            return False
    return a == b
