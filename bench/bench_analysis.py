"""Analysis speed on a large stored run.

    python bench/bench_analysis.py [--episodes 100000]

Runs a few hundred real retail episodes (errors at two nodes, checkpoints, asks), then
stores copies of them under new ids until the run holds --episodes episodes, and times
loading the run from SQLite and computing the full report (node accuracies, lift with a
task-level bootstrap, propagation, blame, Markov chain, horizon fits, trials, escalation).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trialrun.analysis.data import load_run  # noqa: E402
from trialrun.analysis.summary import summarize  # noqa: E402
from trialrun.runner import RunOptions, run_episodes  # noqa: E402
from trialrun.scenarios.loader import LIBRARY, load_scenario  # noqa: E402
from trialrun.store import Store  # noqa: E402
from trialrun.trajectory import EpisodeKey  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    store = Store(f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    loaded = [load_scenario(LIBRARY / "retail" / name) for name in (
        "known_error_rates.yaml", "refund_in_window.yaml", "ambiguous_refund.yaml",
        "ambiguous_never_ask.yaml", "clear_always_ask.yaml")]
    base = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(seeds=60),
                                          keep_results=True))
    t = time.perf_counter()
    originals = [r.key for r in base.results]
    i = 0
    while base.ran + i < args.episodes:
        j = i % len(base.results)
        r, key = base.results[j], originals[j]
        # copies spread over 500-episode task groups, each copy a distinct planned key
        r.key = EpisodeKey(scenario=key.scenario, task=f"{key.task}-{i // 500}",
                           seed=key.seed + 1000 * (i // len(base.results) + 1), trial=key.trial)
        store.save_episode(base.run_id, r)
        i += 1
    print(f"stored {base.ran + i} episodes in {time.perf_counter() - t:.1f}s")
    loads, analyses = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        data = load_run(store, base.run_id)
        loads.append(time.perf_counter() - t)
        t = time.perf_counter()
        s = summarize(data)
        analyses.append(time.perf_counter() - t)
    n_steps = len(data.s_ep)
    print(f"{len(data.ep_id)} episodes, {n_steps} steps (median of {args.repeats})")
    print(f"  load from SQLite   {statistics.median(loads):6.2f} s")
    print(f"  full analysis      {statistics.median(analyses):6.2f} s")
    print(f"  success {s.success.rate:.3f}, predicted {s.predicted_success:.3f}, errors: "
          f"{s.reliability.shared_cause.verdict}")


if __name__ == "__main__":
    main()
