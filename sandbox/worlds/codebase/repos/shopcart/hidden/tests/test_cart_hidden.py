from datetime import date
from decimal import Decimal

from shopcart import Cart, LRUCache, money, overlaps


def test_money_rounds_half_up():
    assert money("0.125") == Decimal("0.13")
    assert money("2.675") == Decimal("2.68")


def test_add_same_sku_accumulates():
    cart = Cart()
    cart.add("A", "1.00", 2)
    cart.add("A", "1.00", 3)
    assert cart.count() == 5
    assert cart.subtotal() == Decimal("5.00")


def test_remove_some_units():
    cart = Cart()
    cart.add("A", "2.00", 3)
    cart.remove("A", 3)
    assert cart.items == {}


def test_overlaps_touching_either_way():
    d = date
    assert overlaps(d(2024, 3, 5), d(2024, 3, 9), d(2024, 3, 1), d(2024, 3, 5))
    assert overlaps(d(2024, 3, 1), d(2024, 3, 1), d(2024, 3, 1), d(2024, 3, 1))


def test_lru_capacity_one():
    c = LRUCache(1)
    c.put("x", 1)
    c.put("y", 2)
    assert c.get("x") is None and c.get("y") == 2
