"""A thermostat world: bring a room to a target temperature."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trialrun.sandbox.world import ToolError, Verdict, World
from trialrun.trajectory import Decision, Observation, ToolResult, ToolSpec


class ThermostatConfig(BaseModel):  # the scenario's `world:` options
    model_config = ConfigDict(extra="forbid")

    rate: float = Field(0.2, gt=0, description="degrees the room moves per minute")


class ThermostatTask(BaseModel):  # each task's own fields
    model_config = ConfigDict(extra="forbid")

    target: float = Field(ge=5, le=30)
    start: float | None = Field(None, description="default: drawn from the seed")


class ThermostatWorld(World):
    Config = ThermostatConfig
    Task = ThermostatTask
    cfg: ThermostatConfig
    spec: ThermostatTask

    @classmethod
    def tool_names(cls, config: dict[str, Any]) -> set[str]:
        return {"set_target", "wait"}

    def reset(self) -> Observation:
        start = self.spec.start
        if start is None:
            start = round(self.rng.uniform(12, 26), 1)  # the world's seeded RNG, never `random`
        self.temp, self.setpoint = start, start
        return Observation(text=f"The room is at {start} °C. Bring it to {self.spec.target} °C.",
                           data={"temperature": start, "target": self.spec.target})

    def tools(self) -> list[ToolSpec]:
        return [
            ToolSpec(name="set_target", description="Set the thermostat (°C).",
                     parameters={"type": "object", "required": ["celsius"],
                                 "properties": {"celsius": {"type": "number"}}}),
            ToolSpec(name="wait", description="Let time pass; returns the temperature.",
                     parameters={"type": "object", "required": ["minutes"],
                                 "properties": {"minutes": {"type": "integer"}}}),
        ]

    def execute(self, node: str, tool: str, args: dict[str, Any]) -> ToolResult:
        if tool == "set_target":
            if not 5 <= args["celsius"] <= 30:
                raise ToolError("the thermostat goes from 5 to 30 °C")  # an agent error
            self.setpoint = float(args["celsius"])
            return ToolResult(ok=True, output={"setpoint": self.setpoint})
        if tool == "wait":
            if not 1 <= args["minutes"] <= 240:
                raise ToolError("wait between 1 and 240 minutes")
            for _ in range(args["minutes"]):
                step = max(-self.cfg.rate, min(self.cfg.rate, self.setpoint - self.temp))
                self.temp = round(self.temp + step, 3)
            self.clock.advance(60 * args["minutes"])  # simulated time, never the wall clock
            return ToolResult(ok=True, output=self.temp)
        raise ToolError(f"unknown tool {tool!r}")

    def judge(self, decision: Decision) -> Verdict:
        """Ground truth for node graders: is this decision sound right now?"""
        if decision.tool == "set_target":
            ok = abs(decision.args["celsius"] - self.spec.target) < 0.25
            return Verdict(correct=ok, reason="the task's target" if ok else "wrong setpoint")
        if decision.kind == "finish":
            ok = self._there()
            return Verdict(correct=ok, reason="room at target" if ok else "finished too early")
        return Verdict(correct=True, reason="waiting is harmless")

    def _there(self) -> bool:
        return abs(self.temp - self.spec.target) <= 0.5

    def outcome(self) -> dict[str, Any]:
        return {"state": self.state(), "success": self._there(), "score": float(self._there()),
                "reason": f"ended at {self.temp} °C for a target of {self.spec.target} °C"}

    def state(self) -> dict[str, Any]:
        return {"temperature": self.temp, "setpoint": self.setpoint}

    def load_state(self, state: dict[str, Any]) -> None:
        self.temp, self.setpoint = state["temperature"], state["setpoint"]
