"""Generic escalation baselines that wrap any scripted agent: always-ask and never-ask.

They bracket a real agent on the escalation metrics. `scripted:always_ask` asks the human
once at the start of every task and again before every irreversible tool call (as the tools
mark them), so it never misses a moment that needed help (recall 1) and wastes the human's
time on clear tasks (poor precision). `scripted:never_ask` never asks: where the wrapped agent
would ask, it guesses (recall 0).

    agent:
      type: scripted:always_ask
      params: {base: scripted:calendar, error_rates: {act: 0.1}}

`base` defaults to the built-in scripted agent of the world whose tools are on offer
(`scripted:<world>`); every other param goes to the wrapped agent, so swapping a scripted
agent for its wrappers keeps the scenario's params. The wrapped agent never sees the
wrapper's own questions.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from trialrun import registry
from trialrun.agents.base import Agent, AgentContext, AgentOptions, Feedback
from trialrun.trajectory import Decision, Observation, ToolResult, ToolSpec

WRAPPERS = ("scripted:always_ask", "scripted:never_ask")


class WrapperOptions(AgentOptions):
    """`base` names the wrapped agent; every other key is one of its options, validated by
    its own `Options` model (so a typo in a wrapped option is still a load error)."""

    model_config = ConfigDict(extra="allow")

    base: str | None = Field(None, description="the scripted agent to wrap; default: "
                             "scripted:<world>, found from the tools on offer")

    @property
    def inner(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _check_inner(self, info: ValidationInfo) -> WrapperOptions:
        base = self.base
        world = (info.context or {}).get("world")
        if base is None and world is not None:
            base = f"scripted:{world.name}"
        if base in WRAPPERS:
            raise ValueError(f"base: {base} cannot wrap itself")
        if base is not None:
            try:
                inner = registry.resolve("agent", base)
            except LookupError as e:
                raise ValueError(f"base: {e}") from None
            inner.Options.model_validate(self.inner, context=info.context)
        return self


def infer_base(tools: list[ToolSpec]) -> str:
    """The built-in scripted agent for the world that offers these tools."""
    return _infer_base(frozenset(t.name for t in tools))


@functools.cache  # per tool set: resolving every known world on each episode start is slow
def _infer_base(names: frozenset[str]) -> str:
    for world in registry.names("world"):
        try:
            offered = registry.resolve("world", world).tool_names(None)
            registry.resolve("agent", f"scripted:{world}")
        except Exception:  # noqa: BLE001 - a world or agent that cannot load is not the one
            continue
        if offered and names and names <= offered:
            return f"scripted:{world}"
    raise ValueError(f"no built-in scripted agent fits the tools {', '.join(sorted(names))}; "
                     "set agent.params.base")


class _Wrapper(Agent):
    Options = WrapperOptions
    options: WrapperOptions
    # The wrapped agent's `ask` option, when it has one (scripted:retail, scripted:calendar).
    inner_ask: str | None = None

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        inner_cls = registry.resolve("agent", self.options.base or infer_base(ctx.tools))
        inner_opts = self.options.inner
        if self.inner_ask is not None and "ask" not in inner_opts:
            try:
                inner_cls.Options.model_validate({**inner_opts, "ask": self.inner_ask})
                inner_opts["ask"] = self.inner_ask
            except ValidationError:
                pass  # the wrapped agent has no `ask` knob; the wrapper handles its asks
        self.inner = inner_cls(inner_opts)
        await self.inner.start(ctx, first)
        self.irreversible = {t.name for t in ctx.tools if t.irreversible}

    async def close(self) -> None:
        await self.inner.close()


@registry.register("agent", "scripted:always_ask")
class AlwaysAskAgent(_Wrapper):
    """Asks at the start of every task and before every irreversible action."""

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        self.held: Decision | None = None  # the irreversible call waiting on our question
        self.own_question = False
        self.opened = False

    def _ask(self, text: str) -> Decision:
        self.own_question = True
        return Decision(kind="ask_human", node="clarify", text=text, confidence=0.5)

    async def decide(self, obs: Observation) -> Decision:
        if not self.opened:
            self.opened = True
            return self._ask(f"Before I start on '{self.ctx.instruction}': is there anything "
                             "I should know, and may I go ahead?")
        if self.held is not None:
            d, self.held = self.held, None
            return d
        d = await self.inner.decide(obs)
        if d.kind == "tool_call" and d.tool in self.irreversible:
            self.held = d
            return self._ask(f"I am about to {d.label()}, which cannot be undone. "
                             "Shall I go ahead?")
        return d

    async def feedback(self, fb: Feedback) -> None:
        if self.own_question:
            self.own_question = False  # the wrapped agent did not ask; it is not told
            return
        await self.inner.feedback(fb)


@registry.register("agent", "scripted:never_ask")
class NeverAskAgent(_Wrapper):
    """Never asks; guesses where the wrapped agent would ask."""

    inner_ask = "never"
    max_swallowed = 3  # a wrapped agent that keeps asking gives up instead of looping

    async def decide(self, obs: Observation) -> Decision:
        d = await self.inner.decide(obs)
        for _ in range(self.max_swallowed):
            if d.kind != "ask_human":
                return d
            # Nobody answers: the wrapped agent decides without the answer (it guesses).
            await self.inner.feedback(Feedback(decision=d, result=ToolResult(ok=True, output=""),
                                               human_answer=""))
            d = await self.inner.decide(obs)
        if d.kind == "ask_human":
            return Decision(kind="finish", node="finish", text="stopped: would have had to ask")
        return d

    async def feedback(self, fb: Feedback) -> None:
        await self.inner.feedback(fb)
