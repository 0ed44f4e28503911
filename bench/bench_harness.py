"""Per-step harness overhead and episode throughput, on the embedded defaults.

    python bench/bench_harness.py [--episodes 2000]

Prints, for the retail scenario with the scripted agent: episodes/s and µs per step including
grading and storage (SQLite); then, for a minimal world whose episodes are 10 to 1,000 steps
long, µs per step at each length, to show the overhead stays flat as episodes grow.
Figures are medians of repeated runs; the machine is shared, so compare ratios in one run.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trialrun.agents.base import Agent  # noqa: E402
from trialrun.runner import RunOptions, run_episodes  # noqa: E402
from trialrun.sandbox.world import World  # noqa: E402
from trialrun.scenarios.loader import LIBRARY, load_scenario, load_scenario_source  # noqa: E402
from trialrun.store import Store  # noqa: E402
from trialrun.trajectory import Decision, Observation, ToolResult, ToolSpec  # noqa: E402


class CounterWorld(World):
    """The smallest world: one tool that adds to a counter; ends after `length` steps."""

    def reset(self) -> Observation:
        self.n = 0
        return Observation(text="count")

    def tools(self) -> list[ToolSpec]:
        return [ToolSpec(name="add", parameters={"type": "object", "properties": {
            "k": {"type": "integer"}}, "required": ["k"]})]

    def execute(self, node: str, tool: str, args: dict[str, Any]) -> ToolResult:
        self.n += args["k"]
        self.clock.advance(1)
        return ToolResult(ok=True, output=self.n)

    def judge(self, d: Decision):
        from trialrun.sandbox.world import Verdict

        return Verdict(correct=d.kind != "tool_call" or d.args.get("k") == 1)

    def state(self) -> dict[str, Any]:
        return {"n": self.n}


class CountingAgent(Agent):
    async def decide(self, obs: Observation) -> Decision:
        return Decision(kind="tool_call", node="add", tool="add", args={"k": 1})


COUNTER = """
name: bench/counter-{length}
world: {{type: bench.bench_harness:CounterWorld}}
tasks: [{{id: count}}]
agent: {{type: bench.bench_harness:CountingAgent}}
seeds: {episodes}
budgets: {{max_steps: {length}, max_wall_time: null}}
"""


class Stopwatch:
    """Time spent inside the world's simulation and the agent's own code, so the harness's
    share (loop, checkpoints, judging and grading, records, storage) can be told apart."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.patched: list[tuple[type, str, object]] = []

    def wrap(self, cls: type, names: tuple[str, ...]) -> None:
        for name in names:
            orig = getattr(cls, name)
            self.patched.append((cls, name, orig))
            if inspect.iscoroutinefunction(orig):
                async def timed(*a, __orig=orig, **k):
                    t = time.perf_counter()
                    try:
                        return await __orig(*a, **k)
                    finally:
                        self.seconds += time.perf_counter() - t
            else:
                def timed(*a, __orig=orig, **k):
                    t = time.perf_counter()
                    try:
                        return __orig(*a, **k)
                    finally:
                        self.seconds += time.perf_counter() - t
            setattr(cls, name, timed)

    def restore(self) -> None:
        for cls, name, orig in reversed(self.patched):
            setattr(cls, name, orig)


WORLD_METHODS = ("__init__", "reset", "tools", "execute", "observe", "status", "outcome",
                 "human_answer")
AGENT_METHODS = ("__init__", "start", "decide", "feedback")


def timed_run(loaded, db: str) -> tuple[float, int, int]:
    store = Store(db)
    t = time.perf_counter()
    summary = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(concurrency=8)))
    wall = time.perf_counter() - t
    steps = len(store.step_columns(summary.run_id, ["idx"])["idx"])
    return wall, summary.ran, steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    base = load_scenario(LIBRARY / "retail" / "known_error_rates.yaml")
    text = base.source.replace("seeds: 20", f"seeds: {args.episodes}")
    from trialrun.sandbox.worlds.retail import RetailWorld, ScriptedRetailAgent

    rows = []
    for i in range(args.repeats):
        loaded = [load_scenario_source(text, "retail.yaml")]
        watch = Stopwatch()
        watch.wrap(RetailWorld, WORLD_METHODS)
        watch.wrap(ScriptedRetailAgent, AGENT_METHODS)
        try:
            wall, eps, steps = timed_run(loaded, f"sqlite:///{tmp / f'retail{i}.db'}")
        finally:
            watch.restore()
        rows.append((wall, eps, steps, watch.seconds))
    wall = statistics.median(r[0] for r in rows)
    inside = statistics.median(r[3] for r in rows)
    eps, steps = rows[0][1], rows[0][2]
    print(f"retail, scripted agent, {eps} episodes x {steps / eps:.1f} steps "
          f"(median of {args.repeats})")
    print(f"  episodes/s            {eps / wall:10.0f}")
    print(f"  total µs per step     {1e6 * wall / steps:10.1f}   (everything)")
    print(f"  world + agent         {1e6 * inside / steps:10.1f}   (seeding the store database, "
          "tools, the scripted agent)")
    print(f"  harness µs per step   {1e6 * (wall - inside) / steps:10.1f}   (loop, checkpoints, "
          "judging + grading, records, SQLite)")
    print("counter world: µs per step as episodes grow longer")
    for length in (10, 100, 1000):
        n_eps = max(5, 20_000 // length)
        walls = []
        for i in range(args.repeats):
            loaded = [load_scenario_source(COUNTER.format(length=length, episodes=n_eps),
                                           f"counter{length}.yaml")]
            w, _, steps = timed_run(loaded, f"sqlite:///{tmp / f'c{length}-{i}.db'}")
            walls.append(w / steps)
        print(f"  {length:5d} steps/episode  {1e6 * statistics.median(walls):8.1f} µs/step "
              f"({n_eps} episodes)")


if __name__ == "__main__":
    main()
