"""Per-step harness overhead, episode throughput and peak memory of the local executor.

    python bench/bench_harness.py [--episodes 5000] [--repeats 3] [--big 50000]
    python bench/bench_harness.py --baseline ../old-checkout [--episodes 3000 --big 20000]

Prints, for the retail scenario with the scripted agent (full trajectories stored in SQLite):
1. in this process (`workers=1`): episodes/s and µs per step, split into the world and agent's
   own code (their tools, reset, judge and digest, the scripted agent) and the harness's
   (loop, checkpoints, graders, records, storage);
2. for a minimal world whose episodes are 10 to 1,000 steps long, µs per step at each
   length, to show the overhead stays flat as episodes grow;
3. end to end, each in a fresh process: episodes/s and peak memory (the parent, and the
   largest worker) with 1 and 2 worker processes, for `--episodes` and `--big` planned
   episodes: memory must not grow with the plan.
Figures are medians of repeated runs. The machine is shared, so the in-process split is in CPU
time (`time.process_time`: time spent waiting for a busy machine's other processes does not
count), and the end-to-end table gives the CPU time per episode (all processes) next to the
wall-clock rate; compare ratios within one run.

`--baseline DIR` measures another checkout of trialrun (e.g. the commit before a change) and
this one in the same invocation, each measurement in fresh processes taking turns, and prints
both with their ratio: on a busy machine only such ratios mean anything.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

if "TRIALRUN_BENCH_TREE" not in os.environ:  # a baseline's trialrun comes from PYTHONPATH
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
    share (loop, checkpoints, judging and grading, records, storage) can be told apart.
    Its own cost (two clock reads a call) is calibrated and not charged to the harness."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = {"sync": 0, "async": 0}
        self.patched: list[tuple[type, str, object]] = []

    def wrap(self, cls: type, names: tuple[str, ...]) -> None:
        for name in names:
            orig = getattr(cls, name)
            self.patched.append((cls, name, orig))
            if inspect.iscoroutinefunction(orig):
                async def timed(*a, __orig=orig, **k):
                    self.calls["async"] += 1
                    t = time.process_time()
                    try:
                        return await __orig(*a, **k)
                    finally:
                        self.seconds += time.process_time() - t
            else:
                def timed(*a, __orig=orig, **k):
                    self.calls["sync"] += 1
                    t = time.process_time()
                    try:
                        return __orig(*a, **k)
                    finally:
                        self.seconds += time.process_time() - t
            setattr(cls, name, timed)

    def restore(self) -> None:
        for cls, name, orig in reversed(self.patched):
            setattr(cls, name, orig)

    def own_cost(self) -> float:
        """Seconds the wrappers themselves added outside what they measured."""
        per = _wrapper_cost()
        return sum(per[kind] * n for kind, n in self.calls.items())


def _wrapper_cost(n: int = 50_000) -> dict[str, float]:
    """Per call: a wrapped trivial method's time, less what the wrapper measured, less the
    bare call's time (the part a real run would charge to the harness)."""

    class Dummy:
        def f(self) -> None:
            return None

        async def g(self) -> None:
            return None

    async def loop_async(d: Dummy) -> None:
        for _ in range(n):
            await d.g()

    def loop_sync(d: Dummy) -> None:
        for _ in range(n):
            d.f()

    out = {}
    for kind, name, loop in (("sync", "f", loop_sync), ("async", "g", loop_async)):
        def timed(wrapped: bool, name=name, loop=loop) -> tuple[float, float]:
            watch = Stopwatch()
            if wrapped:
                watch.wrap(Dummy, (name,))
            try:
                t = time.process_time()
                out_ = loop(Dummy())
                if inspect.iscoroutine(out_):
                    anyio.run(lambda o=out_: o)
                return time.process_time() - t, watch.seconds
            finally:
                watch.restore()
        bare, _ = timed(False)
        total, inside = timed(True)
        out[kind] = max(0.0, (total - inside - bare) / n)
    return out


# The world's own ground truth (judge, digest, state) is the world's cost, not the harness's.
WORLD_METHODS = ("__init__", "reset", "tools", "execute", "observe", "status", "outcome",
                 "human_answer", "judge", "digest", "state", "reference_decision")
AGENT_METHODS = ("__init__", "start", "decide", "feedback")


def timed_run(loaded, db: str, workers: int = 1, clock=time.process_time
              ) -> tuple[float, int, int]:
    store = Store(db)
    t = clock()
    summary = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(
        concurrency=8, workers=workers)))
    wall = clock() - t
    steps = sum(store.episode_columns(summary.run_id, ["n_steps"])["n_steps"])
    return wall, summary.ran, steps


def _cpu_s() -> tuple[float, float]:
    """CPU seconds of this process, and of its (finished) worker processes."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def retail_source(episodes: int) -> str:
    base = load_scenario(LIBRARY / "retail" / "known_error_rates.yaml")
    return base.source.replace("seeds: 20", f"seeds: {episodes}")


def one(episodes: int, workers: int, tmp: Path) -> dict[str, float]:
    """One end-to-end run in this (fresh) process: what `--one` prints as JSON."""
    loaded = [load_scenario_source(retail_source(episodes), "retail.yaml")]
    cpu = _cpu_s()
    wall, eps, steps = timed_run(loaded, f"sqlite:///{tmp / f'e2e-{episodes}-{workers}.db'}",
                                 workers, clock=time.perf_counter)
    parent, kids = (b - a for a, b in zip(cpu, _cpu_s(), strict=True))
    kib = 1024 if sys.platform != "darwin" else 1
    return {"eps_per_s": eps / wall, "episodes": eps, "steps": steps,
            "cpu_us_per_ep": 1e6 * (parent + kids) / eps,
            "parent_cpu_us_per_ep": 1e6 * parent / eps,
            "parent_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib / 2**20,
            "worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib / 2**20}


def retail_split(episodes: int, tmp: Path, i: int = 0) -> tuple[float, int, int, float]:
    """One stopwatched retail run in this process: (CPU s less the stopwatch's own cost,
    episodes, steps, CPU s inside the world and the agent)."""
    from trialrun.sandbox.worlds.retail import RetailWorld, ScriptedRetailAgent

    loaded = [load_scenario_source(retail_source(episodes), "retail.yaml")]
    watch = Stopwatch()
    watch.wrap(RetailWorld, WORLD_METHODS)
    watch.wrap(ScriptedRetailAgent, AGENT_METHODS)
    try:
        wall, eps, steps = timed_run(loaded, f"sqlite:///{tmp / f'retail{i}.db'}")
    finally:
        watch.restore()
    return wall - watch.own_cost(), eps, steps, watch.seconds


def counter_us(length: int, tmp: Path, i: int = 0) -> float:
    """µs per step (CPU, everything) of counter-world episodes `length` steps long."""
    n_eps = max(5, 20_000 // length)
    loaded = [load_scenario_source(COUNTER.format(length=length, episodes=n_eps),
                                   f"counter{length}.yaml")]
    w, _, steps = timed_run(loaded, f"sqlite:///{tmp / f'c{length}-{i}.db'}")
    return 1e6 * w / steps


def harness_split(episodes: int, repeats: int, tmp: Path) -> None:
    rows = [retail_split(episodes, tmp, i) for i in range(repeats)]
    wall = statistics.median(r[0] for r in rows)
    inside = statistics.median(r[3] for r in rows)
    eps, steps = rows[0][1], rows[0][2]
    print(f"retail, scripted agent, in this process: {eps} episodes x {steps / eps:.1f} steps "
          f"(median of {repeats}; stopwatch on)")
    print(f"  episodes/CPU-s        {eps / wall:10.0f}")
    print(f"  total µs per step     {1e6 * wall / steps:10.1f}   (everything)")
    print(f"  world + agent         {1e6 * inside / steps:10.1f}   (reset, tools, judge, "
          "digest, outcome; the scripted agent)")
    print(f"  harness µs per step   {1e6 * (wall - inside) / steps:10.1f}   (loop, checkpoints, "
          "graders, records, SQLite)")


def flatness(repeats: int, tmp: Path) -> None:
    print("counter world: µs per step as episodes grow longer (in this process)")
    for length in (10, 100, 1000):
        walls = [counter_us(length, tmp, i) for i in range(repeats)]
        print(f"  {length:5d} steps/episode  {statistics.median(walls):8.1f} µs/step "
              f"({max(5, 20_000 // length)} episodes)")


def end_to_end(sizes: list[tuple[int, int]], tmp: Path) -> None:
    print("end to end, a fresh process each (retail, -j 8 in all, full trajectories stored)")
    print(f"  {'planned':>8} {'workers':>7} {'episodes/s':>11} {'CPU µs/ep':>10} "
          f"{'parent CPU':>10} {'parent MiB':>11} {'worker MiB':>11}")
    for episodes, repeats in sizes:
        for workers in (1, 2):
            runs = []
            for _ in range(repeats):
                out = subprocess.run([sys.executable, __file__, "--one", str(episodes),
                                      str(workers), str(tmp)], capture_output=True, text=True)
                if out.returncode:
                    sys.exit(out.stderr)
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"  {episodes:8d} {workers:7d} {med['eps_per_s']:11.0f} "
                  f"{med['cpu_us_per_ep']:10.0f} {med['parent_cpu_us_per_ep']:10.0f} "
                  f"{med['parent_mib']:11.0f} "
                  f"{med['worker_mib'] if workers > 1 else float('nan'):11.0f}")


def section(name: str, size: int, tmp: Path) -> dict[str, float]:
    """One measurement for `--baseline` (run in a fresh process): what `--section` prints."""
    if name == "retail":
        wall, eps, steps, inside = retail_split(size, tmp)
        return {"harness_us": 1e6 * (wall - inside) / steps, "world_us": 1e6 * inside / steps,
                "eps_per_cpu_s": eps / wall}
    return {"us_per_step": counter_us(size, tmp)}


def _tree_env(tree: Path, tmp: Path) -> dict[str, str]:
    """The environment that makes `import trialrun` (here and in worker processes) load the
    checkout at `tree`: its folders laid out as the installed package maps them."""
    farm = Path(tempfile.mkdtemp(dir=tmp))
    pkg = farm / "trialrun"
    pkg.mkdir()
    for sub, folder in (("", "trialrun"), ("sandbox", "sandbox"), ("scenarios", "scenarios"),
                        ("agents", "agents"), ("graders", "graders"), ("replay", "replay")):
        if not sub:
            for entry in (tree / folder).iterdir():
                if not (pkg / entry.name).exists():
                    (pkg / entry.name).symlink_to(entry)
        elif not (pkg / sub).exists() or (pkg / sub).is_symlink():
            if (pkg / sub).is_symlink():
                (pkg / sub).unlink()
            (pkg / sub).symlink_to(tree / folder)
    (farm / "bench").symlink_to(Path(__file__).resolve().parent)  # this bench, its worlds
    return {**os.environ, "PYTHONPATH": str(farm), "TRIALRUN_BENCH_TREE": str(tree)}


def compare(base: Path, args: argparse.Namespace, tmp: Path) -> None:
    """Each measurement for the baseline checkout and this one, taking turns, in fresh
    processes; medians and the ratio this/baseline."""
    envs = {"baseline": _tree_env(base.resolve(), tmp), "this": dict(os.environ)}

    def run(env: dict[str, str], argv: list[str]) -> dict[str, float]:
        # A store of its own; run from `tmp`: a baseline's worker processes put the working
        # directory first on their path, and the one here holds this checkout's trialrun.
        out = subprocess.run([sys.executable, __file__, *argv, tempfile.mkdtemp(dir=tmp)],
                             env=env, capture_output=True, text=True, cwd=tmp)
        if out.returncode:
            sys.exit(out.stderr)
        return json.loads(out.stdout.strip().splitlines()[-1])

    plan: list[tuple[str, list[str], int]] = [
        (f"retail {args.episodes} eps, in-process", ["--section", "retail",
                                                     str(args.episodes)], args.repeats)]
    plan += [(f"counter {n} steps/episode", ["--section", "counter", str(n)], args.repeats)
             for n in (10, 100, 1000)]
    plan += [(f"end to end {n} planned, {w} worker(s)", ["--one", str(n), str(w)], reps)
             for n, reps in ((args.episodes, args.repeats), (args.big, 1)) for w in (1, 2)]
    print(f"baseline: {base}   this: {Path(__file__).resolve().parent.parent}")
    print(f"  {'measurement':44s} {'metric':20s} {'baseline':>9} {'this':>9} {'ratio':>6}")
    for label, argv, reps in plan:
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this": []}
        for _ in range(reps):
            for who, env in envs.items():
                runs[who].append(run(env, argv))
        keys = [k for k in runs["this"][0] if k in ("harness_us", "world_us", "us_per_step",
                                                    "eps_per_s", "cpu_us_per_ep",
                                                    "parent_cpu_us_per_ep")]
        for k in keys:
            b, t = (statistics.median(r[k] for r in runs[who]) for who in ("baseline", "this"))
            print(f"  {label:44s} {k:20s} {b:9.1f} {t:9.1f} {t / b:6.2f}")
            label = ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big", type=int, default=50_000, help="the large plan (run once)")
    ap.add_argument("--baseline", type=Path, help="another checkout to compare with")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # EPISODES WORKERS TMPDIR
    ap.add_argument("--section", nargs=3, help=argparse.SUPPRESS)  # NAME SIZE TMPDIR
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), int(args.one[1]), Path(args.one[2]))))
        return
    if args.section:
        print(json.dumps(section(args.section[0], int(args.section[1]),
                                 Path(args.section[2]))))
        return
    tmp = Path(tempfile.mkdtemp())
    if args.baseline:
        compare(args.baseline, args, tmp)
        return
    harness_split(args.episodes, args.repeats, tmp)
    flatness(args.repeats, tmp)
    end_to_end([(args.episodes, args.repeats), (args.big, 1)], tmp)


if __name__ == "__main__":
    main()
