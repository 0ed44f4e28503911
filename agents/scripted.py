"""What every scripted reference agent shares: per-node error knobs and reported confidence.

A scripted agent follows its world's policy; `error_rates: {node: p}` makes it err at a node
with probability p, drawn from the episode's seeded RNG, so runs with known ground truth are
possible. It reports a confidence that is lower (by `confidence_signal`) when it errs, so
below-confidence checkpoints and risk–coverage curves have something to work with.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from trialrun.agents.base import Agent, AgentContext, AgentOptions
from trialrun.registry import did_you_mean
from trialrun.trajectory import Decision, Observation


class ScriptedOptions(AgentOptions):
    """Options every scripted agent takes; subclasses set `error_nodes` and add their own."""

    error_nodes: ClassVar[tuple[str, ...]] = ()

    error_rates: dict[str, float] = Field(
        default_factory=dict, description="node -> probability that the agent errs there")
    # How much lower the reported confidence is when the agent errs (0: uninformative).
    confidence_signal: float = Field(0.3, ge=0, le=1)

    @model_validator(mode="after")
    def _known_nodes(self) -> ScriptedOptions:
        for node, rate in self.error_rates.items():
            if node not in self.error_nodes:
                raise ValueError(f"error_rates: unknown node {node!r}"
                                 f"{did_you_mean(node, self.error_nodes)} (nodes that can err: "
                                 f"{', '.join(self.error_nodes)})")
            if not 0 <= rate <= 1:
                raise ValueError(f"error_rates.{node}: {rate} is not a probability in [0, 1]")
        return self


class ScriptedAgent(Agent):
    """Base class: subclasses set `Options` (a ScriptedOptions naming its error nodes)."""

    Options: ClassVar[type[ScriptedOptions]] = ScriptedOptions
    options: ScriptedOptions
    waits = False  # pure computation

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        self.p = self.options
        self.rng = ctx.rng
        self.rates = dict(self.p.error_rates)

    def _err(self, node: str) -> bool:
        rate = self.rates.get(node, 0.0)
        return rate > 0 and self.rng.random() < rate

    def _confidence(self, erred: bool) -> float:
        hi = 1.0 - (self.p.confidence_signal if erred else 0.0)
        lo = max(0.0, hi - 0.3)
        # `rng.uniform(lo, hi)` inlined: its formula and its one draw, a call cheaper.
        return round(lo + (hi - lo) * self.rng.random(), 3)

    def _call(self, node: str, tool: str, erred: bool = False, **args: Any) -> Decision:
        return Decision(kind="tool_call", node=node, tool=tool, args=args,
                        confidence=self._confidence(erred))
