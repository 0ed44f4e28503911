"""The thermostat's scripted reference agent, with an error knob at the `set` node."""

from __future__ import annotations

import re
from typing import ClassVar

from trialrun.agents.base import AgentContext, Feedback
from trialrun.agents.scripted import ScriptedAgent, ScriptedOptions
from trialrun.registry import register
from trialrun.trajectory import Decision, Observation


class ThermostatAgentOptions(ScriptedOptions):  # the scenario's `agent.params`
    error_nodes = ("set",)  # `error_rates: {set: p}`: a wrong setpoint with probability p


@register("agent", "scripted:thermostat")
class ThermostatAgent(ScriptedAgent):
    """Asks the owner when the setting is unknown (or a reviewer refused it), sets it, waits
    for the room, locks the thermostat, tells the owner, finishes."""

    Options = ThermostatAgentOptions
    nodes: ClassVar[frozenset[str]] = frozenset({"ask", "set", "wait", "lock", "report",
                                                 "finish"})

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        await super().start(ctx, first)  # sets self.rng (seeded per episode) and the rates
        self.target: float | None = first.data["target"]  # None: the owner must be asked
        self.temp: float = first.data["temperature"]
        self.told = False
        self.setpoint: float | None = None
        self.locked: float | None = None
        self.reported = False
        self.question = "What temperature do you want?"

    async def decide(self, obs: Observation) -> Decision:
        if self.target is None:
            return Decision(kind="ask_human", node="ask", text=self.question)
        if self.setpoint is None:
            erred = not self.told and self._err("set")  # a human's answer is not misread
            celsius = self.target + 3 if erred else self.target
            return self._call("set", "set_target", erred, celsius=celsius)
        if abs(self.temp - self.setpoint) > 0.5:
            return self._call("wait", "wait", minutes=15)
        if self.locked is None:
            return self._call("lock", "lock", celsius=self.setpoint)
        if not self.reported:
            return Decision(kind="message", node="report",
                            text=f"The thermostat is locked at {self.locked:g} °C.")
        return Decision(kind="finish", node="finish", text=f"locked at {self.locked:g} °C")

    async def feedback(self, fb: Feedback) -> None:
        if fb.denied:  # a reviewer refused the lock: the setpoint must be wrong, so ask
            self.question = f"A reviewer refused {fb.decision.label()}. What temperature?"
            self.target = self.setpoint = None
            return
        if fb.human_answer is not None:  # the reply to our ask_human
            self.target = float(re.search(r"[\d.]+", fb.human_answer).group())
            self.told = True
            return
        ran = fb.executed or fb.decision  # a human who took over may have run another call
        if fb.result is None or not fb.result.ok:
            return
        if ran.tool == "set_target":
            self.setpoint = fb.result.output["setpoint"]
        elif ran.tool == "wait":
            self.temp = fb.result.output
        elif ran.tool == "lock":
            self.setpoint = self.locked = fb.result.output["locked"]
        elif ran.kind == "message":
            self.reported = True
