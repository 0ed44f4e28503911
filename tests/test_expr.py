"""The safe evaluator: scenario expressions work, and nothing reaches Python internals."""

from __future__ import annotations

import time

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


NAMES = {"args", "state", "task", "messages"}


@pytest.mark.parametrize("src", [
    "args.amount > 0 and task.id",
    "[m for m in messages if 'x' in m]",
    "all(o.status == 'ok' for o in state.orders.values())",
    "[x for xs in state.rows for x in xs if x > len(xs)]",  # a later generator sees xs
    "any(k == v for k, v in args.items())",  # tuple targets
    "true and not null and len(messages) == 0",  # YAML spellings and functions are known
])
def test_names_in_scope_compile(src):
    compile_expr(src, names=NAMES)


@pytest.mark.parametrize(("src", "bad", "hint"), [
    ("arg.days > 3", "arg", "did you mean 'args'?"),
    ("[m for m in messages] and m", "m", ""),  # a comprehension's variable does not leak
    ("[x for x in xs]", "xs", ""),  # the first iterable is read outside the comprehension
    ("stat.orders", "stat", "did you mean 'state'?"),
])
def test_unknown_names_are_refused_with_a_suggestion(src, bad, hint):
    with pytest.raises(ExprError) as e:
        compile_expr(src, names=NAMES)
    msg = str(e.value)
    assert f"uses unknown name {bad!r}" in msg and hint in msg
    assert "available: args, messages, state, task" in msg
    compile_expr(src)  # without names, nothing is checked


def test_tuple_targets_evaluate():
    ctx = {"d": {"a": 1, "b": 2}}
    assert compile_expr("[k for k, v in d.items() if v > 1]").evaluate(ctx) == ["b"]
    with pytest.raises(ExprError, match="plain names"):
        compile_expr("[x for x.y in d]")
    with pytest.raises(ExprEvalError, match="cannot unpack"):
        compile_expr("[a for a, b in d]").evaluate({"d": ["abc"]})


# --- bounds: an expression cannot stall or exhaust a run (issue 14) --------------------------
@pytest.mark.parametrize(("src", "why"), [
    ("10**10**10", "integer of about"),
    ("[c for c in 'a'*10**8]", "str of 100,000,000 items"),
    ("'a'*10**10", "str of 10,000,000,000 items"),
    ("int('x') > 0", "fails on any data"),
    ("10.0**400", "OverflowError"),
    ("+".join(["1"] * 600), "nested too deeply"),
    ("x" * 20_000, "at most 10000"),
    ("args.amount > 10**10**10", "integer of about"),  # a constant part, inside a real check
])
def test_what_fails_on_any_data_is_refused_at_load(src, why):
    t0 = time.perf_counter()
    with pytest.raises(ExprError, match=why):
        compile_expr(src)
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize(("src", "why"), [
    ("len([c for c in x * 10**8])", "str of 200,000,000 items"),
    ("x * 10**10", "str of 20,000,000,000 items"),
    ("int(x)", "ValueError"),
    ("y ** 400", "OverflowError"),
    ("n ** n ** n", "integer of about"),
    ("[a for a in l for b in l for c in l]", "steps"),
    ("x.replace('', x * 400000)", "str of more than"),
    ("sum(l, [])", "start must be a number"),
    ("x * 499999 + x * 499999", "1,999,996 items"),
    ("str(n ** 5000)", "ValueError|integer"),
])
def test_bounds_at_run_time_are_evaluation_errors(src, why):
    ctx = {"x": "ab", "y": 10.0, "n": 10, "l": list(range(1000))}
    t0 = time.perf_counter()
    with pytest.raises(ExprEvalError, match=why):
        compile_expr(src).evaluate(ctx)
    assert time.perf_counter() - t0 < 2.5


def test_a_failing_expression_is_the_grades_error_not_the_harness():
    """Assert and args_match report an expression that fails on this data as a failed grade
    that says why (never an exception that would be an infrastructure error)."""
    import anyio

    from trialrun.graders.base import OutcomeContext
    from trialrun.graders.builtin import Assert, AssertOptions

    for src in ("int(task.id) > 0", "task.id * 10**10 == ''", "len(task.id * 10**8) > 0"):
        g = Assert(AssertOptions(expr=src))
        ctx = OutcomeContext(task={"id": "t"}, outcome={}, end_reason="finished", steps=0)
        grade = anyio.run(g.grade_outcome, ctx)
        assert not grade.passed and grade.reason.startswith("could not evaluate"), grade
