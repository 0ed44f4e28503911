"""What every scripted reference agent shares: per-node error knobs and reported confidence.

A scripted agent follows its world's policy; `error_rates: {node: p}` makes it err at a node
with probability p, drawn from the episode's seeded RNG, so runs with known ground truth are
possible. It reports a confidence that is lower (by `confidence_signal`) when it errs, so
below-confidence checkpoints and risk–coverage curves have something to work with.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from trialrun.agents.base import Agent, AgentContext
from trialrun.trajectory import Decision, Observation


class ScriptedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error_rates: dict[str, float] = Field(default_factory=dict)
    # How much lower the reported confidence is when the agent errs (0: uninformative).
    confidence_signal: float = Field(0.3, ge=0, le=1)


class ScriptedAgent(Agent):
    """Base class: subclasses set `Params` (a ScriptedParams) and `ERROR_NODES`."""

    Params: ClassVar[type[ScriptedParams]] = ScriptedParams
    ERROR_NODES: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def validate_params(cls, params: dict[str, Any], nodes: set[str] | None = None) -> None:
        p = cls.Params.model_validate(params)
        for node, rate in p.error_rates.items():
            if node not in cls.ERROR_NODES:
                raise ValueError(f"error_rates: unknown node {node!r}; nodes that can err: "
                                 f"{', '.join(cls.ERROR_NODES)}")
            if not 0 <= rate <= 1:
                raise ValueError(f"error_rates.{node}: {rate} is not a probability in [0, 1]")

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        self.p = self.Params.model_validate(self.params)
        self.rng = ctx.rng
        self.rates = dict(self.p.error_rates)

    def _err(self, node: str) -> bool:
        rate = self.rates.get(node, 0.0)
        return rate > 0 and self.rng.random() < rate

    def _confidence(self, erred: bool) -> float:
        hi = 1.0 - (self.p.confidence_signal if erred else 0.0)
        return round(self.rng.uniform(max(0.0, hi - 0.3), hi), 3)

    def _call(self, node: str, tool: str, erred: bool = False, **args: Any) -> Decision:
        return Decision(kind="tool_call", node=node, tool=tool, args=args,
                        confidence=self._confidence(erred))
