"""Run the thermostat scenario from Python: `python examples/my_world/run.py`."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from trialrun.episode import EpisodePlan, run_episode
from trialrun.scenarios.loader import load_scenario
from trialrun.trajectory import EpisodeKey, EpisodeResult

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # so that `my_world.world:ThermostatWorld` imports


async def main() -> list[EpisodeResult]:
    plan = EpisodePlan.build(load_scenario(HERE / "scenario.yaml"))
    results = []
    for task in plan.tasks:
        for seed in plan.loaded.scenario.seed_list:
            key = EpisodeKey(scenario=plan.loaded.name, task=task, seed=seed, trial=0)
            result = await run_episode(plan, key)
            print(f"{key}: {result.end_reason.value}, success={result.success}, "
                  f"{len(result.steps)} steps, {result.sim_time / 60:.0f} simulated minutes")
            results.append(result)
    return results


if __name__ == "__main__":
    anyio.run(main)
