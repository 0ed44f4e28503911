"""The retail world's kept digest and the tools' fast argument check change nothing: the
digest equals one computed from scratch after every kind of change, and a plain call's
arguments pass or fail exactly as the argument model says."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pydantic import ValidationError

from trialrun.sandbox.tools import DeclaredTool, ToolError, _brief
from trialrun.sandbox.world import World
from trialrun.sandbox.worlds.retail import RetailWorld

TASK = {"id": "t", "customer": {"name": "Kofi Osei", "email": "kofi.o@example.com",
                                "zip": "19103"},
        "orders": [{"id": "O-1", "items": [{"sku": "P121", "qty": 2}, {"sku": "P122"}],
                    "status": "delivered", "days_since_delivery": 6},
                   {"id": "O-2", "items": [{"sku": "P100"}], "status": "pending"}],
        "request": {"type": "refund", "mentions": "yoga"}, "ambiguous": True}


def from_scratch(w: RetailWorld) -> str:
    """The digest as defined: the seed, the touched orders, messages, verified, clarified."""
    blob = json.dumps([w.seed, {k: w.orders[k] for k in sorted(w.touched)}, w.messages,
                       w.verified, w.clarified], separators=(",", ":"))
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


def test_digest_follows_every_change() -> None:
    w = RetailWorld({"customers": 3}, TASK, 7)
    w.reset()
    seen = [w.digest()]

    def check(changed: bool) -> None:
        d = w.digest()
        assert d == from_scratch(w)
        assert (d != seen[-1]) == changed
        seen.append(d)

    def call(tool: str, changed: bool, **args: Any) -> None:
        try:
            w.execute("n", tool, args)
        except ToolError:
            pass
        check(changed)

    assert seen[0] == from_scratch(w)
    call("find_customer", False, email="nobody@example.com")  # refused: nothing changes
    call("find_customer", True, email="kofi.o@example.com")
    call("list_orders", False, customer_id="C0001")
    call("get_order", False, order_id="O-1")
    call("refund", True, order_id="O-1", amount=10.0)
    call("refund", True, order_id="O-1", amount=1.5)  # the same order again
    call("cancel", True, order_id="O-2")
    call("refund", False, order_id="O-2", amount=1.0)  # refused
    call("exchange", True, order_id="O-1", sku="P122", new_sku="P123")
    call("reply", True, message="Refunded 11.50 — “thanks”")
    w.on_message("and goodbye")
    check(True)
    w.human_answer("which order?")
    check(True)
    snap = w.snapshot()
    call("reply", True, message="one more")
    w.restore(snap)
    check(True)
    assert w.digest() == seen[-3]  # the state the snapshot holds
    w.load_state(json.loads(json.dumps(w.state())))
    check(False)


def _model_says(t: DeclaredTool, args: dict[str, Any]) -> Any:
    """What the argument model alone makes of `args` (the check's slow path)."""
    try:
        m = t.args.model_validate(args, strict=True)
    except ValidationError as e:
        return ("refused", f"{t.spec.name}: bad arguments: {_brief(e)}")
    return {k: getattr(m, k) for k in args}


def _worlds(cls: type) -> list[type]:
    return [c for s in cls.__subclasses__() for c in (s, *_worlds(s))]


@pytest.mark.parametrize("value", ["x", "", 3, 0, 2.5, True, None, [1], {"a": 1}])
def test_plain_argument_check_agrees_with_the_model(value: Any) -> None:
    import trialrun.sandbox.worlds.calendar  # noqa: F401 - registers the worlds checked
    import trialrun.sandbox.worlds.codebase  # noqa: F401
    import trialrun.sandbox.worlds.vending  # noqa: F401
    import trialrun.sandbox.worlds.workflow  # noqa: F401

    checked = 0
    for cls in _worlds(World):
        for t in cls.declared_tools.values():
            names = list(t.args.model_fields)
            for args in ({n: value for n in names}, {n: value for n in names[:1]},
                         {**{n: value for n in names}, "extra": value}):
                try:
                    got: Any = t.validate(args)
                except ToolError as e:
                    got = ("refused", str(e))
                assert got == _model_says(t, args), (cls.__name__, t.spec.name, args)
                checked += t.plain is not None
    assert checked > 0
