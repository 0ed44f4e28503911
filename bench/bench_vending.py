"""Benchmark the vending world: a 365-day episode's wall time, and memory over the year.

    python bench/bench_vending.py [--seeds 3]

1. Wall time of full episodes (`vending/competent-365` through the episode loop: judge,
   grades and a state digest after every step), per episode and per step.
2. Memory over one year (tracemalloc): the world and the scripted operator driven the way the
   loop drives them, without keeping a trajectory, sampled at several days. Flat figures mean
   the world keeps no unbounded history (the inbox is pruned, orders leave when delivered).
   The trajectory the loop records grows with the steps by design; its size is shown last.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import tracemalloc

import anyio

from trialrun.agents.base import AgentContext, Feedback
from trialrun.episode import run_episode
from trialrun.plan import ScenarioPlan
from trialrun.sandbox.world import ToolError
from trialrun.sandbox.worlds.vending import ScriptedVendingAgent, VendingWorld
from trialrun.scenarios.loader import LIBRARY, load_scenario
from trialrun.trajectory import EpisodeKey, EpisodeResult, ToolResult

SCENARIO = LIBRARY / "vending" / "competent_365.yaml"
SAMPLE_DAYS = (1, 30, 90, 180, 270, 364)


def run_one(plan: ScenarioPlan, seed: int) -> EpisodeResult:
    out: list[EpisodeResult] = []

    async def main() -> None:  # not the task's result: asyncio would repr it at shutdown
        out.append(await run_episode(plan, EpisodeKey(scenario=plan.loaded.name,
                                                      task="default", seed=seed, trial=0)))

    anyio.run(main)
    return out[0]


def wall_time(seeds: int) -> None:
    plan = ScenarioPlan.build(load_scenario(SCENARIO))
    run_one(plan, 99)  # warm up imports and caches
    print(f"{'seed':>4} {'steps':>6} {'days':>5} {'wall s':>7} {'us/step':>8} {'net worth':>10}")
    total = steps = 0.0
    for seed in range(seeds):
        t = time.perf_counter()
        r = run_one(plan, seed)
        dt = time.perf_counter() - t
        total, steps = total + dt, steps + len(r.steps)
        print(f"{seed:>4} {len(r.steps):>6} {r.metrics['days_survived']:>5.0f} {dt:>7.3f} "
              f"{dt / len(r.steps) * 1e6:>8.1f} {r.metrics['net_worth']:>10.2f}")
    print(f"mean {total / seeds:.3f} s per 365-day episode, {total / steps * 1e6:.1f} us/step")


async def drive(seed: int) -> list[tuple[int, int, int, int, int, int]]:
    """Run a year as the loop does (judge, execute, digest, feedback), sampling memory."""
    world = VendingWorld({"days": 365}, {"id": "default", "start_cash": 500}, seed)
    obs = world.reset()
    agent = ScriptedVendingAgent({})
    await agent.start(AgentContext(instruction=obs.text, tools=world.tools(), seed=seed,
                                   rng=random.Random(seed)), obs)
    samples, steps = [], 0
    tracemalloc.start()
    while not world.status().done:
        d = await agent.decide(obs)
        world.judge(d)
        try:
            res = world.execute(d.node, d.tool or "", d.args)
        except ToolError as e:
            res = ToolResult(ok=False, error=str(e), fault="agent")
        world.digest()
        await agent.feedback(Feedback(decision=d, result=res))
        obs = world.observe()
        steps += 1
        if len(samples) < len(SAMPLE_DAYS) and world.day >= SAMPLE_DAYS[len(samples)]:
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            samples.append((world.day, steps, current, peak, len(json.dumps(world.state())),
                            len(world.inbox)))
    tracemalloc.stop()
    return samples


def memory(seed: int) -> None:
    print(f"{'day':>4} {'steps':>6} {'traced KiB':>11} {'peak KiB':>9} {'state B':>8} "
          f"{'inbox':>6}")
    for day, steps, current, peak, state, inbox in anyio.run(drive, seed):
        print(f"{day:>4} {steps:>6} {current / 1024:>11.1f} {peak / 1024:>9.1f} {state:>8} "
              f"{inbox:>6}")
    plan = ScenarioPlan.build(load_scenario(SCENARIO))
    tracemalloc.start()
    r = run_one(plan, seed)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"full episode with its recorded trajectory ({len(r.steps)} steps): "
          f"{current / 1024:.0f} KiB held, {peak / 1024:.0f} KiB peak")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="episodes to time")
    args = ap.parse_args()
    print("== wall time: vending/competent-365 through the episode loop ==")
    wall_time(args.seeds)
    print("\n== memory over one year (tracemalloc; world + operator, no trajectory) ==")
    memory(0)


if __name__ == "__main__":
    main()
