"""Analysis speed and memory on large stored runs.

    python bench/bench_analysis.py [--episodes 100000 1000000] [--repeats N] [--dir DIR]
                                   [--step-table]

--step-table also measures the same store read as runs stored before `episode.step_arrays`
(every step from the step table), for the ratio. A kept store without packed steps is
generated again.

Runs a few hundred real retail episodes (errors at several nodes, checkpoints, asks), then
copies their stored rows in bulk (executemany, one transaction per 50,000 episodes) under
new ids and keys until the run holds --episodes episodes. The store is kept in --dir and
reused by the next invocation (delete it to regenerate).

Each measurement runs in a fresh process, so its peak memory (ru_maxrss: the whole process,
interpreter and imports included) is its own. It times what `trialrun report --json --html`
does: loading the run (`load_run`), the full analysis (`summarize`: node accuracies, shared
cause with a task-level bootstrap, propagation, blame, Markov chain, horizon fits, trials,
escalation), the judges' section (`attach_judges`), the terminal report, the JSON and the HTML
page (and its size). Figures are medians of --repeats runs (default 3 up to 100,000 episodes,
1 above). The machine may be shared: compare figures within one invocation.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BATCH = 50_000  # episodes per generating transaction


def generate(path: Path, episodes: int) -> str:
    """A store at `path` holding one run of `episodes` retail episodes; its run id."""
    import anyio
    import numpy as np

    from trialrun.runner import RunOptions, run_episodes
    from trialrun.scenarios.loader import LIBRARY, load_scenario
    from trialrun.store import Store

    for p in (path, path.with_suffix(".db-wal"), path.with_suffix(".db-shm")):
        p.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{path}")
    loaded = [load_scenario(LIBRARY / "retail" / name) for name in (
        "known_error_rates.yaml", "refund_in_window.yaml", "ambiguous_refund.yaml",
        "ambiguous_never_ask.yaml", "clear_always_ask.yaml")]
    t = time.perf_counter()
    base = anyio.run(lambda: run_episodes(store, loaded, options=RunOptions(seeds=60)))
    run_id = base.run_id
    store.engine.dispose()
    print(f"  ran {base.ran} real episodes in {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1000000")  # the step index is written in random order
    ep_cols = [r[1] for r in con.execute("PRAGMA table_info(episode)")]
    st_cols = [r[1] for r in con.execute("PRAGMA table_info(step)") if r[1] != "id"]
    at = {c: i for i, c in enumerate(ep_cols)}
    eps = con.execute(f"SELECT {', '.join(ep_cols)} FROM episode WHERE run_id = ? "
                      "ORDER BY key", (run_id,)).fetchall()
    steps: dict[str, list[tuple]] = {}
    for row in con.execute(f"SELECT {', '.join(st_cols)} FROM step WHERE episode_id IN "
                           "(SELECT id FROM episode WHERE run_id = ?) ORDER BY episode_id, "
                           "idx", (run_id,)):
        steps.setdefault(row[0], []).append(row[1:])
    ep_sql = (f"INSERT INTO episode ({', '.join(ep_cols)}) "
              f"VALUES ({', '.join('?' * len(ep_cols))})")
    st_sql = (f"INSERT INTO step ({', '.join(st_cols)}) "
              f"VALUES ({', '.join('?' * len(st_cols))})")
    rng = np.random.default_rng(0)
    n_base, todo = len(eps), episodes - len(eps)
    for start in range(0, todo, BATCH):
        stop = min(todo, start + BATCH)
        # random ids, as the store makes them: their order is not the episodes' order
        ids = [f"{run_id}-{x:016x}" for x in rng.integers(0, 2**63, stop - start).tolist()]
        ep_rows, st_rows = [], []
        for i, new_id in zip(range(start, stop), ids, strict=True):
            row = list(eps[i % n_base])
            old_id = row[at["id"]]
            # copies spread over 500-episode task groups, each copy a distinct planned key
            row[at["id"]] = new_id
            row[at["task"]] = task = f"{row[at['task']]}-{i // 500}"
            row[at["seed"]] = seed = row[at["seed"]] + 1000 * (i // n_base + 1)
            row[at["key"]] = f"{row[at['scenario']]}/{task}/s{seed}/t{row[at['trial']]}"
            ep_rows.append(row)
            st_rows.extend((new_id, *s) for s in steps.get(old_id, ()))
        con.execute("BEGIN")
        con.executemany(ep_sql, ep_rows)
        con.executemany(st_sql, st_rows)
        con.execute("COMMIT")
        print(f"\r  copied {n_base + stop} episodes", end="", flush=True)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("ANALYZE")
    con.close()
    print(f" in {time.perf_counter() - t:.1f} s", flush=True)
    return run_id


def stored_run(path: Path) -> tuple[str, int] | None:
    """The run a kept store holds, and its episode count (None if its episodes have no
    packed steps: written before `episode.step_arrays`, it is generated again)."""
    if not path.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        row = con.execute("SELECT run_id, count(*), count(step_arrays) FROM episode "
                          "GROUP BY run_id").fetchone()
        con.close()
    except sqlite3.Error:
        return None
    return (row[0], row[1]) if row and row[2] == row[1] else None


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the
    parent that generated the store)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(url: str, run_id: str, packed: bool = True) -> dict[str, float]:
    """One `trialrun report --json --html`, timed stage by stage (run in a fresh process).
    `packed` False: steps read from the step table, as for episodes stored before
    `episode.step_arrays`."""
    import io

    from rich.console import Console

    from trialrun.analysis.data import load_run
    from trialrun.analysis.summary import summarize
    from trialrun.calibration import attach_judges
    from trialrun.html_report import render_html
    from trialrun.report import render_summary
    from trialrun.store import Store

    store = Store(url)
    store._READ_PACKED = packed
    base_mb = peak_mb()
    out: dict[str, float] = {}
    t = time.perf_counter()
    data = load_run(store, run_id)
    out["load"] = time.perf_counter() - t
    out["load_mb"] = peak_mb()
    t = time.perf_counter()
    s = summarize(data)
    out["analyse"] = time.perf_counter() - t
    out["analyse_mb"] = peak_mb()
    out["episodes"], out["steps"] = len(data.ep_id), len(data.s_ep)
    del data
    t = time.perf_counter()
    attach_judges(s, store, run_id)
    out["judges"] = time.perf_counter() - t
    t = time.perf_counter()
    render_summary(s, Console(file=io.StringIO(), width=100))
    out["terminal"] = time.perf_counter() - t
    t = time.perf_counter()
    out["json_kb"] = len(s.model_dump_json(indent=2)) / 1024
    out["json"] = time.perf_counter() - t
    t = time.perf_counter()
    out["html_kb"] = len(render_html(s, store.get_run(run_id).created_at).encode()) / 1024
    out["html"] = time.perf_counter() - t
    out["base_mb"] = base_mb
    out["peak_mb"] = peak_mb()
    out["success"] = s.success.rate or 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=None,
                    help="measurements per size (default 3 up to 100,000 episodes, else 1)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/trialrun-bench"),
                    help="where the generated stores are kept")
    ap.add_argument("--step-table", action="store_true",
                    help="also measure reading every step from the step table (as for runs "
                         "stored before episode.step_arrays), for the ratio")
    ap.add_argument("--measure", nargs=3, metavar=("URL", "RUN_ID", "PACKED"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        url, run_id, packed = args.measure
        print(json.dumps(measure(url, run_id, packed == "packed")))
        return
    for n in args.episodes:
        path = args.dir / f"analysis-{n}.db"
        have = stored_run(path)
        if have is None or have[1] != n:
            print(f"generating {n} episodes in {path}", flush=True)
            generate(path, n)
            have = stored_run(path)
        assert have is not None
        repeats = args.repeats or (3 if n <= 100_000 else 1)
        for mode in ("packed", "step-table") if args.step_table else ("packed",):
            report(path, have[0], mode, repeats)


def report(path: Path, run_id: str, mode: str, repeats: int) -> None:
    """Medians of `repeats` measurements, each in a fresh process."""
    runs = []
    for _ in range(repeats):
        # the file from disk cache, as a user's second `trialrun report` finds it
        res = subprocess.run([sys.executable, __file__, "--measure", f"sqlite:///{path}",
                              run_id, mode], capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"measurement failed:\n{res.stderr[-3000:]}")
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    def med(k: str, runs: list[dict[str, float]] = runs) -> float:
        return statistics.median(r[k] for r in runs)

    r0 = runs[0]
    print(f"{int(r0['episodes'])} episodes, {int(r0['steps'])} steps, steps read from "
          f"{'episode.step_arrays' if mode == 'packed' else 'the step table'} "
          f"(median of {repeats}; success {r0['success']:.3f})")
    print(f"  load             {med('load'):7.2f} s")
    print(f"  analyse          {med('analyse'):7.2f} s")
    print(f"  load + analyse   {med('load') + med('analyse'):7.2f} s")
    print(f"  judges section   {med('judges'):7.2f} s")
    print(f"  terminal report  {med('terminal'):7.2f} s")
    print(f"  JSON             {med('json'):7.2f} s  ({med('json_kb'):.0f} KiB)")
    print(f"  HTML             {med('html'):7.2f} s  ({med('html_kb'):.0f} KiB)")
    print(f"  peak memory      {med('analyse_mb'):7.0f} MB  loading and analysing (after "
          f"imports {med('base_mb'):.0f} MB, after load {med('load_mb'):.0f} MB); "
          f"{med('peak_mb'):.0f} MB with the judges section and rendering", flush=True)


if __name__ == "__main__":
    main()
