"""Times in the calendar world's simulated week, as people write and say them.

Tasks, tools and answers name times loosely ('tue 10:00', '2025-06-03T10:00', '2:30pm');
inside the world every time is one ISO string, 'YYYY-MM-DDTHH:MM', so that comparing two
times is comparing two strings. This module turns one into the other and back.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONDAY = date(2025, 6, 2)  # the default simulated week, and the one tasks are checked against


def to_iso(when: str, week_of: date) -> str:
    """'tue 10:00' (a day of the simulated week) or '2025-06-03T10:00' -> '2025-06-03T10:00'."""
    s = str(when).strip()
    m = re.fullmatch(r"(mon|tue|wed|thu|fri)[a-z]*\.?\s+(\d{1,2}):(\d{2})", s, re.IGNORECASE)
    if m:
        day = week_of + timedelta(days=WEEKDAYS.index(m.group(1).lower()))
        hour, minute = int(m.group(2)), int(m.group(3))
    else:
        m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})[T ](\d{1,2}):(\d{2})(?::00)?", s)
        if not m:
            raise ValueError(f"{when!r} is not a time; use 'tue 10:00' or '2025-06-03T10:00'")
        try:
            day = date.fromisoformat(m.group(1))
        except ValueError:
            raise ValueError(f"{when!r}: no such date") from None
        hour, minute = int(m.group(2)), int(m.group(3))
    if hour > 23 or minute > 59:
        raise ValueError(f"{when!r}: no such time of day")
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}"


def check_when(v: str) -> str:
    """A field validator: `v` must be a time `to_iso` understands (the loader adds file:line)."""
    to_iso(v, MONDAY)
    return v


def spoken(iso: str) -> tuple[str, str]:
    """'2025-06-03T10:00' -> ('Tuesday', '10:00')."""
    return DAY_NAMES[date.fromisoformat(iso[:10]).weekday()], iso[11:16]


def shift(iso: str, minutes: int) -> str:
    """An ISO time `minutes` later (earlier if negative)."""
    return (datetime.fromisoformat(iso) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M")


def time_variants(hhmm: str) -> list[str]:
    """Ways of saying a time that a reply may use: 14:30, 2:30pm, 2:30 pm (10am for 10:00)."""
    h, m = int(hhmm[:2]), hhmm[3:]
    h12, half = (h - 12 if h > 12 else h or 12), ("pm" if h >= 12 else "am")
    short = f"{h12}{half}" if m == "00" else f"{h12}:{m}{half}"
    return [hhmm, f"{h}:{m}", short, short[:-2] + " " + half]
