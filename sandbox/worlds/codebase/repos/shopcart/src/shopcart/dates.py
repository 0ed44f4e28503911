"""Booking dates: ranges of days, inclusive at both ends."""

from __future__ import annotations

from datetime import date


def overlaps(a_start: date, a_end: date, b_start: date, b_end: date) -> bool:
    """Do the day ranges [a_start, a_end] and [b_start, b_end] share at least one day?"""
    if a_end < a_start or b_end < b_start:
        raise ValueError("a range ends before it starts")
    return a_start <= b_end and b_start <= a_end


def nights(check_in: date, check_out: date) -> int:
    if check_out <= check_in:
        raise ValueError("check-out must be after check-in")
    return (check_out - check_in).days
