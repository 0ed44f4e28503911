"""A scripted retail agent slowed down in wall time (for the kill-and-resume test)."""

from __future__ import annotations

import anyio

from trialrun.sandbox.worlds.retail import ScriptedRetailAgent


class SlowAgent(ScriptedRetailAgent):
    async def decide(self, obs):
        await anyio.sleep(0.004)
        return await super().decide(obs)
