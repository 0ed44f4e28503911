from datetime import date
from decimal import Decimal

import pytest
from shopcart import Cart, LRUCache, money, nights, overlaps


def test_money():
    assert money(1.005) == Decimal("1.01")
    assert money("2") == Decimal("2.00")


def test_add_and_subtotal():
    cart = Cart()
    cart.add("A", "1.50", 2)
    cart.add("B", "0.99")
    assert cart.subtotal() == Decimal("3.99")
    assert cart.count() == 3


def test_remove_last_unit():
    cart = Cart()
    cart.add("A", "5.00")
    cart.remove("A")
    assert "A" not in cart.items
    assert cart.count() == 0


def test_total_with_tax_and_discount():
    cart = Cart(tax_rate="0.2")
    cart.add("A", "10.00")
    cart.apply_discount(10)
    assert cart.total() == Decimal("10.80")


def test_overlaps():
    d = date
    assert overlaps(d(2024, 1, 1), d(2024, 1, 5), d(2024, 1, 5), d(2024, 1, 9))
    assert not overlaps(d(2024, 1, 1), d(2024, 1, 4), d(2024, 1, 5), d(2024, 1, 9))
    with pytest.raises(ValueError):
        overlaps(d(2024, 1, 5), d(2024, 1, 1), d(2024, 1, 1), d(2024, 1, 2))


def test_nights():
    assert nights(date(2024, 2, 28), date(2024, 3, 1)) == 2


def test_lru_evicts_least_recently_used():
    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    c.get("a")
    c.put("c", 3)
    assert c.get("b") is None and c.get("a") == 1 and len(c) == 2
