"""Built-in deterministic graders (all `trusted`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from trialrun.expr import Expr, ExprEvalError, compile_expr
from trialrun.graders.base import (
    Grader,
    GraderOptions,
    OutcomeContext,
    StepContext,
    compile_in_scope,
)
from trialrun.registry import did_you_mean, register
from trialrun.trajectory import Grade


@register("grader", "world")
class WorldVerdict(Grader):
    """The world's own ground truth: was this decision sound given the state before it?"""

    waits = False

    def __init__(self, options: GraderOptions, label: str | None = None) -> None:
        super().__init__(options, label)
        # Grades are values and most steps repeat one (same node, same verdict): handing out
        # one instance skips a model construction on every step of every episode.
        self._grades: dict[tuple[bool, str, str], Grade] = {}

    async def grade_step(self, ctx: StepContext) -> Grade | None:
        v = ctx.verdict
        if v is None:
            return None
        key = (v.correct, v.reason, ctx.node)
        g = self._grades.get(key)
        if g is None:
            if len(self._grades) >= 4096:  # e.g. reasons naming ids: never grow without bound
                self._grades.clear()
            g = self._grades[key] = self.grade(v.correct, v.reason, node=ctx.node)
        return g

    async def grade_outcome(self, ctx: OutcomeContext) -> Grade:
        ok = bool(ctx.outcome.get("success"))
        return self.grade(ok, ctx.outcome.get("reason", ""), score=ctx.outcome.get("score"))


class AssertOptions(GraderOptions):
    expr: str = Field(description="a safe expression that must be true, e.g. args.amount > 0")
    message: str = ""

    @field_validator("expr")
    @classmethod
    def _parses(cls, v: str, info: ValidationInfo) -> str:
        compile_in_scope(v, info)  # raises ExprError with the reason; the loader adds file:line
        return v


@register("grader", "assert")
class Assert(Grader):
    """A safe expression over the step (args, result, task, state) or the outcome."""

    waits = False

    Options = AssertOptions
    needs_state = True

    def __init__(self, options: AssertOptions, label: str | None = None) -> None:
        super().__init__(options, label)
        self.expr: Expr = compile_expr(options.expr)

    def _check(self, context: dict[str, Any], node: str | None) -> Grade:
        try:
            ok = bool(self.expr.evaluate(context))
        except ExprEvalError as e:
            return self.grade(False, f"could not evaluate: {e}", node=node)
        msg = self.options.message or self.options.expr
        return self.grade(ok, ("holds: " if ok else "failed: ") + msg, node=node)

    async def grade_step(self, ctx: StepContext) -> Grade:
        return self._check(ctx.expr_context(), ctx.node)

    async def grade_outcome(self, ctx: OutcomeContext) -> Grade:
        return self._check(ctx.expr_context(), None)


def _expr_value(v: Any, info: ValidationInfo) -> Any:
    """A value that is an expression when it is a string starting with '='."""
    if isinstance(v, str) and v.startswith("="):
        compile_in_scope(v[1:], info)
    return v


ExprOrValue = Annotated[Any, AfterValidator(_expr_value)]
ExprOrText = Annotated[str, AfterValidator(_expr_value)]


class ArgsMatchOptions(GraderOptions):
    args: dict[str, ExprOrValue] = Field(description="argument values the call must have; "
                                         "strings starting with '=' are expressions")
    tool: str | None = None

    @field_validator("tool")
    @classmethod
    def _known_tool(cls, v: str | None, info: ValidationInfo) -> str | None:
        tools = (info.context or {}).get("tool_names")
        if v is not None and tools is not None and v not in tools:
            raise ValueError(f"unknown tool {v!r}{did_you_mean(v, tools)} (the world offers: "
                             f"{', '.join(sorted(tools))})")
        return v

    @model_validator(mode="after")
    def _known_args(self, info: ValidationInfo) -> ArgsMatchOptions:
        """Each expected argument is one the tool takes (when the tool is known: named by
        `tool`, or the only tool whose calls land at the node)."""
        ctx = info.context or {}
        world = ctx.get("world")
        tool = self.tool
        if tool is None and len(ctx.get("node_tools") or ()) == 1:
            (tool,) = ctx["node_tools"]
        declared = getattr(world, "declared_tools", {}).get(tool) if tool else None
        if declared is None:
            return self
        params = list(declared.args.model_fields)
        for key in self.args:
            if key not in params:
                raise ValueError(f"args.{key}: tool {tool!r} takes no argument {key!r}"
                                 f"{did_you_mean(key, params)} (it takes: "
                                 f"{', '.join(params) or 'no arguments'})")
        return self


@register("grader", "args_match")
class ArgsMatch(Grader):
    """The call names the expected tool and arguments (a subset match)."""

    waits = False

    Options = ArgsMatchOptions
    scopes = frozenset({"node"})

    def __init__(self, options: ArgsMatchOptions, label: str | None = None) -> None:
        super().__init__(options, label)
        self.expected = {
            k: compile_expr(v[1:]) if isinstance(v, str) and v.startswith("=") else v
            for k, v in options.args.items()
        }

    async def grade_step(self, ctx: StepContext) -> Grade:
        d = ctx.decision
        if self.options.tool and d.tool != self.options.tool:
            return self.grade(False, f"called {d.tool!r}, expected {self.options.tool!r}",
                              node=ctx.node)
        context = ctx.expr_context()
        for key, want in self.expected.items():
            if isinstance(want, Expr):
                try:
                    want = want.evaluate(context)
                except ExprEvalError as e:
                    return self.grade(False, f"could not evaluate {key}: {e}", node=ctx.node)
            got = d.args.get(key)
            if got != want:
                return self.grade(False, f"{key}={got!r}, expected {want!r}", node=ctx.node)
        return self.grade(True, "arguments match", node=ctx.node)


class ReplyContainsOptions(GraderOptions):
    facts: list[ExprOrText] = Field(description="substrings (case-insensitive) the messages to the "
                             "user must contain; '=expr' computes one from the outcome")
    forbid: list[str] = Field(default_factory=list, description="substrings that must not appear")


@register("grader", "reply_contains")
class ReplyContains(Grader):
    """The agent's messages to the user state the required facts."""

    waits = False

    Options = ReplyContainsOptions
    scopes = frozenset({"outcome"})

    async def grade_outcome(self, ctx: OutcomeContext) -> Grade:
        said = " \n".join(ctx.outcome.get("messages", [])).lower()
        context = ctx.expr_context()
        missing = []
        for fact in self.options.facts:
            text = fact
            if fact.startswith("="):
                try:
                    text = str(compile_expr(fact[1:]).evaluate(context))
                except ExprEvalError as e:
                    return self.grade(False, f"could not evaluate fact {fact!r}: {e}")
            if text.lower() not in said:
                missing.append(text)
        present = [f for f in self.options.forbid if f.lower() in said]
        if missing or present:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if present:
                parts.append(f"says forbidden {present}")
            n = len(self.options.facts) + len(self.options.forbid)
            return self.grade(False, "; ".join(parts),
                              score=1 - (len(missing) + len(present)) / max(n, 1))
        return self.grade(True, "all facts stated")


class StateEqualsOptions(GraderOptions):
    path: str | None = Field(None, description="compare only this part, e.g. orders (dots go "
                             "deeper: orders.O1.status)")

    @model_validator(mode="after")
    def _known_path(self, info: ValidationInfo) -> StateEqualsOptions:
        """At load: the world states an expected final state at all (its `outcome_keys`),
        and the path's first part is one of its state's keys (when it declares
        `state_keys`)."""
        v = self.path
        if v is not None and not all(v.split(".")):
            raise ValueError(f"path: {v!r} is not keys separated by dots, e.g. orders")
        ctx = info.context or {}
        world = ctx.get("world")
        keys = ctx.get("outcome_keys")
        name = getattr(world, "name", None) or getattr(world, "__name__", "?")
        if keys is not None and "expected_state" not in keys:
            raise ValueError(f"world {name!r} states no expected final state (its outcome "
                             f"has: {', '.join(sorted(keys))}), so state_equals cannot judge")
        state_keys = getattr(world, "state_keys", None)
        if v is not None and state_keys is not None:
            head = v.split(".")[0]
            if head not in state_keys:
                raise ValueError(f"path: the state of world {name!r} has no key {head!r}"
                                 f"{did_you_mean(head, state_keys)} (it has: "
                                 f"{', '.join(sorted(state_keys))})")
        return self


_MISSING = object()


def _at(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() \
                and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


@register("grader", "state_equals")
class StateEquals(Grader):
    """The final state equals the expected one the world derived from the task and policy.
    A path that is not in the expected state cannot be judged: a failed grade saying so,
    never a pass (None == None)."""

    waits = False

    Options = StateEqualsOptions
    scopes = frozenset({"outcome"})

    async def grade_outcome(self, ctx: OutcomeContext) -> Grade:
        expected = ctx.outcome.get("expected_state")
        actual = ctx.outcome.get("state")
        if expected is None:
            return self.grade(False, "could not judge: this world states no expected final "
                              "state")
        path = self.options.path
        if path:
            expected = _at(expected, path)
            if expected is _MISSING:
                return self.grade(False, f"could not judge: no path {path!r} in the expected "
                                  "final state")
            actual = _at(actual if actual is not None else {}, path)
            if actual is _MISSING:
                return self.grade(False, f"final state differs: no path {path!r} in the "
                                  f"final state (expected {expected!r})")
        if expected == actual:
            return self.grade(True, "final state as expected")
        return self.grade(False, "final state differs: " + _first_difference(expected, actual))


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
    return f"{path or '<root>'}: expected {a!r}, got {b!r}"
