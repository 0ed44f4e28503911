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

Bounds: an expression cannot stall or exhaust a run. Its source is at most `MAX_SOURCE`
characters nested at most `MAX_DEPTH` deep; evaluating it takes at most `MAX_STEPS` steps and
`MAX_SECONDS` of wall time, and builds no string, list or mapping longer than `MAX_SIZE` and no
integer wider than `MAX_INT_BITS`. Parts without variables (`10**10**10`, `'a' * 10**10`,
`int('x')`) are evaluated when the expression compiles, so what breaks a bound on any data is
refused at load. Whatever fails while evaluating (a bound, a missing key, `int('x')`) raises
`ExprEvalError`, which a grader reports as its failed grade with the reason.
"""

from __future__ import annotations

import ast
import math
import operator
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from trialrun.registry import did_you_mean

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "sum": lambda items, start=0: _sum(items, start),
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
    ast.Add: lambda a, b: _add(a, b), ast.Sub: operator.sub,
    ast.Mult: lambda a, b: _mul(a, b), ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: lambda a, b: _mod(a, b),
    ast.Pow: lambda a, b: _pow(a, b),
}


def _sum(items: Any, start: Any = 0) -> Any:
    if not isinstance(start, int | float):  # sum(lists, []) concatenates in quadratic time
        raise TypeError("sum() adds numbers; its start must be a number")
    return sum(items, start)


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):  # '%' formatting: '%9999999999d' % 1 would build a huge string
        raise TypeError("'%' formatting of strings is not supported in expressions")
    return a % b
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos,
}


MAX_SOURCE = 10_000  # characters of an expression
MAX_DEPTH = 100  # nesting of its syntax tree
MAX_STEPS = 1_000_000  # nodes evaluated (comprehension bodies count once per item)
MAX_SECONDS = 2.0  # wall time of one evaluation
MAX_SIZE = 1_000_000  # items of a string, list, tuple, set or mapping built
MAX_INT_BITS = 65_536  # width of an integer built


class ExprError(ValueError):
    """An expression that does not parse or uses something outside the whitelist."""

    def __init__(self, message: str, col: int | None = None) -> None:
        super().__init__(message)
        self.col = col


class ExprEvalError(ValueError):
    """An expression that parsed but failed on this data (missing key, wrong type)."""


class ExprLimitError(ExprEvalError):
    """An expression that went past a bound (size, steps, time) while evaluating."""


class Expr:
    """A parsed, validated expression; evaluate it against a context mapping many times."""

    __slots__ = ("source", "_tree")

    def __init__(self, source: str, tree: ast.Expression) -> None:
        self.source = source
        self._tree = tree

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        try:
            return _Evaluator(context).visit(self._tree.body)
        except ExprLimitError as e:
            raise ExprLimitError(f"{self.source!r}: {e}") from None
        except ExprEvalError:
            raise
        except (KeyError, IndexError, TypeError, AttributeError, ZeroDivisionError, ValueError,
                OverflowError, ArithmeticError) as e:
            raise ExprEvalError(f"{self.source!r}: {type(e).__name__}: {e}") from None
        except RecursionError:
            raise ExprLimitError(f"{self.source!r}: nested too deeply") from None
        except MemoryError:
            raise ExprLimitError(f"{self.source!r}: out of memory") from None

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
    if len(source) > MAX_SOURCE:
        raise ExprError(f"is {len(source)} characters long; at most {MAX_SOURCE} are allowed")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ExprError(f"does not parse: {e.msg}", col=e.offset) from None
    except (RecursionError, MemoryError):
        raise ExprError(f"is nested too deeply (at most {MAX_DEPTH} levels)") from None
    _check_depth(tree.body)
    _check(tree.body)
    if names is not None:
        known = ALWAYS_KNOWN | frozenset(names)
        for n in free_names(tree.body):
            if n.id not in known:
                raise ExprError(
                    f"uses unknown name {n.id!r}{did_you_mean(n.id, set(names))} "
                    f"(available: {', '.join(sorted(names))})", col=n.col_offset)
    _fold_constants(tree.body)
    return Expr(source, tree)


def _check_depth(root: ast.AST) -> None:
    """Refuse a syntax tree nested deeper than MAX_DEPTH (iteratively: no recursion)."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExprError(f"is nested too deeply (more than {MAX_DEPTH} levels; split a long "
                            "sum or chain into parts)", col=getattr(node, "col_offset", None))
        stack.extend((c, depth + 1) for c in ast.iter_child_nodes(node))


def _is_constant(node: ast.AST) -> bool:
    """No variable anywhere in it (only literals, operators and the allowed functions)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id not in ALWAYS_KNOWN:
            return False
        if isinstance(sub, ast.ListComp | ast.GeneratorExp | ast.Attribute):
            return False
    return True


def _fold_constants(root: ast.AST) -> None:
    """Evaluate, within the bounds, every largest part without variables that computes
    something (an operator or a call): what breaks a bound or fails there would on any data,
    so it is refused now (ExprError) rather than on every step of every episode."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.BinOp | ast.UnaryOp | ast.Call) and _is_constant(node):
            try:
                _Evaluator({}).visit(node)
            except ExprLimitError as e:
                raise ExprError(f"{e} on any data: {ast.unparse(node)[:80]}",
                                col=node.col_offset) from None
            except (ExprEvalError, KeyError, IndexError, TypeError, AttributeError,
                    ArithmeticError, ValueError, RecursionError, MemoryError) as e:
                raise ExprError(f"fails on any data: {ast.unparse(node)[:80]} raises "
                                f"{type(e).__name__}: {e}", col=node.col_offset) from None
            continue
        stack.extend(ast.iter_child_nodes(node))


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict | set
                                    | frozenset) else 0


def _check_built(value: Any) -> Any:
    """A value just built stays within MAX_SIZE items and MAX_INT_BITS bits."""
    if _size(value) > MAX_SIZE:
        raise ExprLimitError(f"builds a {type(value).__name__} of {_size(value):,} items "
                             f"(at most {MAX_SIZE:,})")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ExprLimitError(f"builds an integer of {value.bit_length():,} bits (at most "
                             f"{MAX_INT_BITS:,})")
    return value


def _bits(x: Any) -> float:
    if isinstance(x, bool):
        return 1.0
    if isinstance(x, int):
        return float(max(x.bit_length(), 1))
    if isinstance(x, float):
        return abs(math.frexp(x)[1]) + 1.0 if math.isfinite(x) and x else 1.0
    return 0.0


def _mul(a: Any, b: Any) -> Any:
    """`*` that refuses, before building it, a sequence longer than MAX_SIZE (`'a' * 10**10`)
    or an integer wider than MAX_INT_BITS."""
    for seq, n in ((a, b), (b, a)):
        if _size(seq) and isinstance(n, int) and _size(seq) * max(n, 0) > MAX_SIZE:
            raise ExprLimitError(f"would build a {type(seq).__name__} of "
                                 f"{_size(seq) * n:,} items (at most {MAX_SIZE:,})")
    if isinstance(a, int) and isinstance(b, int) and _bits(a) + _bits(b) > MAX_INT_BITS + 1:
        raise ExprLimitError(f"would build an integer wider than {MAX_INT_BITS:,} bits")
    return a * b


def _pow(a: Any, b: Any) -> Any:
    """`**` that refuses, before computing it, an integer wider than MAX_INT_BITS
    (`10**10**10`); a float that overflows is an OverflowError, reported as such."""
    if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1 \
            and (abs(a).bit_length() - 1) * b > MAX_INT_BITS:
        raise ExprLimitError(f"would build an integer of about {(abs(a).bit_length() - 1) * b:,}"
                             f" bits (at most {MAX_INT_BITS:,})")
    return a ** b


def _add(a: Any, b: Any) -> Any:
    if _size(a) and _size(b) and _size(a) + _size(b) > MAX_SIZE:
        raise ExprLimitError(f"would build a {type(a).__name__} of {_size(a) + _size(b):,} "
                             f"items (at most {MAX_SIZE:,})")
    return a + b


def _replace(s: str, old: Any = None, new: Any = None, *rest: Any) -> Any:
    if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        n = s.count(old) if old else len(s) + 1
        if len(s) + n * (len(new) - len(old)) > MAX_SIZE:
            raise ExprLimitError(f"would build a str of more than {MAX_SIZE:,} items")
    return s.replace(old, new, *rest)


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
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def visit(self, node: ast.AST) -> Any:
        self.steps += 1
        if self.steps & 1023 == 0:
            if self.steps > MAX_STEPS:
                raise ExprLimitError(f"took more than {MAX_STEPS:,} steps")
            if time.monotonic() > self.deadline:
                raise ExprLimitError(f"took more than {MAX_SECONDS:g} s")
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
        if n.attr == "replace" and isinstance(base, str):
            return lambda *a: _replace(base, *a)
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
        return _check_built(_BINOPS[type(n.op)](self.visit(n.left), self.visit(n.right)))

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
        return _check_built(func(*[self.visit(a) for a in n.args]))

    def _comprehend(self, n: ast.ListComp | ast.GeneratorExp) -> list:
        out: list = []

        def loop(i: int) -> None:
            if i == len(n.generators):
                out.append(self.visit(n.elt))
                return
            gen = n.generators[i]
            for item in self.visit(gen.iter):
                if len(out) >= MAX_SIZE:
                    raise ExprLimitError(f"builds a list of more than {MAX_SIZE:,} items")
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
