"""The harness's added time per LLM turn, next to the bare HTTP round trip to the same server.

    python bench/bench_llm_turn.py [--repeats 7]

An OpenAI-compatible fake server (tests/fake_openai.py) runs in another process on loopback
and plays a conversation of N tool calls then `finish` (model `loop-N`). One episode of the
`openai` agent in a minimal world (bench_harness's counter) is timed end to end, in process
(no store); the HTTP round trips the agent measured (`ModelCall.latency_ms`: from sending the
request to having the whole response) are subtracted, and the rest is divided by the number of
model turns: that is what trialrun adds per turn (the loop, the agent's conversation and
request building, parsing the response, judging and grading, digests). Bare round trip: the
same httpx client posting the first turn's request to the same server, nothing else.
Figures are medians over repeats, after one warm-up episode (imports, the TLS context).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trialrun.agents import openai_agent  # noqa: E402, F401 - registers agent "openai"
from trialrun.episode import run_episode  # noqa: E402
from trialrun.plan import ScenarioPlan  # noqa: E402
from trialrun.scenarios.loader import load_scenario_source  # noqa: E402
from trialrun.trajectory import EpisodeKey  # noqa: E402

SCENARIO = """
name: bench/llm-{turns}
world: {{type: bench.bench_harness:CounterWorld}}
tasks: [{{id: count, instruction: "Add one, again and again."}}]
agent:
  type: openai
  params: {{base_url: "{base_url}", model: loop-{calls}, node_map: {{add: add}}}}
budgets: {{max_steps: {steps}, max_wall_time: null}}
"""


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai.py")],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


async def one_episode(plan: ScenarioPlan) -> tuple[float, float, int, bytes]:
    """Wall seconds, HTTP seconds, model turns, and the first request's body."""
    key = EpisodeKey(scenario=plan.scenario.name, task="count", seed=0, trial=0)
    t0 = time.perf_counter()
    result = await run_episode(plan, key)
    wall = time.perf_counter() - t0
    calls = [c for st in result.steps for c in st.decision.model_calls]
    assert result.end_reason == "finished", (result.end_reason, result.end_note, result.error)
    first = calls[0]
    body = b'{"model":"%s","messages":%s}' % (first.model.encode(),
                                             _json(first.messages))
    return wall, sum(c.latency_ms for c in calls) / 1e3, len(calls), body


def _json(obj: object) -> bytes:
    import json

    return json.dumps(obj).encode()


async def bare_round_trip(url: str, body: bytes, n: int) -> float:
    async with httpx.AsyncClient(headers={"Content-Type": "application/json"}) as http:
        for _ in range(20):  # warm the connection
            await http.post(url, content=body)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            r = await http.post(url, content=body)
            r.json()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--lengths", type=int, nargs="*", default=[5, 50, 200])
    args = ap.parse_args()
    proc, base_url = start_server()
    try:
        plans = {}
        for turns in args.lengths:
            text = SCENARIO.format(turns=turns, base_url=base_url, calls=turns - 1,
                                   steps=turns + 5)
            plans[turns] = ScenarioPlan.build(load_scenario_source(text, f"llm{turns}.yaml"))
        anyio.run(one_episode, plans[args.lengths[0]])  # warm-up
        print(f"harness time per LLM turn, fake server on loopback in another process "
              f"(median of {args.repeats} episodes)")
        print(f"  {'turns':>5}  {'harness ms/turn':>15}  {'HTTP ms/turn':>12}  "
              f"{'bare HTTP ms':>12}")
        per_episode = {}
        for turns, plan in plans.items():
            rows = [anyio.run(one_episode, plan) for _ in range(args.repeats)]
            added = statistics.median((w - h) / n for w, h, n, _ in rows)
            per_episode[turns] = statistics.median(w - h for w, h, _, _ in rows)
            http = statistics.median(h / n for _, h, n, _ in rows)
            assert all(n == turns for _, _, n, _ in rows)
            bare = anyio.run(bare_round_trip, f"{base_url}/chat/completions", rows[0][3], 200)
            print(f"  {turns:5d}  {added * 1e3:15.3f}  {http * 1e3:12.3f}  {bare * 1e3:12.3f}")
        print("  harness = episode wall time - the HTTP round trips the agent measured, per "
              "turn; target < 0.3 ms, flat in the length")
        lo, hi = min(per_episode), max(per_episode)
        if hi > lo:
            marginal = (per_episode[hi] - per_episode[lo]) / (hi - lo)
            print(f"  each added turn costs {marginal * 1e3:.3f} ms ({lo} -> {hi} turns); "
                  f"fixed per episode {(per_episode[lo] - lo * marginal) * 1e3:.2f} ms "
                  "(world, agent start, outcome, client set-up)")
    finally:
        proc.terminate()
        proc.wait(timeout=5)


if __name__ == "__main__":
    main()
