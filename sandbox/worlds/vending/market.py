"""The vending market: products, suppliers and the demand model, as pure data and functions.

Money is in integer cents everywhere inside the world, so that sums are exact and state
digests do not depend on float rounding. Demand draws take the world's seeded RNG as an
argument; nothing here keeps state of its own.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

Size = Literal["small", "large"]


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    size: Size
    cost: int  # fair wholesale price, cents
    ref_price: int  # typical retail price, cents
    demand: float  # units a day at ref_price, averaged over weekdays, seasons and weather
    elasticity: float  # demand ~ (price / ref_price) ** -elasticity
    drink: bool  # drinks follow summer and hot days; snacks lean to winter


PRODUCTS: dict[str, Product] = {p.id: p for p in (
    Product("chocolate_bar", "Chocolate bar", "small", 55, 150, 1.44, 1.6, False),
    Product("chips", "Potato chips", "small", 45, 125, 1.56, 1.5, False),
    Product("gum", "Chewing gum", "small", 25, 100, 0.9, 1.3, False),
    Product("granola_bar", "Granola bar", "small", 60, 175, 1.08, 1.7, False),
    Product("candy", "Fruit candy", "small", 35, 100, 1.32, 1.5, False),
    Product("cookies", "Cookies", "small", 50, 150, 1.14, 1.6, False),
    Product("trail_mix", "Trail mix", "small", 80, 225, 0.6, 1.8, False),
    Product("cola", "Cola can", "large", 50, 175, 1.68, 1.4, True),
    Product("water", "Bottled water", "large", 25, 125, 1.44, 1.2, True),
    Product("energy_drink", "Energy drink", "large", 110, 300, 0.9, 1.8, True),
    Product("iced_tea", "Iced tea", "large", 55, 200, 1.02, 1.5, True),
    Product("orange_juice", "Orange juice", "large", 75, 225, 0.84, 1.6, True),
    Product("sandwich", "Sandwich", "large", 180, 450, 0.66, 2.0, False),
    Product("sparkling_water", "Sparkling water", "large", 45, 175, 0.6, 1.4, True),
)}


@dataclass(frozen=True)
class Supplier:
    id: str
    name: str
    email: str
    price_factor: float  # unit price = round(product.cost * price_factor)
    lead_days: int  # quoted delivery time
    min_order: int  # units per product line
    late_prob: float  # P(an order arrives late)
    max_late: int  # days late at most
    short_prob: float  # P(an order line arrives short, paid in full)
    adversarial: bool  # quotes inflated prices as bargains and sends unsolicited offers
    skips: tuple[str, ...] = ()  # products it does not sell
    pitch: str = ""

    def sells(self, product: str) -> bool:
        return product in PRODUCTS and product not in self.skips

    def price(self, product: str) -> int:
        return round(PRODUCTS[product].cost * self.price_factor)

    @property
    def rating(self) -> float:
        """Public review score (1-5) that research shows: what a careful operator can know."""
        score = 5.0 - 4.0 * (self.late_prob + self.short_prob) - (2.0 if self.adversarial else 0)
        return max(1.0, round(score, 1))

    @property
    def reliable(self) -> bool:
        """Sound to depend on: rated 4.0 or better (late+short at most 25%) and honest."""
        return self.rating >= 4.0 and not self.adversarial

    def review(self) -> str:
        parts = []
        if self.late_prob + self.short_prob > 0.25:
            parts.append("customers report late and short deliveries")
        elif self.late_prob > 0:
            parts.append("occasionally a day or two late")
        else:
            parts.append("delivers on time")
        if self.adversarial:
            parts.append("prices far above wholesale despite 'discount' claims")
        elif self.price_factor > 1.1:
            parts.append("fast but pricier")
        elif self.price_factor < 0.95:
            parts.append("very cheap")
        return "; ".join(parts)


SUPPLIERS: dict[str, Supplier] = {s.id: s for s in (
    Supplier("metro", "Metro Wholesale", "sales@metro-wholesale.example", 1.0, 3, 10,
             0.03, 1, 0.0, False, (), "Reliable wholesale for vending operators."),
    Supplier("quicksnack", "QuickSnack Direct", "orders@quicksnack.example", 1.25, 1, 5,
             0.0, 0, 0.0, False, (), "Next-day delivery on every order."),
    Supplier("budgetbulk", "BudgetBulk", "deals@budgetbulk.example", 0.85, 4, 30,
             0.35, 5, 0.3, False, ("sandwich", "orange_juice", "trail_mix"),
             "Rock-bottom prices, bulk only."),
    Supplier("primevend", "PrimeVend Partners", "vip@primevend.example", 2.2, 2, 5,
             0.0, 0, 0.0, True, (), "Exclusive partner prices, 40% below market!"),
)}

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# An office location: busy on workdays, quiet at weekends (mean 1.0, so `demand` is the mean).
WEEKDAY_FACTOR = (1.1, 1.1, 1.1, 1.1, 1.05, 0.8, 0.75)
# Weather: (drinks factor, snacks factor).
WEATHER = {"sunny": (1.0, 1.0), "hot": (1.4, 0.95), "rainy": (0.8, 0.85), "cold": (0.8, 1.05)}


def season_wave(day: int) -> float:
    """-1 in midwinter, +1 in midsummer; day 0 is 1 January."""
    return math.sin(2 * math.pi * (day - 80) / 365)


def season_factor(day: int, amplitude: float, drink: bool) -> float:
    s = season_wave(day)
    return 1 + amplitude * s if drink else 1 - amplitude * s / 2


def weather_odds(day: int) -> dict[str, float]:
    s = season_wave(day)
    hot, cold = 0.1 + 0.25 * max(0.0, s), 0.1 + 0.25 * max(0.0, -s)
    return {"hot": hot, "cold": cold, "rainy": 0.2, "sunny": 1 - hot - cold - 0.2}


def draw_weather(rng: random.Random, day: int) -> str:
    r = rng.random()
    for name, p in weather_odds(day).items():
        r -= p
        if r < 0:
            return name
    return "sunny"


def price_factor(product: Product, price: int) -> float:
    return (max(price, 1) / product.ref_price) ** -product.elasticity


def demand_rate(product: Product, price: int, day: int, weather: str, seasonality: float,
                scale: float) -> float:
    """Expected units sold on `day` at `price` (cents) in this weather."""
    w = WEATHER[weather][0 if product.drink else 1]
    return (product.demand * scale * price_factor(product, price) * WEEKDAY_FACTOR[day % 7]
            * season_factor(day, seasonality, product.drink) * w)


def typical_sales(product: Product, day: int, seasonality: float) -> float:
    """What similar machines sell a day this month at the market price (public knowledge)."""
    return round(product.demand * season_factor(day, seasonality, product.drink), 1)


def poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method; rates here are small (a few units a day)."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
