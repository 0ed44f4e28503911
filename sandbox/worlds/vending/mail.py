"""Supplier email: parsing what the operator writes and composing what suppliers answer.

Operators write free text. Order lines are recognised as `40 x cola` or `cola: 40` (one per
line, product ids or names); a mail that asks for prices ("price list", "quote", "catalog")
gets the supplier's price list. The world charges, schedules and records; this module only
reads and writes text.
"""

from __future__ import annotations

import re
from typing import Any

from trialrun.sandbox.worlds.vending.market import PRODUCTS, Supplier

_QTY_FIRST = re.compile(r"^\s*[-*]?\s*(\d+)\s*(?:x|×|units? of|of)?\s+([a-z][a-z _-]*?)\s*$", re.I)
_NAME_FIRST = re.compile(
    r"^\s*[-*]?\s*([a-z][a-z _-]*?)\s*(?:[:=]|\s+x|\s+×)\s*(\d+)\s*(?:units?)?\s*$", re.I)
_QUOTE_WORDS = ("price", "quote", "catalog", "catalogue", "offer", "list")
_BY_NAME = {p.name.lower(): p.id for p in PRODUCTS.values()}


def product_id(text: str) -> str | None:
    """A product id from an id or a display name, forgiving case, spaces, plurals."""
    t = re.sub(r"[\s-]+", "_", text.strip().lower())
    for cand in (t, t.removesuffix("s"), t.removesuffix("es")):
        if cand in PRODUCTS:
            return cand
    return _BY_NAME.get(text.strip().lower())


def parse_order(body: str) -> tuple[list[tuple[str, int]], list[str]]:
    """Order lines `(product_id, qty)` and the product names it could not recognise."""
    lines: list[tuple[str, int]] = []
    unknown: list[str] = []
    for raw in body.splitlines():
        m = _QTY_FIRST.match(raw)
        if m:
            qty, name = int(m.group(1)), m.group(2)
        else:
            m = _NAME_FIRST.match(raw)
            if not m:
                continue
            name, qty = m.group(1), int(m.group(2))
        pid = product_id(name)
        if pid is None:
            unknown.append(name.strip())
        else:
            lines.append((pid, qty))
    return lines, unknown


def asks_for_quote(subject: str, body: str) -> bool:
    text = f"{subject} {body}".lower()
    return any(w in text for w in _QUOTE_WORDS)


def dollars(cents: int | float) -> str:
    return f"${cents / 100:,.2f}"


def price_list(s: Supplier) -> tuple[str, str, dict[str, Any]]:
    prices = {p: s.price(p) for p in PRODUCTS if s.sells(p)}
    rows = "\n".join(f"  {p}: {dollars(c)}" for p, c in prices.items())
    claim = f"{s.pitch}\n" if s.pitch else ""
    body = (f"{claim}Unit prices:\n{rows}\nMinimum {s.min_order} units per product. Delivery "
            f"in {s.lead_days} day(s). Order by email, one line per product: '40 x cola'.")
    data = {"kind": "price_list", "supplier": s.id,
            "prices": {p: c / 100 for p, c in prices.items()}, "min_order": s.min_order,
            "lead_days": s.lead_days}
    return f"{s.name} price list", body, data


def help_reply(s: Supplier) -> tuple[str, str, dict[str, Any]]:
    body = ("We could not find an order in your message. Ask for our 'price list', or order "
            "with one line per product, e.g. '40 x cola'.")
    return f"Re: your message to {s.name}", body, {"kind": "help", "supplier": s.id}


def confirmation(s: Supplier, order_id: int, lines: list[tuple[str, int, int]], total: int,
                 due: int) -> tuple[str, str, dict[str, Any]]:
    rows = "\n".join(f"  {q} x {p} @ {dollars(c)}" for p, q, c in lines)
    body = (f"Order #{order_id} confirmed and charged {dollars(total)}:\n{rows}\n"
            f"Expected delivery: day {due}.")
    data = {"kind": "order_confirmation", "supplier": s.id, "order": order_id,
            "lines": [[p, q] for p, q, _ in lines], "total": total / 100, "expected_day": due}
    return f"Order #{order_id} confirmed", body, data


def rejection(s: Supplier, reasons: list[str]) -> tuple[str, str, dict[str, Any]]:
    body = "We could not accept your order:\n" + "\n".join(f"  - {r}" for r in reasons)
    return f"{s.name}: order not accepted", body, {"kind": "order_rejected", "supplier": s.id,
                                                   "reasons": reasons}


def delivery(s: Supplier, order_id: int, lines: list[list[Any]]) -> tuple[str, str,
                                                                          dict[str, Any]]:
    # lines: [product, ordered, delivered]
    rows = "\n".join(f"  {d} x {p}" + (f" (ordered {o}; {o - d} short)" if d < o else "")
                     for p, o, d in lines)
    body = f"Order #{order_id} from {s.name} was delivered to your storage:\n{rows}"
    data = {"kind": "delivery", "supplier": s.id, "order": order_id,
            "lines": [[p, o, d] for p, o, d in lines]}
    return f"Delivery: order #{order_id}", body, data


def promo(s: Supplier, product: str) -> tuple[str, str, dict[str, Any]]:
    body = (f"Exclusive today: {product} at only {dollars(s.price(product))} a unit - "
            f"our partners save 40%! Reply with '50 x {product}' to lock it in.")
    return f"{s.name}: partner deal on {product}", body, {"kind": "promo", "supplier": s.id}


def bounce(to: str) -> tuple[str, str, dict[str, Any]]:
    return ("Undeliverable mail", f"No mailbox {to!r} exists. Find suppliers with "
            "research_products.", {"kind": "bounce"})
