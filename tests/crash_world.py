"""A world that kills the process running it, for the worker-pool tests: at reset, an
episode whose seed is listed dies by SIGKILL — once (a marker file remembers), or always."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from trialrun.agents.base import Agent, AgentContext
from trialrun.sandbox.world import Verdict, World, tool
from trialrun.trajectory import Decision, Observation


class CrashOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crash_seeds: list[int] = []
    marker_dir: str = ""  # a seed dies once if set (a marker per seed), every time if not
    steps: int = 3


class CrashWorld(World):
    Options = CrashOptions
    options: CrashOptions

    def reset(self) -> Observation:
        if self.seed in self.options.crash_seeds:
            marker = Path(self.options.marker_dir) / f"crashed-{self.seed}"
            if not self.options.marker_dir or not marker.exists():
                if self.options.marker_dir:
                    marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
        self.n = 0
        return Observation(text="count", data={"pid": os.getpid()})

    @tool()
    def add(self, k: int) -> dict[str, Any]:
        """Add to the counter.

        Args:
            k: how much
        """
        self.n += k
        return {"n": self.n}

    def judge(self, d: Decision) -> Verdict:
        return Verdict(correct=d.kind != "tool_call" or d.args.get("k") == 1)

    def state(self) -> dict[str, Any]:
        return {"n": self.n}

    def outcome(self) -> dict[str, Any]:
        return {"success": self.n == self.options.steps, "n": self.n}


class CountAgent(Agent):
    """Adds 1 three times then finishes; errs (adds 2) with probability 0.3 a step, from the
    episode's seeded rng, so outcomes differ from seed to seed."""

    async def start(self, ctx: AgentContext, first: Observation) -> None:
        self.rng, self.done = ctx.rng, 0

    async def decide(self, obs: Observation) -> Decision:
        if self.done >= 3:
            return Decision(kind="finish", node="finish")
        self.done += 1
        k = 2 if self.rng.random() < 0.3 else 1
        return Decision(kind="tool_call", node="add", tool="add", args={"k": k})
