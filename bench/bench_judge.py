"""What re-grading a stored run with an LLM judge costs: live, then from the judge cache.

    python bench/bench_judge.py [--items 2000] [--samples 1]

A stored run of N one-reply episodes is re-graded (`trialrun.calibration.regrade`) by a judge
behind a loopback OpenAI-compatible server (tests/fake_judge.py, in this process), then again
with the same judge: the second pass is served by the store-backed cache and makes no
request. Figures: items per second and milliseconds per item for each pass; the cached pass is
what trialrun itself adds per judged item (contexts from the store, prompt and request key,
cache lookup, answer parsing, storing the grades).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_judge import PlantedJudge, judge_server  # noqa: E402
from trialrun.calibration import regrade  # noqa: E402
from trialrun.graders.judge import JudgeFile, JudgeOptions, LLMJudge  # noqa: E402
from trialrun.store import Store  # noqa: E402
from trialrun.trajectory import Decision, EndReason, EpisodeKey, EpisodeResult, Step  # noqa: E402


def stored_run(store: Store, n: int) -> str:
    run_id = store.create_run(["bench"], {"bench": "name: bench\n"}, n, {})
    for i in range(n):
        store.save_episode(run_id, EpisodeResult(
            key=EpisodeKey(scenario="bench", task="t", seed=i, trial=0), agent="a",
            end_reason=EndReason.finished, success=True,
            steps=[Step(index=0, node="reply", decision=Decision(
                kind="message", node="reply", text=f"ticket c{i}"))]))
    return run_id


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        run_id = stored_run(store, args.items)
        judge = PlantedJudge(lambda text: "ticket" in text, 0.9, 0.8)
        with judge_server(judge) as fake:
            options = JudgeOptions(model="judge", base_url=fake.base_url, rubric="resolves it",
                                   samples=args.samples)
            for label in ("live", "cached"):
                jf = JudgeFile("bench.yaml", "bench", "llm_judge", ["reply"], {},
                               LLMJudge(options, "bench"))
                t0 = time.perf_counter()
                r = anyio.run(regrade, store, run_id, jf)
                dt = time.perf_counter() - t0
                print(f"{label:>6}: {r.items} items, {r.requests} requests, {dt:.2f} s "
                      f"({r.items / dt:,.0f} items/s, {1e3 * dt / r.items:.2f} ms/item)")


if __name__ == "__main__":
    main()
