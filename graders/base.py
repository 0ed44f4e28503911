"""Grader protocol and registry.

A node grader scores one decision at a node as it happens; an outcome grader scores the end
of the episode. Each grade says passed/score, why, and how far it is trusted (`trusted` for
deterministic checks, `noisy` for LLM judges). Grader options are a pydantic model, checked
when the scenario loads, so a typo in a grader option is a load error with a line number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo

from trialrun.expr import Expr, compile_expr
from trialrun.sandbox.world import Verdict
from trialrun.trajectory import Decision, Grade, ToolResult, Trust
from trialrun.waits import reset_unless_declared


class GraderOptions(BaseModel):
    """Base of every grader's options model: unknown keys refused.

    When the scenario loads, the loader validates them with a context (`info.context` in a
    validator; None when graders are built for a run, so validators must then skip checks):

    - `world`: the world class; `world_options`: its validated options;
    - `tool_names`: every tool the world offers (None: only known at run time);
    - `scope`: "node" or "outcome"; `node`: the node the grader is attached to (or None);
    - `node_tools`: the tools whose calls land at that node (None: unknown, e.g. the agent
      names its own nodes);
    - `outcome_keys`: the keys of the world's `outcome()` (None: unknown).

    `expr_names(info.context)` gives the variables an expression may use in that scope, and
    `compile_in_scope(source, info)` compiles one against them.
    """

    model_config = ConfigDict(extra="forbid")


@dataclass
class StepContext:
    """What a node grader sees: the decision, the world's verdict before it took effect,
    the tool result, and the world state after it."""

    # The names `expr_context()` provides (what a node grader's expression may use).
    variables: ClassVar[frozenset[str]] = frozenset({
        "node", "tool", "args", "text", "kind", "result", "ok", "task", "state"})

    node: str
    decision: Decision
    verdict: Verdict | None
    result: ToolResult | None
    task: dict[str, Any]
    state: dict[str, Any] | None = None  # filled lazily: reading state can be costly

    def expr_context(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "tool": self.decision.tool,
            "args": self.decision.args,
            "text": self.decision.text or "",
            "kind": self.decision.kind,
            "result": self.result.output if self.result else None,
            "ok": bool(self.result and self.result.ok),
            "task": self.task,
            "state": self.state or {},
        }


@dataclass
class OutcomeContext:
    """What an outcome grader sees: the world's `outcome()` dict and how the episode ended;
    an expression reads the outcome's keys plus `task`, `end_reason` and `steps`."""

    # The names `expr_context()` adds to the outcome's own keys.
    variables: ClassVar[frozenset[str]] = frozenset({"task", "end_reason", "steps"})

    task: dict[str, Any]
    outcome: dict[str, Any]  # World.outcome(): state, messages, success, score...
    end_reason: str
    steps: int
    extra: dict[str, Any] = field(default_factory=dict)

    def expr_context(self) -> dict[str, Any]:
        return {**self.outcome, "task": self.task, "end_reason": self.end_reason,
                "steps": self.steps}


def outcome_keys(world_cls: type | None) -> frozenset[str] | None:
    """The keys a world's `outcome()` returns, when they can be known: the class's
    `outcome_keys` ClassVar if it declares one, `{"state"}` if it keeps the base `outcome()`,
    None (unknown) otherwise."""
    if world_cls is None:
        return None
    declared = getattr(world_cls, "outcome_keys", None)
    if declared is not None:
        return frozenset(declared)
    from trialrun.sandbox.world import World

    if isinstance(world_cls, type) and issubclass(world_cls, World) \
            and world_cls.outcome is World.outcome:
        return frozenset({"state"})
    return None


def expr_names(context: Mapping[str, Any] | None) -> frozenset[str] | None:
    """The variables an expression may use in the scope the loader validates in (None: not
    known, so names are not checked: no context, or an outcome of a world whose outcome keys
    are unknown)."""
    if not context:
        return None
    scope = context.get("scope")
    if scope == "node":
        return StepContext.variables
    if scope == "outcome":
        keys = context.get("outcome_keys")
        return None if keys is None else OutcomeContext.variables | frozenset(keys)
    return None


def compile_in_scope(source: str, info: ValidationInfo | None) -> Expr:
    """Compile an expression, checking its names against the scope's variables when the
    loader says what they are. Raises ExprError (a ValueError) with the reason."""
    return compile_expr(source, expr_names(info.context if info is not None else None))


class Grader:
    """Base class of node-level and outcome graders.

    Register with `@register("grader", "my_check")`; declare options as `Options` (a
    GraderOptions model), validated when the scenario loads. `grade_step` is awaited for every
    step at a node the grader is attached to and returns a Grade, or None when it has nothing
    to say about this step; `grade_outcome` is awaited once at the end of the episode. Both are
    async so that an LLM judge is awaited without blocking the loop. A grader that cannot judge
    returns a failed Grade saying why; it never passes by default.
    """

    name: ClassVar[str] = ""  # the registered type name
    trust: ClassVar[Trust] = Trust.trusted
    Options: ClassVar[type[GraderOptions]] = GraderOptions
    # Which contexts the grader supports: "node", "outcome" or both.
    scopes: ClassVar[frozenset[str]] = frozenset({"node", "outcome"})
    needs_state: ClassVar[bool] = False
    # Whether grading may wait on something outside this process (an LLM judge); as
    # `Agent.waits`. The built-in deterministic graders say False.
    waits: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        reset_unless_declared(cls, ("grade_step", "grade_outcome"))

    def __init__(self, options: GraderOptions, label: str | None = None) -> None:
        self.options = options
        self.label = label or self.name  # how its grades are named in reports

    async def grade_step(self, ctx: StepContext) -> Grade | None:
        raise NotImplementedError

    async def grade_outcome(self, ctx: OutcomeContext) -> Grade:
        raise NotImplementedError

    def grade(self, passed: bool, reason: str = "", score: float | None = None,
              node: str | None = None) -> Grade:
        return Grade(grader=self.label, passed=passed, score=float(passed) if score is None
                     else score, reason=reason, trust=self.trust, node=node)
