"""Built-in deterministic graders (all `trusted`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from trialrun.expr import Expr, ExprEvalError, compile_expr
from trialrun.graders.base import (
    Grader,
    GraderOptions,
    OutcomeContext,
    StepContext,
    register_grader,
)
from trialrun.trajectory import Grade


@register_grader
class WorldVerdict(Grader):
    """The world's own ground truth: was this decision sound given the state before it?"""

    type = "world"

    def grade_step(self, ctx: StepContext) -> Grade | None:
        if ctx.verdict is None:
            return None
        return self.grade(ctx.verdict.correct, ctx.verdict.reason, node=ctx.node)

    def grade_outcome(self, ctx: OutcomeContext) -> Grade:
        ok = bool(ctx.outcome.get("success"))
        return self.grade(ok, ctx.outcome.get("reason", ""), score=ctx.outcome.get("score"))


class AssertOptions(GraderOptions):
    expr: str = Field(description="a safe expression that must be true, e.g. args.amount > 0")
    message: str = ""

    @field_validator("expr")
    @classmethod
    def _parses(cls, v: str) -> str:
        compile_expr(v)  # raises ExprError with the reason; the loader adds file:line
        return v


@register_grader
class Assert(Grader):
    """A safe expression over the step (args, result, task, state) or the outcome."""

    type = "assert"
    Options = AssertOptions
    needs_state = True

    def __init__(self, options: AssertOptions, name: str | None = None) -> None:
        super().__init__(options, name)
        self.expr: Expr = compile_expr(options.expr)

    def _check(self, context: dict[str, Any], node: str | None) -> Grade:
        try:
            ok = bool(self.expr.evaluate(context))
        except ExprEvalError as e:
            return self.grade(False, f"could not evaluate: {e}", node=node)
        msg = self.options.message or self.options.expr
        return self.grade(ok, ("holds: " if ok else "failed: ") + msg, node=node)

    def grade_step(self, ctx: StepContext) -> Grade:
        return self._check(ctx.expr_context(), ctx.node)

    def grade_outcome(self, ctx: OutcomeContext) -> Grade:
        return self._check(ctx.expr_context(), None)


class ArgsMatchOptions(GraderOptions):
    args: dict[str, Any] = Field(description="argument values the call must have; "
                                 "strings starting with '=' are expressions")
    tool: str | None = None


@register_grader
class ArgsMatch(Grader):
    """The call names the expected tool and arguments (a subset match)."""

    type = "args_match"
    Options = ArgsMatchOptions
    scopes = frozenset({"node"})

    def __init__(self, options: ArgsMatchOptions, name: str | None = None) -> None:
        super().__init__(options, name)
        self.expected = {
            k: compile_expr(v[1:]) if isinstance(v, str) and v.startswith("=") else v
            for k, v in options.args.items()
        }

    def grade_step(self, ctx: StepContext) -> Grade:
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
    facts: list[str] = Field(description="substrings (case-insensitive) the messages to the "
                             "user must contain; '=expr' computes one from the outcome")
    forbid: list[str] = Field(default_factory=list, description="substrings that must not appear")


@register_grader
class ReplyContains(Grader):
    """The agent's messages to the user state the required facts."""

    type = "reply_contains"
    Options = ReplyContainsOptions
    scopes = frozenset({"outcome"})

    def grade_outcome(self, ctx: OutcomeContext) -> Grade:
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
    path: str | None = Field(None, description="compare only this part, e.g. orders")


@register_grader
class StateEquals(Grader):
    """The final state equals the expected one the world derived from the task and policy."""

    type = "state_equals"
    Options = StateEqualsOptions
    scopes = frozenset({"outcome"})

    def grade_outcome(self, ctx: OutcomeContext) -> Grade:
        expected = ctx.outcome.get("expected_state")
        actual = ctx.outcome.get("state")
        if expected is None:
            return self.grade(False, "this world states no expected final state")
        if self.options.path:
            expected = expected.get(self.options.path)
            actual = (actual or {}).get(self.options.path)
        if expected == actual:
            return self.grade(True, "final state as expected")
        return self.grade(False, "final state differs: " + _first_difference(expected, actual))


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
    return f"{path or '<root>'}: expected {a!r}, got {b!r}"
