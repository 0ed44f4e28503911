"""The retail support policy, written twice side by side: as the text the agent reads, and as
the function that gives the resolution it requires.

The world grades every decision against `resolution(...)`, so the two must say the same
thing; keeping them in one short module makes a change to one visible next to the other.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

POLICY = """Retail support policy
1. Verify the customer's identity (find_customer by email, or by name and zip) before
   reading or changing any of their orders.
2. Refunds: only for delivered orders, within {refund_window_days} days of delivery, for the
   full order total. Outside the window, do not refund: explain the {refund_window_days}-day
   window to the customer.
3. Cancellations: only for orders that are pending or processing. A delivered order cannot be
   cancelled: explain that it can be refunded instead.
4. Exchanges: delivered orders within {exchange_window_days} days, for an in-stock product of
   the same price. Otherwise explain why not.
5. When a request could refer to more than one order, ask a human supervisor before reading
   or changing any order.
6. Always reply to the customer with the outcome before finishing, stated plainly: a
   refund's amount with cents (e.g. 149.00); "cancelled"; the new product's name for an
   exchange; the order's status (e.g. processing); and when the policy refuses, "refund" for
   a delivered order that cannot be cancelled, the "N days" window, or "cannot" for an
   exchange."""


@lru_cache(maxsize=64)  # a pure function of two ints, asked once an episode
def policy_text(refund_window_days: int, exchange_window_days: int) -> str:
    """The policy as the agent reads it, with this world's windows filled in."""
    return POLICY.format(refund_window_days=refund_window_days,
                         exchange_window_days=exchange_window_days)


def resolution(request: Any, order: dict[str, Any], products: dict[str, dict[str, Any]],
               refund_window_days: int, exchange_window_days: int
               ) -> tuple[dict[str, Any] | None, list[str]]:
    """What the policy requires for `request` (the task's Request) on `order`.

    Returns the action to take (`{"tool": ..., "args": {...}}`, None when the policy calls for
    none) and the facts the reply to the customer must state."""
    oid, days = order["id"], order["days_since_delivery"]
    delivered = order["status"] == "delivered" and days is not None
    if request.type == "refund":
        if delivered and days <= refund_window_days:
            return ({"tool": "refund", "args": {"order_id": oid, "amount": order["total"]}},
                    [money(order["total"])])
        return None, ([f"{refund_window_days} days"] if order["status"] == "delivered"
                      else [order["status"]])
    if request.type == "cancel":
        if order["status"] in ("pending", "processing"):
            return {"tool": "cancel", "args": {"order_id": oid}}, ["cancelled"]
        return None, ["refund"]
    if request.type == "exchange":
        new = products.get(request.new_sku or "")
        item = order["items"][0]
        if (delivered and days <= exchange_window_days and new is not None
                and new["in_stock"] and new["price"] == item["price"]):
            return ({"tool": "exchange",
                     "args": {"order_id": oid, "sku": item["sku"], "new_sku": new["sku"]}},
                    [new["name"]])
        return None, ["cannot"]
    return None, [order["status"]]  # a status request: tell the customer where it stands


def money(x: float) -> str:
    return f"{x:.2f}"
