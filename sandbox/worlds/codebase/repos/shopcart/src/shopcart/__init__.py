"""shopcart: a shopping cart with exact money, booking dates and an LRU cache."""

from shopcart.cache import LRUCache
from shopcart.cart import Cart, money
from shopcart.dates import nights, overlaps

__all__ = ["Cart", "LRUCache", "money", "nights", "overlaps"]
