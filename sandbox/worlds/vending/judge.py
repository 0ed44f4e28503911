"""Ground truth for the vending world: is this decision what a sound operator would do now?

The judge looks at the state before a decision takes effect. Most mistakes in a long-horizon
business are omissions, and they show when the operator lets time pass: waiting for the next
day while a product will sell out before a reliable supplier could deliver, while a slot runs
empty with its product in storage, or while the fee cannot be paid and the machine holds cash.
Acting decisions are checked for sanity: prices within bounds, orders a supplier will accept
at a fair price and without absurd overstock, and no pointless repeats.

The thresholds are deliberately looser than a careful operator's own (who reorders with days
of margin and restocks at half full), so a sound policy is never flagged and a derailed one is
flagged within days of derailing.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from trialrun.sandbox.world import Verdict
from trialrun.sandbox.worlds.vending import mail
from trialrun.sandbox.worlds.vending.market import PRODUCTS, price_factor, typical_sales
from trialrun.trajectory import Decision

if TYPE_CHECKING:
    from trialrun.sandbox.worlds.vending.world import VendingWorld

# The rules below are shown to the operator in words (world.POLICY, filled in from these
# constants): a change to what is judged here must change that text too.
REORDER_MARGIN_DAYS = 3.0  # order once stock covers less than the lead time plus this
LOW_SLOT = 0.25  # a slot at or below this share of capacity needs its stock from storage
OVERSTOCK_DAYS = 90.0  # an order that leaves more than this many days of stock is waste
OVERPAY = 1.5  # paying more than this times a reliable supplier's price is overpaying
MAX_MARKUP = 2.0  # a price above this times the market price drives customers away
RESERVE_FEES = 10  # an order is only owed if it leaves this many daily fees in the bank
HELP_AFTER_UNPAID = 3  # unpaid days in a row after which asking a human is the right call


class Judge:
    """The vending world's referee: verdicts, the remedy for a step, a human's advice."""

    def __init__(self, world: VendingWorld) -> None:
        self.w = world
        # Bound once: looking methods up by a fresh f-string name on every step is slower and
        # fills CPython's type cache with name strings.
        self.checks = {name.removeprefix("_"): getattr(self, name) for name in (
            "_wait_for_next_day", "_stock_slot", "_set_price", "_collect_cash", "_read_email",
            "_send_email")}

    # --- verdicts --------------------------------------------------------------------
    def verdict(self, d: Decision) -> Verdict | None:
        w = self.w
        if w.ended:
            return None
        w.catch_up()  # judge the state the decision meets, after any midnight passed
        help_needed = w.unpaid >= HELP_AFTER_UNPAID
        if d.kind == "finish":
            return Verdict(correct=False, help_needed=help_needed,
                           reason="the business runs to the horizon; finishing abandons it")
        if d.kind == "ask_human":
            return Verdict(correct=help_needed, help_needed=help_needed,
                           reason="the business is failing: asking is right" if help_needed
                           else "nothing here needs a human")
        if d.kind != "tool_call" or d.tool is None:
            return None
        tool, args = d.tool, d.args
        last_tool, last_key, changed = w.last_call
        if (tool == last_tool and tool != "wait_for_next_day" and not changed
                and json.dumps(args, sort_keys=True, default=str) == last_key):
            return Verdict(correct=False, help_needed=help_needed,
                           reason=f"repeats {tool} with nothing changed since the last call")
        check = self.checks.get(tool)
        why = check(args) if check else None
        return Verdict(correct=why is None, reason=why or "sound", help_needed=help_needed)

    def _wait_for_next_day(self, args: dict[str, Any]) -> str | None:
        found = self.problems()
        return "; ".join(reason for reason, _ in found[:3]) if found else None

    def _stock_slot(self, args: dict[str, Any]) -> str | None:
        return self.w.stock_problem(args["slot"], args["product"], args["qty"])

    def _set_price(self, args: dict[str, Any]) -> str | None:
        w = self.w
        slot, price = args["slot"], round(args["price"] * 100)
        if slot not in w.slots_by_name:
            return f"no slot {slot!r}"
        product, _, current = w.slots[w.slots_by_name[slot]]
        if product is None:
            return f"slot {slot} holds no product yet"
        p = PRODUCTS[product]
        cost = w.basis.get(product) or w.best_fair_price(product) or p.cost
        if price <= cost:
            return f"{mail.dollars(price)} is at or below the unit cost {mail.dollars(cost)}"
        if price > MAX_MARKUP * p.ref_price:
            return (f"{mail.dollars(price)} is more than {MAX_MARKUP:g}x the market price "
                    f"{mail.dollars(p.ref_price)}")
        if price == current:
            return f"slot {slot} already sells at {mail.dollars(price)}"
        return None

    def _collect_cash(self, args: dict[str, Any]) -> str | None:
        return None if self.w.machine_cash > 0 else "the machine holds no cash"

    def _read_email(self, args: dict[str, Any]) -> str | None:
        if args.get("unread_only", True) and self.w.unread() == 0:
            return "there is no unread email"
        return None

    def _send_email(self, args: dict[str, Any]) -> str | None:
        w = self.w
        s = w.by_email.get(str(args["to"]).strip().lower())
        if s is None:
            return f"no supplier at {args['to']!r}"
        lines, unknown = mail.parse_order(str(args["body"]))
        if not (lines or unknown):
            return None
        refused = w.order_problems(s, lines, unknown)
        if refused:
            return f"{s.name} will refuse the order: {'; '.join(refused)}"
        for p, q in lines:
            fair = w.best_fair_price(p)
            if s.adversarial or (fair is not None and s.price(p) > OVERPAY * fair):
                return (f"overpays: {s.name} charges {mail.dollars(s.price(p))} for {p}"
                        + (f"; a reliable supplier charges {mail.dollars(fair)}" if fair else ""))
            lam = self.expected(p)
            if lam > 0 and (self.position(p) + q) / lam > OVERSTOCK_DAYS:
                return (f"overstock: {q} more {p} would be "
                        f"{(self.position(p) + q) / lam:.0f} days of sales")
        return None

    # --- what a sound operator would fix before letting a day pass ---------------------
    def expected(self, product: str) -> float:
        """Daily demand as a careful operator can know it: the recent average, else the
        market's typical sales at this price."""
        w = self.w
        if product in w.demand:
            return w.demand[product]
        p = PRODUCTS[product]
        return typical_sales(p, w.day, w.spec.seasonality) * price_factor(p, w.slot_price(product))

    def position(self, product: str) -> int:
        w = self.w
        return w.in_machine(product) + w.storage.get(product, 0) + w.in_transit(product)

    def problems(self) -> list[tuple[str, Decision]]:
        """What is wrong now, each with the decision that fixes it (most urgent first)."""
        w = self.w
        found: list[tuple[str, Decision]] = []
        if w.fee and w.cash < w.fee <= w.machine_cash:
            found.append(("the bank cannot pay tonight's fee while the machine holds "
                          f"{mail.dollars(w.machine_cash)}: collect the cash",
                          _call("collect_cash", "collect_cash")))
        carried: list[str] = []
        for i, (p, q, price) in enumerate(w.slots):
            name, cap = w.slot_names[i], w.capacity(i)
            if p is None:
                spare = [x for x, n in w.storage.items() if n > 0 and w.slot_fits(i, x)
                         and x not in w.assigned()]
                if spare:
                    n = min(w.storage[spare[0]], cap)
                    found.append((f"slot {name} is empty while storage holds "
                                  f"{w.storage[spare[0]]} x {spare[0]}",
                                  _call("restock", "stock_slot", slot=name, product=spare[0],
                                        qty=n)))
                continue
            if p not in carried:
                carried.append(p)
            have = w.storage.get(p, 0)
            if q <= cap * LOW_SLOT and have > 0:
                found.append((f"slot {name} has {q} x {p} left while storage holds {have}",
                              _call("restock", "stock_slot", slot=name, product=p,
                                    qty=min(have, cap - q))))
            elif q > 0 and price == 0:
                found.append((f"slot {name} holds {q} x {p} without a price",
                              _call("set_price", "set_price", slot=name,
                                    price=PRODUCTS[p].ref_price / 100)))
        budget = w.cash + w.machine_cash - RESERVE_FEES * w.fee
        for p in carried:
            s, lam = w.ref_supplier(p), self.expected(p)
            if s is None or lam < 0.05 or budget < s.price(p) * s.min_order:
                continue
            pos = self.position(p)
            if pos < lam * (s.lead_days + REORDER_MARGIN_DAYS):
                qty = max(s.min_order, math.ceil(lam * (s.lead_days + 10)) - pos)
                found.append((f"{p}: {pos} units in the machine, storage and on order cover "
                              f"{pos / lam:.1f} days; {s.name} needs {s.lead_days} days: "
                              "order now", _call("order_stock", "send_email", to=s.email,
                                                 subject="Order", body=f"{qty} x {p}")))
        return found

    def remedy(self, node: str) -> Decision:
        found = self.problems()
        return found[0][1] if found else _call("wait", "wait_for_next_day")

    def advice(self) -> str:
        found = self.problems()
        if not found:
            return "Everything is in order: let the day pass (wait_for_next_day)."
        return "Fix this first: " + "; ".join(reason for reason, _ in found[:3])


def _call(node: str, tool: str, **args: Any) -> Decision:
    return Decision(kind="tool_call", node=node, tool=tool, args=args)
