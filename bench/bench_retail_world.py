"""CPU time the retail world and its scripted agent spend per episode, method by method.

    python bench/bench_retail_world.py [--episodes 3000] [--repeats 5]

Runs episodes of `retail/known_error_rates` in this process (`run_episode`, no store) and
prints, as medians of `--repeats` runs: the whole episode's CPU µs, the world and agent's
share (their own methods, stopwatched and less the stopwatch's calibrated cost), and that
share split by method. CPU time (`time.process_time`), so a busy machine's other processes
do not count. To compare with another checkout, run this file under both (`PYTHONPATH`
pointing at a tree laid out as the package, as `bench_harness.py --baseline` does).
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import anyio

from trialrun.episode import run_episode
from trialrun.plan import RunPlan
from trialrun.sandbox.worlds.retail import RetailWorld, ScriptedRetailAgent
from trialrun.scenarios.loader import LIBRARY, load_scenario

# The methods the loop calls on the world and the agent (what the world+agent share covers).
WORLD_METHODS = ("__init__", "reset", "tools", "execute", "observe", "status", "outcome",
                 "human_answer", "on_message", "judge", "digest", "state",
                 "reference_decision")
AGENT_METHODS = ("__init__", "start", "decide", "feedback")


class Stopwatch:
    """CPU seconds spent inside each wrapped method (outermost call only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.depth = 0
        self.patched: list[tuple[type, str, Any]] = []

    def wrap(self, cls: type, names: tuple[str, ...]) -> None:
        for name in names:
            orig = getattr(cls, name)
            self.patched.append((cls, name, cls.__dict__.get(name)))
            setattr(cls, name, self._timed(f"{cls.__name__}.{name}", orig))

    def _timed(self, label: str, orig: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.process_time
        if inspect.iscoroutinefunction(orig):
            async def atimed(*a: Any, **k: Any) -> Any:
                if self.depth:
                    return await orig(*a, **k)
                self.calls[label] += 1
                self.depth += 1
                t = clock()
                try:
                    return await orig(*a, **k)
                finally:
                    self.seconds[label] += clock() - t
                    self.depth -= 1
            return atimed

        def timed(*a: Any, **k: Any) -> Any:
            if self.depth:
                return orig(*a, **k)
            self.calls[label] += 1
            self.depth += 1
            t = clock()
            try:
                return orig(*a, **k)
            finally:
                self.seconds[label] += clock() - t
                self.depth -= 1
        return timed

    def restore(self) -> None:
        for cls, name, orig in reversed(self.patched):
            if orig is None:
                delattr(cls, name)
            else:
                setattr(cls, name, orig)
        self.patched.clear()


def clock_cost(n: int = 200_000) -> float:
    """CPU seconds one clock read takes (two a measured call; charged to the measured part)."""
    clock = time.process_time
    t = clock()
    for _ in range(n):
        clock()
    return (clock() - t) / n


def plan_and_keys(episodes: int) -> tuple[RunPlan, list[Any]]:
    src = load_scenario(LIBRARY / "retail" / "known_error_rates.yaml").source
    plan = RunPlan.from_sources({"retail.yaml": src.replace("seeds: 20", f"seeds: {episodes}")},
                                {}, None)
    return plan, list(plan.keys())[:episodes]


def run_all(plan: RunPlan, keys: list[Any]) -> float:
    """CPU seconds to run every episode in order."""
    async def main() -> None:
        for k in keys:
            await run_episode(plan.scenarios[k.scenario], k)

    t = time.process_time()
    anyio.run(main)
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    plan, keys = plan_and_keys(args.episodes)
    run_all(plan, keys[:200])  # warm up imports and caches
    per_clock = clock_cost()
    totals: list[float] = []
    inside: list[float] = []
    split: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.repeats):
        totals.append(run_all(plan, keys))
        watch = Stopwatch()
        watch.wrap(RetailWorld, WORLD_METHODS)
        watch.wrap(ScriptedRetailAgent, AGENT_METHODS)
        try:
            run_all(plan, keys)
        finally:
            watch.restore()
        # Each measured call also holds about one clock read: not the world's own time.
        own = {label: s - watch.calls[label] * per_clock for label, s in watch.seconds.items()}
        inside.append(sum(own.values()))
        for label in {*split, *own}:
            split[label].append(own.get(label, 0.0))
    n = len(keys)

    def us(xs: list[float]) -> float:
        return 1e6 * statistics.median(xs) / n

    print(f"retail/known_error_rates, {n} episodes, median of {args.repeats} (CPU µs/episode)")
    print(f"  episode, everything      {us(totals):8.1f}")
    print(f"  world + agent            {us(inside):8.1f}")
    for label, xs in sorted(split.items(), key=lambda kv: -statistics.median(kv[1])):
        if statistics.median(xs) > 0:
            print(f"    {label:26s} {us(xs):8.1f}")


if __name__ == "__main__":
    main()
