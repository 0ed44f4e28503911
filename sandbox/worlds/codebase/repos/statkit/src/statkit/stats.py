"""Descriptive statistics over plain lists of numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean(xs: Sequence[float]) -> float:
    if not xs:
        raise ValueError("mean of an empty sequence")
    return sum(xs) / len(xs)


def median(xs: Sequence[float]) -> float:
    if not xs:
        raise ValueError("median of an empty sequence")
    s = sorted(xs)
    n = len(s)
    mid = n // 2
    if n % 2 == 1:
        return s[mid]
    return (s[mid - 1] + s[mid]) / 2


def variance(xs: Sequence[float], sample: bool = True) -> float:
    """Sample variance (divides by n - 1) or population variance (divides by n)."""
    n = len(xs)
    if n < 2 and sample:
        raise ValueError("sample variance needs at least two values")
    m = mean(xs)
    ss = sum((x - m) ** 2 for x in xs)
    return ss / (n - 1) if sample else ss / n


def stdev(xs: Sequence[float], sample: bool = True) -> float:
    return math.sqrt(variance(xs, sample))


def percentile(xs: Sequence[float], p: float) -> float:
    """The p-th percentile, interpolating linearly between closest ranks."""
    if not xs:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= p <= 100:
        raise ValueError("p must be in [0, 100]")
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def clamp(x: float, lo: float, hi: float) -> float:
    if lo > hi:
        raise ValueError("lo must not exceed hi")
    return min(max(x, lo), hi)


def normalize(xs: Sequence[float]) -> list[float]:
    """Scale to [0, 1]; a constant sequence maps to all zeros."""
    lo, hi = min(xs), max(xs)
    if hi == lo:
        return [0.0 for _ in xs]
    return [(x - lo) / (hi - lo) for x in xs]


def moving_average(xs: Sequence[float], window: int) -> list[float]:
    """Means of every full window of `window` consecutive values."""
    if window < 1:
        raise ValueError("window must be at least 1")
    out = []
    total = 0.0
    for i, x in enumerate(xs):
        total += x
        if i >= window:
            total -= xs[i - window]
        if i >= window - 1:
            out.append(total / window)
    return out
