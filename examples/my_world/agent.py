"""A scripted agent for the thermostat world, with an error knob."""

from __future__ import annotations

from trialrun.agents.base import Agent, AgentContext, Feedback
from trialrun.trajectory import Decision, Observation


class ThermostatAgent(Agent):
    """Sets the target, then waits until the room is there. `error_rate`: a wrong setpoint."""

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)
        self.target = first.data["target"]
        self.temp = first.data["temperature"]
        self.setpoint: float | None = None

    async def decide(self, obs: Observation) -> Decision:
        if self.setpoint is None:
            wrong = self.ctx.rng.random() < self.params.get("error_rate", 0.0)  # seeded RNG
            celsius = self.target + 3 if wrong else self.target
            return Decision(kind="tool_call", node="set", tool="set_target",
                            args={"celsius": celsius})
        if abs(self.temp - self.setpoint) > 0.5:
            return Decision(kind="tool_call", node="wait", tool="wait", args={"minutes": 15})
        return Decision(kind="finish", node="finish", text=f"the room is at {self.temp} °C")

    async def feedback(self, fb: Feedback) -> None:
        if fb.result is None or not fb.result.ok:
            return
        if fb.decision.tool == "set_target":
            self.setpoint = fb.result.output["setpoint"]
        elif fb.decision.tool == "wait":
            self.temp = fb.result.output
