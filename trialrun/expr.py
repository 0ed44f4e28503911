"""A small, safe expression language for scenario YAML (state assertions, argument checks).

Expressions are Python syntax restricted to a whitelist: literals, names from the context,
`a.b` (attribute or dict key), `a[b]`, arithmetic, comparisons, `and`/`or`/`not`, `in`,
conditional expressions, comprehensions over lists, and calls to the functions in `FUNCTIONS`
and the string/dict methods in `METHODS`. Nothing is ever passed to `eval`; names starting
with `_` are refused, so there is no way to reach Python internals.

    check = compile_expr("state.orders[args.order_id].status == 'delivered'",
                         names={"state", "args"})
    check.evaluate({"state": ..., "args": ...})

Given `names` (the variables the expression will be evaluated with), `compile_expr` also
refuses a name that is none of them, a function, a comprehension's variable or a YAML
spelling (`true`, `false`, `null`), so `arg.days` for `args.days` is an error when the
scenario loads, not a failed grade on every step.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from trialrun.registry import did_you_mean

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "sum": sum,
    "any": any,
    "all": all,
    "sorted": sorted,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "set": set,
    "list": list,
}
METHODS = {
    "lower", "upper", "strip", "startswith", "endswith", "split", "replace", "count",
    "get", "keys", "values", "items", "index",
}
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos,
}


class ExprError(ValueError):
    """An expression that does not parse or uses something outside the whitelist."""

    def __init__(self, message: str, col: int | None = None) -> None:
        super().__init__(message)
        self.col = col


class ExprEvalError(ValueError):
    """An expression that parsed but failed on this data (missing key, wrong type)."""


class Expr:
    """A parsed, validated expression; evaluate it against a context mapping many times."""

    __slots__ = ("source", "_tree")

    def __init__(self, source: str, tree: ast.Expression) -> None:
        self.source = source
        self._tree = tree

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        try:
            return _Evaluator(context).visit(self._tree.body)
        except ExprEvalError:
            raise
        except (KeyError, IndexError, TypeError, AttributeError, ZeroDivisionError) as e:
            raise ExprEvalError(f"{self.source!r}: {type(e).__name__}: {e}") from None

    def __repr__(self) -> str:
        return f"Expr({self.source!r})"


# Names every expression may use besides its context's variables.
CONSTANTS = {"true": True, "false": False, "null": None}  # YAML spellings, for authors' comfort
ALWAYS_KNOWN = frozenset(FUNCTIONS) | frozenset(CONSTANTS)


def compile_expr(source: str, names: Collection[str] | None = None) -> Expr:
    """Parse and check an expression. With `names` (the context's variables), a name that is
    not one of them (nor a function, a constant or a comprehension's variable) is an error."""
    if not isinstance(source, str) or not source.strip():
        raise ExprError("expected a non-empty expression string")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ExprError(f"does not parse: {e.msg}", col=e.offset) from None
    _check(tree.body)
    if names is not None:
        known = ALWAYS_KNOWN | frozenset(names)
        for n in free_names(tree.body):
            if n.id not in known:
                raise ExprError(
                    f"uses unknown name {n.id!r}{did_you_mean(n.id, set(names))} "
                    f"(available: {', '.join(sorted(names))})", col=n.col_offset)
    return Expr(source, tree)


def free_names(node: ast.AST, bound: frozenset[str] = frozenset()) -> Iterator[ast.Name]:
    """The names an expression reads from its context, in source order: every name except
    those a comprehension binds (within that comprehension)."""
    if isinstance(node, ast.Name):
        if node.id not in bound:
            yield node
        return
    if isinstance(node, ast.ListComp | ast.GeneratorExp):
        inner = set(bound)
        for gen in node.generators:
            yield from free_names(gen.iter, frozenset(inner))
            inner |= {t.id for t in ast.walk(gen.target) if isinstance(t, ast.Name)}
            for cond in gen.ifs:
                yield from free_names(cond, frozenset(inner))
        yield from free_names(node.elt, frozenset(inner))
        return
    for child in ast.iter_child_nodes(node):
        yield from free_names(child, bound)


_ALLOWED = (
    ast.Constant, ast.Name, ast.Load, ast.Attribute, ast.Subscript, ast.Slice, ast.BinOp,
    ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.List, ast.Tuple, ast.Dict, ast.Set,
    ast.Call, ast.ListComp, ast.GeneratorExp, ast.comprehension, ast.Store, ast.And, ast.Or,
    *_BINOPS, *_CMPOPS, *_UNARY,
)


def _check(node: ast.AST) -> None:
    for sub in ast.walk(node):
        if not isinstance(sub, _ALLOWED):
            raise ExprError(
                f"{type(sub).__name__} is not allowed in expressions",
                col=getattr(sub, "col_offset", None),
            )
        if isinstance(sub, ast.Name) and sub.id.startswith("_"):
            raise ExprError(f"name {sub.id!r} is not allowed", col=sub.col_offset)
        if isinstance(sub, ast.Attribute) and sub.attr.startswith("_"):
            raise ExprError(f"attribute {sub.attr!r} is not allowed", col=sub.col_offset)
        if isinstance(sub, ast.comprehension) and not _plain_target(sub.target):
            raise ExprError("a comprehension's variables must be plain names, e.g. "
                            "`for k, v in d.items()`", col=getattr(sub.target, "col_offset", None))
        if isinstance(sub, ast.Call):
            func = sub.func
            if sub.keywords:
                raise ExprError("keyword arguments are not allowed", col=sub.col_offset)
            if isinstance(func, ast.Name):
                if func.id not in FUNCTIONS:
                    raise ExprError(
                        f"function {func.id!r} is not allowed; allowed: "
                        f"{', '.join(sorted(FUNCTIONS))}",
                        col=sub.col_offset,
                    )
            elif isinstance(func, ast.Attribute):
                if func.attr not in METHODS:
                    raise ExprError(
                        f"method {func.attr!r} is not allowed; allowed: "
                        f"{', '.join(sorted(METHODS))}",
                        col=sub.col_offset,
                    )
            else:
                raise ExprError("only named functions can be called", col=sub.col_offset)


def _plain_target(t: ast.AST) -> bool:
    if isinstance(t, ast.Name):
        return True
    return isinstance(t, ast.Tuple) and all(_plain_target(e) for e in t.elts)


def _bind(target: ast.AST, value: Any, into: dict[str, Any]) -> None:
    if isinstance(target, ast.Name):
        into[target.id] = value
        return
    items = list(value)
    elts = target.elts  # type: ignore[attr-defined]
    if len(items) != len(elts):
        raise ExprEvalError(f"cannot unpack {len(items)} value(s) into {len(elts)} names")
    for t, v in zip(elts, items, strict=True):
        _bind(t, v, into)


class _Evaluator:
    def __init__(self, context: Mapping[str, Any]) -> None:
        self.scopes: list[Mapping[str, Any]] = [context]

    def visit(self, node: ast.AST) -> Any:
        return getattr(self, "v_" + type(node).__name__)(node)

    def v_Constant(self, n: ast.Constant) -> Any:
        return n.value

    def v_Name(self, n: ast.Name) -> Any:
        for scope in reversed(self.scopes):
            if n.id in scope:
                return scope[n.id]
        if n.id in FUNCTIONS:
            return FUNCTIONS[n.id]
        if n.id in CONSTANTS:
            return CONSTANTS[n.id]
        raise ExprEvalError(f"unknown name {n.id!r}; available: {', '.join(self._names())}")

    def _names(self) -> list[str]:
        return sorted({k for s in self.scopes for k in s})

    def v_Attribute(self, n: ast.Attribute) -> Any:
        base = self.visit(n.value)
        if isinstance(base, Mapping):
            if n.attr in base:
                return base[n.attr]
            if n.attr in METHODS:
                return getattr(base, n.attr)
            raise ExprEvalError(f"no key {n.attr!r} (keys: {', '.join(map(str, base))})")
        if n.attr in METHODS and isinstance(base, str | list | dict):
            return getattr(base, n.attr)
        raise ExprEvalError(f"cannot read .{n.attr} of {type(base).__name__}")

    def v_Subscript(self, n: ast.Subscript) -> Any:
        base = self.visit(n.value)
        key = self.visit(n.slice)
        return base[key]

    def v_Slice(self, n: ast.Slice) -> slice:
        f = self.visit
        return slice(
            f(n.lower) if n.lower else None,
            f(n.upper) if n.upper else None,
            f(n.step) if n.step else None,
        )

    def v_BinOp(self, n: ast.BinOp) -> Any:
        return _BINOPS[type(n.op)](self.visit(n.left), self.visit(n.right))

    def v_UnaryOp(self, n: ast.UnaryOp) -> Any:
        return _UNARY[type(n.op)](self.visit(n.operand))

    def v_BoolOp(self, n: ast.BoolOp) -> Any:
        value: Any = None
        for v in n.values:
            value = self.visit(v)
            if isinstance(n.op, ast.And) and not value:
                return value
            if isinstance(n.op, ast.Or) and value:
                return value
        return value

    def v_Compare(self, n: ast.Compare) -> bool:
        left = self.visit(n.left)
        for op, comp in zip(n.ops, n.comparators, strict=True):
            right = self.visit(comp)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True

    def v_IfExp(self, n: ast.IfExp) -> Any:
        return self.visit(n.body) if self.visit(n.test) else self.visit(n.orelse)

    def v_List(self, n: ast.List) -> list:
        return [self.visit(e) for e in n.elts]

    def v_Tuple(self, n: ast.Tuple) -> tuple:
        return tuple(self.visit(e) for e in n.elts)

    def v_Set(self, n: ast.Set) -> set:
        return {self.visit(e) for e in n.elts}

    def v_Dict(self, n: ast.Dict) -> dict:
        return {
            self.visit(k): self.visit(v) for k, v in zip(n.keys, n.values, strict=True) if k
        }

    def v_Call(self, n: ast.Call) -> Any:
        func = self.visit(n.func)
        return func(*[self.visit(a) for a in n.args])

    def _comprehend(self, n: ast.ListComp | ast.GeneratorExp) -> list:
        out: list = []

        def loop(i: int) -> None:
            if i == len(n.generators):
                out.append(self.visit(n.elt))
                return
            gen = n.generators[i]
            for item in self.visit(gen.iter):
                scope: dict[str, Any] = {}
                _bind(gen.target, item, scope)
                self.scopes.append(scope)
                try:
                    if all(self.visit(c) for c in gen.ifs):
                        loop(i + 1)
                finally:
                    self.scopes.pop()

        loop(0)
        return out

    v_ListComp = _comprehend
    v_GeneratorExp = _comprehend
