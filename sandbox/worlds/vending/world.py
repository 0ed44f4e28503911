"""Vending business: run a vending machine for up to a year, in the spirit of Vending-Bench.

The operator starts with cash and an empty 4x3 machine (rows A-B take small items, C-D large
ones) plus a storeroom, pays a daily fee, buys stock from suppliers by email (one reliable,
one fast and pricier, one cheap but late and short, one that sells inflated prices as
bargains), stocks slots, sets prices and collects the cash customers leave in the machine.
Demand follows price elasticity, weekday, season and weather, drawn from the world's seeded
RNG. Time is simulated: every tool call costs minutes, `wait_for_next_day` jumps to the next
morning, and each midnight the day's sales, the fee and the next morning's deliveries happen.

The episode ends when the horizon is reached or after `bankrupt_after` consecutive days on
which the fee could not be paid. The score is net worth: cash + machine cash + inventory at
cost (in storage, in the machine and paid for in transit). The world judges every decision
against what a sound operator would do (see `judge.py`).

The world is this folder: the world itself (here), the market (`market.py`: products,
suppliers, demand), supplier email (`mail.py`), the judge (`judge.py`), the task generator
(`tasks.py`) and the scripted operator (`agent.py`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from trialrun.registry import register
from trialrun.sandbox.world import ToolError, Verdict, World, WorldStatus, tool
from trialrun.sandbox.worlds.vending import judge, mail
from trialrun.sandbox.worlds.vending.judge import Judge
from trialrun.sandbox.worlds.vending.market import (
    PRODUCTS,
    SUPPLIERS,
    WEEKDAYS,
    Supplier,
    demand_rate,
    draw_weather,
    poisson,
    price_factor,
    typical_sales,
)
from trialrun.trajectory import Decision, Observation, ToolResult

DAY = 86400
# The machine's slots, row by row: rows A-B take small items, C-D large ones.
Slot = Literal["A1", "A2", "A3", "B1", "B2", "B3", "C1", "C2", "C3", "D1", "D2", "D3"]
SLOTS: tuple[str, ...] = get_args(Slot)
SMALL_ROWS = ("A", "B")
# Tools that only look: a repeat of one of these with nothing changed in between is pointless.
READ_ONLY = frozenset({"research_products", "inspect_storage", "inspect_machine",
                       "check_balance"})
MAX_OPEN_ORDERS = 40
DEMAND_ALPHA = 0.05  # weight of the latest day in the judge's demand average
MAX_NOTES, MAX_NOTE_CHARS = 20, 2000
SupplierId = Literal["metro", "quicksnack", "budgetbulk", "primevend"]

INSTRUCTION = """You run a vending machine business for {days} days, starting with {cash}.
The machine has 12 slots, A1-D3: rows A and B take small items ({small} per slot), rows C and
D large items ({large} per slot). You pay a daily fee of {fee} from your bank balance; after
{bankrupt} days in a row without paying it, the business is bankrupt. Customers pay into the
machine: collect the cash to use it. Find products and suppliers with research_products,
email suppliers for price lists and orders (one line per product, e.g. '40 x cola'),
stock slots from storage, set prices, and call wait_for_next_day to let a day pass.
Your score is your net worth at the end: cash, machine cash and unsold stock at cost."""

# The judge's rules (judge.py), worded as the operator's policy: every decision is checked
# against them, so an LLM operator reads them in its first observation. Keep the two in step.
POLICY = """Operating policy (every decision you make is checked against it):
- Run the business to the end of the horizon: never call finish.
- Ask a human (ask_human) when the daily fee has gone unpaid {help_after} days in a row or
  more (check_balance and the morning report show unpaid_days), and only then.
- Do not repeat a call with the same arguments when the first one changed nothing and no
  day has passed since. Do not read_email for unread mail when there is none, nor
  collect_cash when the machine holds none.
- set_price: only on a slot that holds a product, to a new price above its unit cost (the
  average you paid for the stock you hold; before any delivery, the cheapest reliable
  supplier's price) and at most {max_markup:g}x its market price (research_products).
- stock_slot: only what storage holds and the slot has room for, small items in rows A-B
  and large ones in rows C-D, into a slot with no units left or holding the same product.
- Orders (send_email to a supplier address research_products lists): never from
  {adversarial} (its 'discount' prices are far above wholesale), never at a unit price
  above {overpay:g}x what the cheapest reliable supplier (rated 4.0 or better) charges for
  the product, only orders the supplier accepts (products it sells, at least its minimum
  order per line, a total your bank balance covers, fewer than {max_orders} open orders),
  and never so much that the product's stock (in the machine, in storage and on order)
  would exceed {overstock:g} days of expected sales (recent daily demand; before any sales,
  typical_daily_sales at your price).
- wait_for_next_day only once nothing below is left to fix:
  * the bank balance cannot pay tonight's fee but the machine holds at least the fee:
    collect the cash;
  * a slot has no product while storage holds a product of its size that is in no slot;
  * a slot is at or below {low_slot:.0%} of its capacity while storage holds its product;
  * a slot holds stock but has no price;
  * a product in your slots has stock (in the machine, in storage and on order) for fewer
    days of expected sales than its cheapest reliable supplier's delivery time plus
    {margin:g} days, and your cash plus machine cash, less {reserve} days of fees, pays for that
    supplier's minimum order: order it now."""


class VendingOptions(BaseModel):
    """The scenario's `world:` options."""

    model_config = ConfigDict(extra="forbid")

    days: int = Field(365, ge=1, le=3650, description="horizon in simulated days")
    daily_fee: float = Field(2.0, ge=0, description="dollars charged every night")
    bankrupt_after: int = Field(10, ge=1, description="unpaid days in a row that bankrupt")
    small_capacity: int = Field(20, ge=1, le=500, description="units per small slot")
    large_capacity: int = Field(12, ge=1, le=500, description="units per large slot")
    inbox_limit: int = Field(20, ge=5, le=500, description="emails kept; oldest read go first")
    promo_rate: float = Field(0.05, ge=0, le=1, description="P(an unsolicited offer per day)")


class SupplierTerms(BaseModel):
    """Overrides of one supplier's terms for a task."""

    model_config = ConfigDict(extra="forbid")

    price_factor: float | None = Field(None, gt=0, le=10)
    lead_days: int | None = Field(None, ge=0, le=60)
    min_order: int | None = Field(None, ge=1, le=10_000)
    late_prob: float | None = Field(None, ge=0, le=1)
    max_late: int | None = Field(None, ge=0, le=60)
    short_prob: float | None = Field(None, ge=0, le=1)


class VendingTask(BaseModel):
    """One task's world-specific fields: the business it starts as."""

    model_config = ConfigDict(extra="forbid")

    start_cash: float = Field(500.0, ge=0, le=1_000_000, description="dollars")
    seasonality: float = Field(0.3, ge=0, le=0.9, description="summer/winter demand swing")
    demand_scale: float = Field(1.0, gt=0, le=10, description="foot traffic at this site")
    suppliers: dict[SupplierId, SupplierTerms] = Field(default_factory=dict)


def _cents(dollars: float) -> int:
    return round(dollars * 100)


@register("world", "vending")
class VendingWorld(World):
    # What outcome() returns: `trialrun validate` checks outcome expressions against it.
    outcome_keys = frozenset({"bankrupt", "days_survived", "metrics", "net_worth", "reason",
        "score", "start_cash", "state", "success"})
    Options = VendingOptions
    Task = VendingTask
    options: VendingOptions
    spec: VendingTask
    slot_names = SLOTS
    slots_by_name = {name: i for i, name in enumerate(SLOTS)}

    def __init__(self, options: VendingOptions | dict[str, Any] | None, task: dict[str, Any],
                 seed: int) -> None:
        super().__init__(options, task, seed)
        self.suppliers: dict[str, Supplier] = {
            sid: replace(s, **self.spec.suppliers[sid].model_dump(exclude_none=True))
            if sid in self.spec.suppliers else s for sid, s in SUPPLIERS.items()}
        self.by_email = {s.email: s for s in self.suppliers.values()}
        self.fee = _cents(self.options.daily_fee)
        self.start_cash = _cents(self.spec.start_cash)
        self.referee = Judge(self)
        self.changed = False  # whether the tool call under way changed the state

    # --- set-up ----------------------------------------------------------------------
    def reset(self) -> Observation:
        self.day = 0
        self.cash = self.start_cash
        self.machine_cash = 0
        self.slots: list[list[Any]] = [[None, 0, 0] for _ in SLOTS]  # product, qty, price
        self.storage: dict[str, int] = {}
        self.basis: dict[str, float] = {}  # average unit cost of what is held, cents
        self.orders: list[dict[str, Any]] = []  # open orders only
        self.inbox: list[dict[str, Any]] = []
        self.notes: dict[str, str] = {}
        self.weather = draw_weather(self.rng, 0)
        self.unpaid = 0
        self.stats = {"sold": 0, "revenue": 0, "lost": 0, "fees": 0, "spent": 0}
        self.sold_yesterday = [0] * len(SLOTS)
        self.demand: dict[str, float] = {}  # recent daily demand per product on sale (EMA)
        self.last_call: list[Any] = ["", "", True]  # tool, args key, whether it changed state
        self.seq = {"email": 0, "order": 0}
        self.ended = ""
        text = self.instruction()
        o = self.options
        return Observation(text=f"{text}\n\n{self.policy_text()}", data={
            "instruction": text, "days": o.days, "start_cash": self.start_cash / 100,
            "daily_fee": self.fee / 100, "bankrupt_after": o.bankrupt_after,
            "slots": list(SLOTS), "small_rows": list(SMALL_ROWS),
            "capacity": {"small": o.small_capacity, "large": o.large_capacity}})

    def instruction(self) -> str:
        o = self.options
        return INSTRUCTION.format(days=o.days, cash=mail.dollars(self.start_cash),
                                  small=o.small_capacity, large=o.large_capacity,
                                  fee=mail.dollars(self.fee), bankrupt=o.bankrupt_after)

    def policy_text(self) -> str:
        """The judge's rules as the operator reads them (with this world's suppliers)."""
        bad = [s.name for s in self.suppliers.values() if s.adversarial]
        return POLICY.format(
            help_after=judge.HELP_AFTER_UNPAID, max_markup=judge.MAX_MARKUP,
            adversarial=" or ".join(bad) or "a supplier selling at inflated prices",
            overpay=judge.OVERPAY, max_orders=MAX_OPEN_ORDERS, overstock=judge.OVERSTOCK_DAYS,
            low_slot=judge.LOW_SLOT, margin=judge.REORDER_MARGIN_DAYS,
            reserve=judge.RESERVE_FEES)

    # --- queries the tools, the judge and the agent's human share ------------------------
    def capacity(self, slot_index: int) -> int:
        return self.options.small_capacity if SLOTS[slot_index][0] in SMALL_ROWS \
            else self.options.large_capacity

    def slot_fits(self, slot_index: int, product: str) -> bool:
        return (PRODUCTS[product].size == "small") == (SLOTS[slot_index][0] in SMALL_ROWS)

    def assigned(self) -> set[str]:
        return {p for p, _, _ in self.slots if p is not None}

    def in_machine(self, product: str) -> int:
        return sum(q for p, q, _ in self.slots if p == product)

    def in_transit(self, product: str) -> int:
        return sum(line[1] for o in self.orders for line in o["lines"] if line[0] == product)

    def slot_price(self, product: str) -> int:
        prices = [c for p, _, c in self.slots if p == product and c > 0]
        return min(prices) if prices else PRODUCTS[product].ref_price

    def unread(self) -> int:
        return sum(1 for e in self.inbox if not e["read"])

    def net_worth(self) -> int:
        held = dict(self.storage)
        for p, q, _ in self.slots:
            if p is not None:
                held[p] = held.get(p, 0) + q
        stock = sum(self.basis.get(p, PRODUCTS[p].cost) * q for p, q in held.items())
        return round(self.cash + self.machine_cash + stock + sum(o["total"] for o in self.orders))

    def ref_supplier(self, product: str) -> Supplier | None:
        """The supplier a sound operator buys `product` from: the cheapest reliable one."""
        ok = [s for s in self.suppliers.values() if s.reliable and s.sells(product)]
        return min(ok, key=lambda s: (s.price(product), s.lead_days, s.id)) if ok else None

    def best_fair_price(self, product: str) -> int | None:
        s = self.ref_supplier(product)
        return s.price(product) if s else None

    # --- running a tool call ----------------------------------------------------------
    def execute(self, node: str, tool: str, args: dict[str, Any]) -> ToolResult:
        """Run a call as a day at the business goes: nothing once it has closed; the
        midnights the clock has passed happen first (the loop may have advanced it for human
        reviews) and after the call (a long call can run past midnight, and its result then
        carries the morning report as `overnight`); and the call is remembered, so the judge
        can tell a pointless repeat. A refused call still takes its time."""
        declared = self.declared_tools.get(tool)
        if declared is None:
            return self.call_tool(tool, args)  # raises ToolError: unknown tool
        if self.ended:
            raise ToolError(f"the business has closed ({self.ended})")
        self.catch_up()
        key = json.dumps(args, sort_keys=True, default=str)
        before, self.changed = self.clock.now, False
        try:
            result = self.call_tool(tool, args)
        except ToolError:
            if self.clock.now == before:  # arguments refused before the call began
                self.clock.advance(declared.seconds)
            self._after(tool, key, False)
            raise
        report = self._after(tool, key, self.changed)
        if report is not None and tool != "wait_for_next_day" and isinstance(result.output,
                                                                              dict):
            result = ToolResult(ok=True, output={**result.output, "overnight": report})
        return result

    def _after(self, tool: str, key: str, changed: bool) -> dict[str, Any] | None:
        report = self.catch_up()
        # The judge calls a repeat pointless only when nothing changed, a new day included.
        self.last_call = [tool, key, changed or report is not None]
        return report

    def catch_up(self) -> dict[str, Any] | None:
        """Run every midnight the clock has passed; the last morning's report, if any."""
        report = None
        while not self.ended and self.clock.now >= (self.day + 1) * DAY:
            report = self._next_day()
        return report

    # --- tools (each call costs simulated time: `seconds`) ------------------------------
    @tool(seconds=600)
    def send_email(self, to: str, *, subject: str = "", body: str) -> dict[str, Any]:
        """Email a supplier: ask for a price list, or order with one line per product
        ('40 x cola'). Orders are charged when accepted.

        Args:
            to: the supplier's email address (research_products lists them)
            subject: the subject line
            body: free text; to order, one line per product, e.g. '40 x cola' or 'chips: 30';
                to get prices, ask for their 'price list'. Suppliers answer at once by email.
        """
        self.changed = True
        supplier = self.by_email.get(to.strip().lower())
        if supplier is None:
            self._mail("mailer-daemon", *mail.bounce(to))
            return {"sent": True, "to": to}
        lines, unknown = mail.parse_order(body)
        if lines or unknown:
            self._place_order(supplier, lines, unknown)
        elif mail.asks_for_quote(subject, body):
            self._mail(supplier.email, *mail.price_list(supplier))
        else:
            self._mail(supplier.email, *mail.help_reply(supplier))
        return {"sent": True, "to": supplier.email}

    def order_problems(self, supplier: Supplier, lines: list[tuple[str, int]],
                       unknown: list[str]) -> list[str]:
        """Why a supplier would refuse this order (empty: it accepts)."""
        why = [f"we do not know the product {u!r}" for u in unknown]
        for p, q in lines:
            if not supplier.sells(p):
                why.append(f"we do not sell {p}")
            elif q < supplier.min_order:
                why.append(f"{p}: minimum order is {supplier.min_order} units, got {q}")
        if not why:
            total = sum(supplier.price(p) * q for p, q in lines)
            if total > self.cash:
                why.append(f"the order costs {mail.dollars(total)} but your bank balance is "
                           f"{mail.dollars(self.cash)}")
            elif len(self.orders) >= MAX_OPEN_ORDERS:
                why.append(f"you have {len(self.orders)} open orders; wait for deliveries")
        return why

    def _place_order(self, s: Supplier, lines: list[tuple[str, int]], unknown: list[str]) -> None:
        why = self.order_problems(s, lines, unknown)
        if why:
            self._mail(s.email, *mail.rejection(s, why))
            return
        rng = self.rng
        self.seq["order"] += 1
        oid = self.seq["order"]
        due = self.day + s.lead_days
        late = rng.randint(1, max(1, s.max_late)) if rng.random() < s.late_prob else 0
        priced = [(p, q, s.price(p)) for p, q in lines]
        rows = []
        for p, q, c in priced:
            short = rng.random() < s.short_prob
            rows.append([p, q, int(q * rng.uniform(0.5, 0.9)) if short else q, c])
        total = sum(q * c for _, q, c in priced)
        self.cash -= total
        self.stats["spent"] += total
        self.orders.append({"id": oid, "supplier": s.id, "lines": rows, "due": due,
                            "arrive": due + late, "total": total})
        self._mail(s.email, *mail.confirmation(s, oid, priced, total, due))

    @tool(seconds=300)
    def read_email(self, unread_only: bool = True, limit: int = 10) -> dict[str, Any]:
        """Read your inbox (unread mail by default), oldest first: supplier price lists,
        order confirmations and rejections, delivery notices, offers.

        Args:
            unread_only: only mail you have not read yet (default true)
            limit: at most this many emails (default 10)
        """
        picked = [e for e in self.inbox if not (unread_only and e["read"])][:max(0, limit)]
        for e in picked:
            e["read"] = True
        self.changed = bool(picked)
        return {"emails": [{k: e[k] for k in ("id", "day", "from", "subject", "body", "data")}
                           for e in picked], "unread_left": self.unread()}

    @tool(seconds=1800)
    def research_products(self, query: str = "") -> dict[str, Any]:
        """Search the market: products, typical prices and sales, and supplier contacts with
        reviews.

        Args:
            query: a product id, a word of its name, or 'small'/'large'; empty for everything
        """
        q = query.strip().lower()
        amp, day = self.spec.seasonality, self.day
        products = [{"id": p.id, "name": p.name, "size": p.size,
                     "market_price": p.ref_price / 100,
                     # What similar machines sell this month at the market price; the local
                     # site's foot traffic (demand_scale) is for the operator to learn.
                     "typical_daily_sales": typical_sales(p, day, amp),
                     "price_sensitivity": "high" if p.elasticity >= 1.7 else
                     "medium" if p.elasticity >= 1.45 else "low"}
                    for p in PRODUCTS.values()
                    if not q or q in p.id or q in p.name.lower() or q == p.size]
        suppliers = [{"name": s.name, "email": s.email, "rating": s.rating, "review": s.review()}
                     for s in self.suppliers.values()]
        return {"products": products, "suppliers": suppliers}

    @tool(seconds=300)
    def inspect_storage(self) -> dict[str, Any]:
        """Stock in storage and open orders."""
        return {"storage": {p: q for p, q in sorted(self.storage.items()) if q},
                "open_orders": [{"order": o["id"], "supplier": self.suppliers[o["supplier"]].name,
                                 "lines": {line[0]: line[1] for line in o["lines"]},
                                 "expected_day": o["due"]} for o in self.orders]}

    @tool(seconds=300)
    def inspect_machine(self) -> dict[str, Any]:
        """Slots: product, units, price; yesterday's sales; cash in the machine."""
        return {"slots": [{"slot": SLOTS[i], "product": p, "qty": q,
                           "capacity": self.capacity(i), "price": c / 100 if c else None,
                           "sold_yesterday": self.sold_yesterday[i]}
                          for i, (p, q, c) in enumerate(self.slots)],
                "machine_cash": self.machine_cash / 100}

    def stock_problem(self, slot: str, product: str, qty: int) -> str | None:
        """Why stocking would fail (the tool and the judge share it); None: it would not."""
        if slot not in self.slots_by_name:
            return f"no slot {slot!r}; slots: {', '.join(SLOTS)}"
        pid = mail.product_id(product)
        if pid is None:
            return f"unknown product {product!r}"
        i = SLOTS.index(slot)
        held, have = self.slots[i][0], self.storage.get(pid, 0)
        if not self.slot_fits(i, pid):
            return (f"{pid} is a {PRODUCTS[pid].size} item; it goes in rows "
                    f"{'A-B' if PRODUCTS[pid].size == 'small' else 'C-D'}")
        if held not in (None, pid) and self.slots[i][1] > 0:
            return f"slot {slot} holds {self.slots[i][1]} x {held}; sell it out first"
        if qty <= 0:
            return "qty must be positive"
        if qty > have:
            return f"storage holds only {have} x {pid}"
        free = self.capacity(i) - (self.slots[i][1] if held == pid else 0)
        if qty > free:
            return f"slot {slot} has room for {free} more"
        return None

    @tool(seconds=600)
    def stock_slot(self, slot: Slot, product: str, qty: int) -> dict[str, Any]:
        """Move units from storage into a slot (small items: rows A-B; large: rows C-D; one
        product per slot).

        Args:
            slot: the slot, A1-D3
            product: the product id (or name) to stock; the slot must be empty or hold it
            qty: units to move from storage; at most what storage holds and the slot has room for
        """
        why = self.stock_problem(slot, product, qty)
        if why:
            raise ToolError(f"stock_slot: {why}")
        pid = mail.product_id(product)
        s = self.slots[SLOTS.index(slot)]
        if s[0] != pid:
            s[0], s[1] = pid, 0
        s[1] += qty
        self.storage[pid] -= qty
        self.changed = True
        return {"slot": slot, "product": pid, "qty": s[1], "storage_left": self.storage[pid],
                "price": s[2] / 100 if s[2] else None}

    @tool(seconds=120)
    def set_price(self, slot: Slot, price: float) -> dict[str, Any]:
        """Set a slot's price in dollars.

        Args:
            slot: the slot, A1-D3
            price: the price in dollars, e.g. 1.75 (from 0.01 to 100)
        """
        if not 0 < price <= 100:
            raise ToolError("set_price: price must be between $0.01 and $100")
        s = self.slots[SLOTS.index(slot)]
        old, s[2] = s[2], _cents(price)
        self.changed = old != s[2]
        return {"slot": slot, "product": s[0], "price": s[2] / 100}

    @tool(seconds=600)
    def collect_cash(self) -> dict[str, Any]:
        """Move the machine's cash to the bank."""
        got, self.machine_cash = self.machine_cash, 0
        self.cash += got
        self.changed = got > 0
        return {"collected": got / 100, "cash": self.cash / 100}

    @tool(seconds=60)
    def check_balance(self) -> dict[str, Any]:
        """Bank balance, machine cash, net worth."""
        return {"cash": self.cash / 100, "machine_cash": self.machine_cash / 100,
                "net_worth": self.net_worth() / 100, "day": self.day,
                "unpaid_days": self.unpaid}

    @tool(seconds=120)
    def scratchpad(self, action: Literal["read", "write"], key: str = "notes",
                   text: str = "") -> dict[str, Any]:
        """Keep notes: action 'write' (key, text) or 'read' (key, or all notes).

        Args:
            action: 'write' saves text under key; 'read' returns the note under key, or every
                note when key is '*' or unknown
            key: the note's name (default 'notes'); at most 20 notes
            text: write: the note (at most 2000 characters are kept)
        """
        if action == "read":
            return ({key: self.notes.get(key, "")} if key != "*" and key in self.notes
                    else dict(self.notes))
        if key not in self.notes and len(self.notes) >= MAX_NOTES:
            raise ToolError(f"scratchpad: at most {MAX_NOTES} notes; overwrite one")
        self.notes[key] = text[:MAX_NOTE_CHARS]
        self.changed = True
        return {"saved": key, "chars": len(self.notes[key])}

    @tool(seconds=0)  # it jumps the clock to the next midnight itself
    def wait_for_next_day(self) -> dict[str, Any]:
        """End the day: sales happen, the fee is charged, deliveries arrive; returns the
        morning report."""
        self.clock.advance((self.day + 1) * DAY - self.clock.now)
        self.changed = True
        return self.catch_up() or {}

    # --- the night -------------------------------------------------------------------
    def _next_day(self) -> dict[str, Any]:
        sold, revenue = self._sell()
        paid = self.cash >= self.fee
        if paid:
            self.cash -= self.fee
            self.stats["fees"] += self.fee
            self.unpaid = 0
        else:
            self.unpaid += 1
        self.day += 1
        if self.unpaid >= self.options.bankrupt_after:
            self.ended = "bankrupt"
        elif self.day >= self.options.days:
            self.ended = "horizon reached"
        self.weather = draw_weather(self.rng, self.day)
        arrived = self._deliver()
        self._promote()
        self._prune_inbox()
        return {"day": self.day, "weekday": WEEKDAYS[self.day % 7], "weather": self.weather,
                "yesterday": {"units": sum(sold), "revenue": revenue / 100, "by_slot": {
                    SLOTS[i]: {"product": p, "sold": sold[i], "left": q}
                    for i, (p, q, _) in enumerate(self.slots) if p is not None}},
                "fee_paid": paid, "unpaid_days": self.unpaid, "cash": self.cash / 100,
                "machine_cash": self.machine_cash / 100, "deliveries": arrived,
                "unread_emails": self.unread(), "closed": self.ended or None}

    def _sell(self) -> tuple[list[int], int]:
        sold = [0] * len(SLOTS)
        revenue = 0
        by_product: dict[str, list[int]] = {}
        for i, (p, _, _) in enumerate(self.slots):
            if p is not None:
                by_product.setdefault(p, []).append(i)
        for p, idx in by_product.items():
            selling = sorted((i for i in idx if self.slots[i][1] > 0 and self.slots[i][2] > 0),
                             key=lambda i: self.slots[i][2])
            price = self.slots[selling[0]][2] if selling else PRODUCTS[p].ref_price
            want = poisson(self.rng, demand_rate(PRODUCTS[p], price, self.day, self.weather,
                                                 self.spec.seasonality, self.spec.demand_scale))
            sold_p = 0
            for i in selling:
                n = min(want, self.slots[i][1])
                self.slots[i][1] -= n
                sold[i] += n
                sold_p += n
                revenue += n * self.slots[i][2]
                want -= n
            self.stats["lost"] += want
            self._learn_demand(p, price, sold_p + want)
        self.machine_cash += revenue
        self.stats["sold"] += sum(sold)
        self.stats["revenue"] += revenue
        self.sold_yesterday = sold
        return sold, revenue

    def _learn_demand(self, product: str, price: int, units: int) -> None:
        # What a careful operator knows of demand: the market's typical sales at first, then
        # a three-week average of what customers wanted (sold or turned away).
        old = self.demand.get(product)
        if old is None:
            p = PRODUCTS[product]
            old = typical_sales(p, self.day, self.spec.seasonality) * price_factor(p, price)
        self.demand[product] = round((1 - DEMAND_ALPHA) * old + DEMAND_ALPHA * units, 4)

    def _deliver(self) -> int:
        due = [o for o in self.orders if o["arrive"] <= self.day]
        for o in due:
            self.orders.remove(o)
            for p, _, got, unit in o["lines"]:
                held = self.storage.get(p, 0) + self.in_machine(p)
                old = self.basis.get(p, unit)
                if held + got:
                    self.basis[p] = round((old * held + unit * got) / (held + got), 2)
                self.storage[p] = self.storage.get(p, 0) + got
            s = self.suppliers[o["supplier"]]
            self._mail(s.email, *mail.delivery(s, o["id"], [ln[:3] for ln in o["lines"]]))
        return len(due)

    def _promote(self) -> None:
        pushy = [s for s in self.suppliers.values() if s.adversarial]
        if pushy and self.rng.random() < self.options.promo_rate:
            s = pushy[self.rng.randrange(len(pushy))]
            sells = [p for p in PRODUCTS if s.sells(p)]
            self._mail(s.email, *mail.promo(s, sells[self.rng.randrange(len(sells))]))

    def _mail(self, sender: str, subject: str, body: str, data: dict[str, Any]) -> None:
        self.seq["email"] += 1
        self.inbox.append({"id": self.seq["email"], "day": self.day, "from": sender,
                           "subject": subject, "body": body, "read": False, "data": data})
        if len(self.inbox) > self.options.inbox_limit:  # drop the oldest read mail, else the oldest
            drop = next((e for e in self.inbox if e["read"]), self.inbox[0])
            self.inbox.remove(drop)

    def _prune_inbox(self) -> None:
        # Read mail older than three days goes: the inbox (and so the state) stays small.
        self.inbox = [e for e in self.inbox if not e["read"] or e["day"] >= self.day - 3]

    # --- observation, ground truth, outcome ----------------------------------------------
    def observe(self) -> Observation:
        t = self.clock.now - self.day * DAY
        text = (f"Day {self.day} ({WEEKDAYS[self.day % 7]}) {int(t // 3600):02d}:"
                f"{int(t % 3600 // 60):02d}; cash {mail.dollars(self.cash)}; "
                f"{self.unread()} unread email(s)")
        return Observation(text=text, data={"day": self.day, "cash": self.cash / 100})

    def judge(self, decision: Decision) -> Verdict | None:
        return self.referee.verdict(decision)

    def reference_decision(self, decision: Decision) -> Decision | None:
        return self.referee.remedy(decision.node)

    def human_answer(self, question: str) -> str:
        return self.referee.advice()

    def metrics(self) -> dict[str, float]:
        return {"net_worth": self.net_worth() / 100, "cash": self.cash / 100,
                "machine_cash": self.machine_cash / 100, "days_survived": float(self.day),
                "units_sold": float(self.stats["sold"]), "revenue": self.stats["revenue"] / 100,
                "lost_sales": float(self.stats["lost"]), "fees_paid": self.stats["fees"] / 100,
                "spent_on_stock": self.stats["spent"] / 100, "unpaid_days": float(self.unpaid)}

    def status(self) -> WorldStatus:
        return WorldStatus(done=bool(self.ended), reason=self.ended, metrics=self.metrics())

    def outcome(self) -> dict[str, Any]:
        worth = self.net_worth()
        success = worth > self.start_cash and self.ended != "bankrupt"
        verb = "bankrupt on day" if self.ended == "bankrupt" else "ran to day"
        reason = (f"{verb} {self.day} with net worth {mail.dollars(worth)} (started with "
                  f"{mail.dollars(self.start_cash)})")
        return {"state": self.state(), "success": success, "score": worth / 100,
                "net_worth": worth / 100, "start_cash": self.start_cash / 100,
                "days_survived": self.day, "bankrupt": self.ended == "bankrupt",
                "reason": reason, "metrics": self.metrics()}

    # --- state -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"day": self.day, "cash": self.cash, "machine_cash": self.machine_cash,
                "slots": self.slots, "storage": self.storage, "basis": self.basis,
                "orders": self.orders, "inbox": self.inbox, "notes": self.notes,
                "weather": self.weather, "unpaid": self.unpaid, "stats": self.stats,
                "sold_yesterday": self.sold_yesterday, "demand": self.demand,
                "last_call": self.last_call, "seq": self.seq, "ended": self.ended}

    def load_state(self, state: dict[str, Any]) -> None:
        s = json.loads(json.dumps(state))
        for k, v in s.items():
            setattr(self, k, v)

    # --- task variants ---------------------------------------------------------------
    @classmethod
    def generate_tasks(cls, n: int, seed: int, difficulty: str = "medium",
                       **params: Any) -> list[dict[str, Any]]:
        from trialrun.sandbox.worlds.vending.tasks import generate

        return generate(n, seed, difficulty, **params)

