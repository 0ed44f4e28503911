"""The safe evaluator: scenario expressions work, and nothing reaches Python internals."""

from __future__ import annotations

import pytest

from trialrun.expr import ExprError, ExprEvalError, compile_expr

CTX = {"args": {"order_id": "O-1", "amount": 49.9},
       "state": {"orders": {"O-1": {"status": "refunded", "items": [1, 2]}}},
       "messages": ["We refunded 49.90"]}


@pytest.mark.parametrize(("src", "want"), [
    ("args.amount == 49.9", True),
    ("state.orders[args.order_id].status == 'refunded'", True),
    ("len(state.orders['O-1']['items']) * 2", 4),
    ("any('49.90' in m for m in messages)", True),
    ("[x + 1 for x in state.orders['O-1'].items if x > 1]", [3]),
    ("args.amount > 100 or args.order_id.startswith('O-')", True),
    ("'ok' if args.amount < 50 else 'high'", "ok"),
    ("state.orders.get('O-9') is None", True),
    ("true and not false", True),
])
def test_expressions_evaluate(src, want):
    assert compile_expr(src).evaluate(CTX) == want


@pytest.mark.parametrize("src", [
    "().__class__.__bases__",
    "__import__('os')",
    "open('/etc/passwd')",
    "lambda: 1",
    "args.amount.__add__(1)",
    "exec('1')",
    "[].append(1)",
    "x := 1",
    "f(a=1)",
])
def test_unsafe_expressions_are_refused_at_compile_time(src):
    with pytest.raises(ExprError):
        compile_expr(src)


def test_missing_data_is_an_evaluation_error_not_a_crash():
    with pytest.raises(ExprEvalError, match="no key 'nope'"):
        compile_expr("args.nope == 1").evaluate(CTX)
    with pytest.raises(ExprEvalError, match="unknown name"):
        compile_expr("missing > 1").evaluate(CTX)
