"""Comparing runs: the first difference between two runs' records, and where two plain
values differ.
"""

from __future__ import annotations

from typing import Any

from trialrun.check_world.record import _Run
from trialrun.check_world.util import _short


def _difference(a: _Run, b: _Run) -> list[str]:
    """The first difference between two runs, then how many records differ; [] if none."""
    if b.fatal and not a.fatal:
        return [f"this run failed where the first did not: {b.fatal}"]
    return _entries_difference(a.entries, b.entries)


def _entries_difference(a: list[tuple[str, Any]], b: list[tuple[str, Any]]) -> list[str]:
    first = None
    count = 0
    for (la, va), (lb, vb) in zip(a, b, strict=False):
        if la != lb:
            first = first or f"the runs went different ways: {la!r} against {lb!r}"
            count += 1
            break
        if va != vb:
            first = first or f"{la}: {_leaf_diff(va, vb)}"
            count += 1
    if len(a) != len(b):
        first = first or f"one run stopped early ({len(a)} against {len(b)} records)"
    if first is None:
        return []
    return [first, f"{count} record(s) differ in all"] if count > 1 else [first]


def _leaf_diff(a: Any, b: Any, path: str = "") -> str:
    """Where two plain values first differ: `.orders.O-1001.status: 'x' != 'y'`."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}.{k}: only in {'the second' if k not in a else 'the first'} run"
            if a[k] != b[k]:
                return _leaf_diff(a[k], b[k], f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _leaf_diff(x, y, f"{path}[{i}]")
    return f"{path or 'value'}: {_short(a)} != {_short(b)}"
