"""Run the thermostat scenario from Python: `python examples/my_world/run.py`."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from trialrun.runner import RunOptions, RunSummary, run_episodes
from trialrun.scenarios.loader import load_scenario
from trialrun.store import Store

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # so that `my_world.world:ThermostatWorld` imports


async def main(db: str = "sqlite:///thermostat.db") -> RunSummary:
    summary = await run_episodes(Store(db), [load_scenario(HERE / "scenario.yaml")],
                                 options=RunOptions(), keep_results=True)
    for r in summary.results:
        print(f"{r.key}: {r.end_reason.value}, success={r.success}, {len(r.steps)} steps, "
              f"{r.asks} ask(s), {r.reviews} review(s), {r.sim_time / 60:.0f} simulated min")
    return summary


if __name__ == "__main__":
    anyio.run(main)
