"""A compact structural diff of two world states (plain JSON data): the paths added, removed
and changed, for the web app's "what this action would change" and per-step state diffs.

Paths read like `orders["O-7"].status` or `log[3]`. Lists are compared index by index (a
world's state lists are mostly logs that grow at the end, so an append shows as one added
path); a value that changes type is one change of the whole value. The output is data: the
pages render it escaped, never as markup.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel

__all__ = ["Change", "StateDiff", "diff_states", "show"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Change(BaseModel):
    op: Literal["added", "removed", "changed"]
    path: str
    before: str | None = None  # the value, compact JSON (shortened)
    after: str | None = None


class StateDiff(BaseModel):
    changes: list[Change]
    more: int = 0  # changes left out past the limit

    @property
    def empty(self) -> bool:
        return not self.changes and not self.more


def show(value: Any, limit: int = 160) -> str:
    """A value as one line of compact JSON, shortened to `limit` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                          default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _key(path: str, k: Any) -> str:
    if isinstance(k, str) and _IDENT.match(k):
        return f"{path}.{k}" if path else k
    return f"{path}[{json.dumps(k, ensure_ascii=False, default=str)}]"


def diff_states(before: Any, after: Any, limit: int = 200) -> StateDiff:
    """The changes from `before` to `after`, at most `limit` of them (the rest counted)."""
    out: list[Change] = []
    more = 0

    def add(change: Change) -> None:
        nonlocal more
        if len(out) < limit:
            out.append(change)
        else:
            more += 1

    def walk(path: str, a: Any, b: Any) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in a:
                if k not in b:
                    add(Change(op="removed", path=_key(path, k), before=show(a[k])))
                else:
                    walk(_key(path, k), a[k], b[k])
            for k in b:
                if k not in a:
                    add(Change(op="added", path=_key(path, k), after=show(b[k])))
            return
        if isinstance(a, list) and isinstance(b, list):
            for i in range(max(len(a), len(b))):
                p = f"{path}[{i}]"
                if i >= len(b):
                    add(Change(op="removed", path=p, before=show(a[i])))
                elif i >= len(a):
                    add(Change(op="added", path=p, after=show(b[i])))
                else:
                    walk(p, a[i], b[i])
            return
        if type(a) is not type(b) or a != b:
            add(Change(op="changed", path=path or "(the state)", before=show(a),
                       after=show(b)))

    walk("", before, after)
    return StateDiff(changes=out, more=more)
