"""A scripted operator for the vending world, with the failure modes reported for real models.

The competent operator researches the market, asks every supplier for a price list, buys from
the cheapest well-reviewed one, keeps every slot stocked from storage, prices a little above
the market for products customers are not sensitive to, collects cash, and reorders with days
of margin over the supplier's lead time, learning demand from the morning sales reports.

Its decisions name the nodes plan_day, check_email, order_stock, restock, set_price,
collect_cash and wait.

`failure` switches on a derailment from `failure_day` on (Vending-Bench's failure modes):
- `forget_orders`: never reorders again; the machine sells out and stays empty.
- `misread_deliveries`: reads an order confirmation as the delivery, tries to stock goods
  still on the road, and when that fails writes the product off and ignores its deliveries.
- `loop`: repeats one action (`loop_tool`) forever.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from trialrun.agents.base import Agent, AgentContext, AgentOptions, Feedback
from trialrun.registry import register
from trialrun.trajectory import Decision, Observation

MARKUP = {"low": 1.2, "medium": 1.1, "high": 1.0}  # by price sensitivity
ELASTICITY_GUESS = {"low": 1.25, "medium": 1.55, "high": 1.8}
MIN_RATING = 4.0  # suppliers rated below this are not worth the risk


class VendingAgentOptions(AgentOptions):
    """`agent.params` of scripted:vending: its failure mode and its operating thresholds."""

    failure: Literal["none", "forget_orders", "misread_deliveries", "loop"] = "none"
    failure_day: int = Field(120, ge=0, description="first simulated day of the failure")
    safety_days: float = Field(5.0, ge=0, description="reorder at lead time + this much cover")
    order_days: float = Field(10.0, gt=0, description="days of sales one order adds")
    restock_below: float = Field(0.5, gt=0, le=1, description="restock a slot below this fill")
    collect_above: float = Field(30.0, ge=0, description="collect once the machine holds this")
    reserve_fees: int = Field(5, ge=0, description="daily fees kept in the bank when ordering")
    loop_tool: Literal["inspect_machine", "check_balance", "inspect_storage"] = "inspect_machine"


def _call(node: str, tool: str, **args: Any) -> Decision:
    return Decision(kind="tool_call", node=node, tool=tool, args=args)


@register("agent", "scripted:vending")
class ScriptedVendingAgent(Agent):
    # every node its decisions name
    nodes = frozenset(("plan_day", "check_email", "order_stock", "restock", "set_price",
                       "collect_cash", "wait"))
    Options = VendingAgentOptions
    options: VendingAgentOptions
    waits = False  # pure computation

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        d = first.data
        self.slot_names: list[str] = d["slots"]
        small_rows = set(d["small_rows"])
        self.small = [s[0] in small_rows for s in self.slot_names]
        self.cap = [d["capacity"]["small" if sm else "large"] for sm in self.small]
        self.fee = round(d["daily_fee"] * 100)
        self.day = 0
        self.cash = round(d["start_cash"] * 100)
        self.machine_cash = 0
        self.unread = 0
        # Beliefs about the world, kept from tool results (cents, units).
        self.slots: list[list[Any]] = [[None, 0, 0] for _ in self.slot_names]
        self.storage: dict[str, int] = {}
        self.transit: dict[str, int] = {}
        self.est: dict[str, float] = {}  # demand per day at the set price
        self.slow: dict[str, float] = {}
        self.market: dict[str, dict[str, Any]] = {}
        self.directory: dict[str, dict[str, Any]] = {}  # email -> name, rating
        self.quotes: dict[str, dict[str, Any]] = {}  # email -> prices (cents), min, lead
        self.asked: set[str] = set()
        self.last_order: dict[str, dict[str, int]] = {}  # email -> lines, until confirmed
        self.plan: list[str | None] = []  # product per slot
        self.target: dict[str, int] = {}  # price per product, cents
        self.written_off: set[str] = set()
        self.today: set[Any] = set()  # actions already taken today
        self.ordering: dict[str, int] = {}  # the lines of the order being sent
        self.on_result = {"research_products": self._on_research_products,
                          "read_email": self._on_read_email,
                          "inspect_storage": self._on_inspect_storage,
                          "stock_slot": self._on_stock_slot, "set_price": self._on_set_price,
                          "collect_cash": self._on_collect_cash,
                          "send_email": self._on_send_email}

    def failing(self, mode: str) -> bool:
        return self.options.failure == mode and self.day >= self.options.failure_day

    # --- deciding --------------------------------------------------------------------
    async def decide(self, obs: Observation) -> Decision:
        if self.failing("loop"):
            return _call("plan_day", self.options.loop_tool)
        if not self.market:
            return _call("plan_day", "research_products")
        for email in sorted(self.directory):
            if email not in self.asked:
                self.asked.add(email)
                return _call("order_stock", "send_email", to=email, subject="Price list",
                             body="Hello, please send me your price list.")
        if self.unread > 0:
            return _call("check_email", "read_email")
        if not self.plan:
            self._plan_machine()
        weekly = (self.day % 7 == 3 and "inspect" not in self.today
                  and not self.failing("misread_deliveries"))  # it would see the truth
        if weekly or "resync" in self.today:
            self.today.add("inspect")
            self.today.discard("resync")
            return _call("plan_day", "inspect_storage")
        return (self._restock() or self._price() or self._collect() or self._order()
                or _call("wait", "wait_for_next_day"))

    def _plan_machine(self) -> None:
        """Pick the six most profitable products of each size and their prices."""
        def margin(pid: str) -> float:
            supplier = self._supplier(pid)
            cost = self.quotes[supplier]["prices"][pid] if supplier else 10**6
            return self._prior(pid) * (self._price_for(pid) - cost)

        for pid in self.market:
            self.target[pid] = self._price_for(pid)
            self.est[pid] = self.slow[pid] = self._prior(pid)
        by_size = {size: sorted((p for p, i in self.market.items() if i["size"] == size
                                 and self._supplier(p)), key=margin, reverse=True)
                   for size in ("small", "large")}
        self.plan = []
        for sm in self.small:
            options = by_size["small" if sm else "large"]
            self.plan.append(options.pop(0) if options else None)

    def _price_for(self, pid: str) -> int:
        info = self.market[pid]
        return round(info["market_price"] * MARKUP[info["price_sensitivity"]] * 20) * 5

    def _prior(self, pid: str) -> float:
        info = self.market[pid]
        ratio = self._price_for(pid) / (info["market_price"] * 100)
        return info["typical_daily_sales"] * ratio ** -ELASTICITY_GUESS[info["price_sensitivity"]]

    def _supplier(self, pid: str) -> str | None:
        """The cheapest well-reviewed supplier that quoted this product."""
        ok = [(q["prices"][pid], q["lead"], e) for e, q in self.quotes.items()
              if pid in q["prices"] and self.directory[e]["rating"] >= MIN_RATING]
        return min(ok)[2] if ok else None

    def _restock(self) -> Decision | None:
        for i, p in enumerate(self.plan):
            if p is None or p in self.written_off or ("stock", i) in self.today:
                continue
            held, qty, _ = self.slots[i]
            have = self.storage.get(p, 0)
            if held in (None, p) and qty < self.options.restock_below * self.cap[i] and have > 0:
                self.today.add(("stock", i))
                return _call("restock", "stock_slot", slot=self.slot_names[i], product=p,
                             qty=min(have, self.cap[i] - qty))
        return None

    def _price(self) -> Decision | None:
        for i, (held, _, price) in enumerate(self.slots):
            if held is not None and held == self.plan[i] and price != self.target[held]:
                return _call("set_price", "set_price", slot=self.slot_names[i],
                             price=self.target[held] / 100)
        return None

    def _collect(self) -> Decision | None:
        if "collect" in self.today or self.machine_cash <= 0:
            return None
        if self.machine_cash >= self.options.collect_above * 100 or self.cash < 20 * self.fee:
            self.today.add("collect")
            return _call("collect_cash", "collect_cash")
        return None

    def _order(self) -> Decision | None:
        if self.failing("forget_orders"):
            return None
        for email, lines in self._needs().items():
            if ("order", email) in self.today:
                continue
            q = self.quotes[email]
            budget = self.cash - self.options.reserve_fees * self.fee
            lines = self._fit(lines, q, budget)
            if not lines and self.machine_cash > 0 and "collect" not in self.today:
                self.today.add("collect")
                return _call("collect_cash", "collect_cash")
            self.today.add(("order", email))
            if not lines:
                continue
            self.ordering = lines
            body = "Please deliver:\n" + "\n".join(f"{n} x {p}" for p, n in lines.items())
            return _call("order_stock", "send_email", to=email, subject="Order", body=body)
        return None

    def _position(self, pid: str) -> int:
        return (sum(q for p, q, _ in self.slots if p == pid) + self.storage.get(pid, 0)
                + self.transit.get(pid, 0))

    def _needs(self) -> dict[str, dict[str, int]]:
        """Products to reorder, grouped by supplier, most urgent first."""
        urgent = []
        for pid in dict.fromkeys(p for p in self.plan if p is not None):
            email = self._supplier(pid)
            if email is None or pid in self.written_off:
                continue
            q, est = self.quotes[email], max(self.est[pid], self.slow[pid])
            pos, safety = self._position(pid), self.options.safety_days
            if pos < est * (q["lead"] + safety):
                want = math.ceil(est * (q["lead"] + safety + self.options.order_days))
                urgent.append((pos / max(est, 1e-6), email, pid, max(q["min"], want - pos)))
        out: dict[str, dict[str, int]] = {}
        for _, email, pid, n in sorted(urgent):
            out.setdefault(email, {})[pid] = n
        return out

    @staticmethod
    def _fit(lines: dict[str, int], quote: dict[str, Any], budget: int) -> dict[str, int]:
        """Shrink an order to the budget: to minimum quantities, then drop the least urgent."""
        def cost(ls: dict[str, int]) -> int:
            return sum(quote["prices"][p] * n for p, n in ls.items())

        if cost(lines) <= budget:
            return lines
        lines = {p: quote["min"] for p in lines}
        while lines and cost(lines) > budget:
            lines.popitem()
        return lines

    # --- learning from results -------------------------------------------------------
    async def feedback(self, fb: Feedback) -> None:
        d, res = fb.decision, fb.result
        if d.kind != "tool_call" or res is None:
            return
        if not res.ok:
            self._failed(d)
            return
        out = res.output if isinstance(res.output, dict) else {}
        if "yesterday" in out:  # a morning report (also when a human waited in our place)
            self._morning(out)
            return
        if "overnight" in out:
            self._morning(out["overnight"])
        handler = self.on_result.get(d.tool or "")
        try:
            if handler is not None:
                handler(d.args, out)
        except (KeyError, TypeError):  # a human took over with another call: look again
            self.today.add("resync")

    def _failed(self, d: Decision) -> None:
        if d.tool == "stock_slot":
            if self.failing("misread_deliveries"):
                self.written_off.add(d.args["product"])  # "the supplier never delivers it"
            else:
                self.storage[d.args["product"]] = 0
                self.today.add("resync")

    def _morning(self, report: dict[str, Any]) -> None:
        self.day = report["day"]
        self.today = set()
        self.cash = round(report["cash"] * 100)
        self.machine_cash = round(report["machine_cash"] * 100)
        self.unread = report["unread_emails"]
        sold: dict[str, int] = {}
        left: dict[str, int] = {}
        for name, s in report["yesterday"]["by_slot"].items():
            i = self.slot_names.index(name)
            self.slots[i][1] = s["left"]
            sold[s["product"]] = sold.get(s["product"], 0) + s["sold"]
            left[s["product"]] = left.get(s["product"], 0) + s["left"]
        for p, n in sold.items():
            if p not in self.est:
                continue
            fast, slow = 0.85 * self.est[p] + 0.15 * n, 0.95 * self.slow[p] + 0.05 * n
            if left[p] > 0:  # a sold-out day only says demand was at least this
                self.est[p], self.slow[p] = fast, slow
            else:
                self.est[p], self.slow[p] = max(self.est[p], fast), max(self.slow[p], slow)

    def _on_research_products(self, args: dict[str, Any], out: dict[str, Any]) -> None:
        self.market = {p["id"]: p for p in out["products"]}
        self.directory = {s["email"]: s for s in out["suppliers"]}

    def _on_read_email(self, args: dict[str, Any], out: dict[str, Any]) -> None:
        self.unread = out["unread_left"]
        misread = self.failing("misread_deliveries")
        for e in out["emails"]:
            data, sender = e.get("data") or {}, e["from"]
            kind = data.get("kind")
            if kind == "price_list":
                self.quotes[sender] = {"prices": {p: round(c * 100)
                                                  for p, c in data["prices"].items()},
                                       "min": data["min_order"], "lead": data["lead_days"]}
            elif kind == "order_confirmation":
                self.last_order.pop(sender, None)
                if misread:  # takes the confirmation for the delivery
                    for p, n in data["lines"]:
                        self.transit[p] = max(0, self.transit.get(p, 0) - n)
                        self.storage[p] = self.storage.get(p, 0) + n
            elif kind == "order_rejected":
                for p, n in self.last_order.pop(sender, {}).items():
                    self.transit[p] = max(0, self.transit.get(p, 0) - n)
                self.today.add("resync")
            elif kind == "delivery" and not misread:
                for p, ordered, got in data["lines"]:
                    self.transit[p] = max(0, self.transit.get(p, 0) - ordered)
                    self.storage[p] = self.storage.get(p, 0) + got

    def _on_inspect_storage(self, args: dict[str, Any], out: dict[str, Any]) -> None:
        self.storage = dict(out["storage"])
        self.transit = {}
        for o in out["open_orders"]:
            for p, n in o["lines"].items():
                self.transit[p] = self.transit.get(p, 0) + n

    def _on_stock_slot(self, args: dict[str, Any], out: dict[str, Any]) -> None:
        i = self.slot_names.index(args["slot"])
        self.slots[i][0], self.slots[i][1] = out["product"], out["qty"]
        if self.failing("misread_deliveries"):
            self.storage[out["product"]] = self.storage.get(out["product"], 0) - args["qty"]
        else:
            self.storage[out["product"]] = out["storage_left"]

    def _on_set_price(self, args: dict[str, Any], out: dict[str, Any]) -> None:
        self.slots[self.slot_names.index(args["slot"])][2] = round(out["price"] * 100)

    def _on_collect_cash(self, args: dict[str, Any], out: dict[str, Any]) -> None:
        self.cash = round(out["cash"] * 100)
        self.machine_cash = 0

    def _on_send_email(self, args: dict[str, Any], out: dict[str, Any]) -> None:
        self.unread += 1  # suppliers answer at once
        if args.get("subject") != "Order":
            return
        email, lines = args["to"], self.ordering
        prices = self.quotes[email]["prices"]
        for p, n in lines.items():
            self.transit[p] = self.transit.get(p, 0) + n
        self.cash -= sum(prices[p] * n for p, n in lines.items())
        self.last_order[email] = lines
