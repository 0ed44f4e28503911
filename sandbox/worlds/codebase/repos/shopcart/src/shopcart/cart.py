"""A shopping cart that computes with exact decimal money."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def money(x: float | str | Decimal) -> Decimal:
    """Round to cents, halves away from zero (as shops do, unlike Python's round)."""
    return Decimal(str(x)).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Item:
    sku: str
    price: Decimal
    qty: int = 1


class Cart:
    def __init__(self, tax_rate: float | str = "0") -> None:
        self.items: dict[str, Item] = {}
        self.tax_rate = Decimal(str(tax_rate))
        self.discount_pct = Decimal("0")

    def add(self, sku: str, price: float | str, qty: int = 1) -> None:
        if qty < 1:
            raise ValueError("qty must be at least 1")
        if sku in self.items:
            self.items[sku].qty += qty
        else:
            self.items[sku] = Item(sku, money(price), qty)

    def remove(self, sku: str, qty: int = 1) -> None:
        item = self.items[sku]
        item.qty -= qty
        if item.qty <= 0:
            del self.items[sku]

    def count(self) -> int:
        return sum(i.qty for i in self.items.values())

    def subtotal(self) -> Decimal:
        return money(sum((i.price * i.qty for i in self.items.values()), Decimal(0)))

    def apply_discount(self, pct: float | str) -> None:
        pct = Decimal(str(pct))
        if not 0 <= pct <= 100:
            raise ValueError("discount must be between 0 and 100 percent")
        self.discount_pct = pct

    def total(self) -> Decimal:
        discounted = self.subtotal() * (1 - self.discount_pct / 100)
        return money(discounted * (1 + self.tax_rate))
