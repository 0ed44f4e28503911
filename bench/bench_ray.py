"""Episodes per second on Ray: `--executor ray` with 1 and 2 workers, 5k and 50k episodes.

    python bench/bench_ray.py [--sizes 5000 50000] [--repeats 3] [-j 64] [--local]
    python bench/bench_ray.py --store 5000 [--pg URL]     # the store's write rate only

Starts a two-node Ray cluster on loopback (scripts/ray-cluster.sh: its own network and PID
namespaces, one CPU per node; needs root and util-linux), and stops it at the end, whatever
happens. Each run is a fresh driver process on the cluster running the retail scenario with
the scripted agent (the same `known_error_rates` plan as bench_harness.py: one task, N seeds),
full trajectories stored in a fresh SQLite file by the driver. Per run it prints:
- eps/s: planned episodes / the run's wall time, connecting and starting the workers included;
- steady eps/s: between the first and the last stored episode (start-up excluded);
- start s: from the run's start to its first stored episode (connect, actors, plan rebuilt);
- driver CPU ms/episode and driver peak RSS; the largest worker's peak RSS (sampled).
Figures are medians over `--repeats` (a size of 20,000 or more runs once). `--local` adds
the local executor in one process on the same plan, for a ratio taken on the same machine at
the same moment. The machine is shared and has 2 cores: the driver, both workers and the
Ray daemons share them, so compare ratios within one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ray-cluster.sh"
PORT = "26380"
ONCE_FROM = 20_000  # sizes from here on run once: 50k takes minutes a run


def _retail_source(episodes: int) -> str:
    from trialrun.scenarios.loader import LIBRARY, load_scenario

    base = load_scenario(LIBRARY / "retail" / "known_error_rates.yaml")
    return base.source.replace("seeds: 20", f"seeds: {episodes}")


def driver(episodes: int, executor: str, workers: int, concurrency: int, db: str) -> None:
    """One run, in this process (inside the cluster's namespaces); one JSON line out."""
    import anyio

    from trialrun.runner import RunOptions, run_episodes
    from trialrun.scenarios.loader import load_scenario_source
    from trialrun.store import Store

    loaded = [load_scenario_source(_retail_source(episodes), "retail.yaml")]
    store = Store(db)
    stamps: list[float] = []
    opts = RunOptions(executor=executor, workers=workers, concurrency=concurrency)
    t0 = time.perf_counter()
    c0 = time.process_time()
    summary = anyio.run(lambda: run_episodes(store, loaded, options=opts,
                                             on_episode=lambda r: stamps.append(
                                                 time.perf_counter())))
    wall = time.perf_counter() - t0
    assert summary.ran == summary.planned == episodes and summary.errors == 0, summary
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    print(json.dumps({
        "eps": episodes / wall, "steady": steady, "start": stamps[0] - t0 if stamps else 0,
        "cpu_ms": 1000 * (time.process_time() - c0) / episodes,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _worker_rss_mb(init: int) -> float:
    """The largest RSS of the cluster's trialrun workers right now."""
    best = 0.0
    for pid in _descendants(init):
        try:
            if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::EpisodeWorker"):
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    best = max(best, int(line.split()[1]) / 1024)
        except OSError:
            pass
    return best


def one(cluster: Path, episodes: int, executor: str, workers: int, concurrency: int,
        tmp: Path) -> dict[str, float]:
    db = tmp / f"bench-{time.monotonic_ns()}.db"
    peak = [0.0]
    stop = threading.Event()
    init = int((cluster / "init").read_text())

    def sample() -> None:
        while not stop.wait(0.5):
            peak[0] = max(peak[0], _worker_rss_mb(init))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{PORT}",
           "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT))
                                         if p)}
    try:
        out = subprocess.run(["bash", str(SCRIPT), "exec", str(cluster), "--", sys.executable,
                              __file__, "--driver", str(episodes), executor, str(workers),
                              str(concurrency), f"sqlite:///{db}"],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    finally:
        stop.set()
        sampler.join()
        for f in tmp.glob(f"{db.name}*"):
            f.unlink()
    if out.returncode != 0:
        raise SystemExit(f"a run failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["worker_mb"] = peak[0]
    return row


def store_rate(episodes: int, tmp: Path, pg_url: str | None) -> None:
    """How fast the one process that writes the store (a Ray run's driver) can insert
    finished episodes whose rows were built where they ran: the store's write ceiling."""
    import anyio
    from sqlalchemy import create_engine, text

    from trialrun.runner import RunOptions, run_episodes
    from trialrun.scenarios.loader import load_scenario_source
    from trialrun.store import Store, episode_rows

    loaded = [load_scenario_source(_retail_source(episodes), "retail.yaml")]
    results = anyio.run(lambda: run_episodes(
        Store(f"sqlite:///{tmp / 'source.db'}"), loaded, keep_results=True,
        options=RunOptions(workers=1))).results
    targets = [("sqlite file", f"sqlite:///{tmp / 'rate.db'}")]
    admin = None
    if pg_url:
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text("DROP DATABASE IF EXISTS trialrun_bench_ray"))
            c.execute(text("CREATE DATABASE trialrun_bench_ray"))
        targets.append(("postgresql", pg_url.rsplit("/", 1)[0] + "/trialrun_bench_ray"))
    print(f"store write rate: {episodes} retail episodes "
          f"({sum(len(r.steps) for r in results) / len(results):.1f} steps each), rows "
          "prepared, inserted by one process")
    try:
        for name, url in targets:
            for batched in (False, True):
                store = Store(url)
                run_id = store.create_run([], {}, len(results), {})
                for r in results:
                    r._rows = episode_rows(run_id, r)
                t0 = time.perf_counter()
                if batched:
                    with store.batched(0.1):
                        for r in results:
                            store.save_episode(run_id, r)
                else:
                    for r in results:
                        store.save_episode(run_id, r)
                dt = time.perf_counter() - t0
                how = "commits grouped (0.1 s)" if batched else "a commit per episode"
                print(f"  {name:<12} {how:<24} {len(results) / dt:>8.0f} episodes/s", flush=True)
                store.engine.dispose()
    finally:
        if admin is not None:
            with admin.connect() as c:
                c.execute(text("DROP DATABASE IF EXISTS trialrun_bench_ray WITH (FORCE)"))
            admin.dispose()


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("-j", "--concurrency", type=int, default=64,
                    help="episodes in flight in all (the batch per Ray call follows)")
    ap.add_argument("--local", action="store_true",
                    help="also the local executor in one process, for a ratio")
    ap.add_argument("--store", type=int, metavar="N", help="only the store's write rate, "
                    "for N episodes (SQLite; PostgreSQL too with --pg or TRIALRUN_PG_DIR)")
    ap.add_argument("--pg", help="a PostgreSQL server URL for --store (a scratch database is "
                    "created and dropped)")
    ap.add_argument("--driver", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.driver:
        n, executor, workers, concurrency, db = args.driver
        driver(int(n), executor, int(workers), int(concurrency), db)
        return
    if args.store:
        pg = args.pg
        url_file = Path(os.environ.get("TRIALRUN_PG_DIR", "/tmp/trialrun-pg")) / "url"
        if pg is None and url_file.exists():
            pg = url_file.read_text().strip()
        with tempfile.TemporaryDirectory() as tmp:
            store_rate(args.store, Path(tmp), pg)
        return

    env = {**os.environ, "RAY_BIN": str(Path(sys.executable).parent / "ray")}
    cluster = Path(tempfile.mkdtemp(prefix="trb-", dir="/tmp"))
    started = subprocess.run(["bash", str(SCRIPT), "start", str(cluster), PORT, "2", "1"],
                             env=env, capture_output=True, text=True)
    try:
        if started.returncode != 0:
            raise SystemExit(f"the cluster did not start:\n{started.stderr}")
        print(f"retail (known_error_rates, scripted agent), full trajectories stored in SQLite "
              f"by the driver; Ray {_ray_version()}, 2 nodes x 1 CPU on loopback, "
              f"{os.cpu_count()} cores; -j {args.concurrency}")
        print(f"{'episodes':>8} {'executor':>10} {'eps/s':>7} {'steady':>7} {'start s':>7} "
              f"{'drv ms/ep':>9} {'drv MB':>7} {'wkr MB':>7}  runs")
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.sizes:
                repeats = 1 if n >= ONCE_FROM else args.repeats
                setups = [("trialrun.ray_executor:RayExecutor", w) for w in args.workers]
                if args.local:
                    setups.append(("local", 1))
                rates: dict[str, float] = {}
                for executor, w in setups:
                    rows = [one(cluster, n, executor, w, args.concurrency, Path(tmp))
                            for _ in range(repeats)]
                    m = _median(rows)
                    label = f"ray w={w}" if executor != "local" else "local w=1"
                    rates[label] = m["eps"]
                    print(f"{n:>8} {label:>10} {m['eps']:>7.0f} {m['steady']:>7.0f} "
                          f"{m['start']:>7.2f} {m['cpu_ms']:>9.3f} {m['rss_mb']:>7.0f} "
                          f"{m['worker_mb']:>7.0f}  {repeats}", flush=True)
                if "ray w=1" in rates and "ray w=2" in rates:
                    print(f"{'':>8} ratio 2 workers / 1: {rates['ray w=2'] / rates['ray w=1']:.2f}"
                          + (f"; ray w=2 / local: {rates['ray w=2'] / rates['local w=1']:.2f}"
                             if "local w=1" in rates else ""), flush=True)
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(cluster)], env=env,
                       capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", str(cluster)])


def _ray_version() -> str:
    try:
        from importlib.metadata import version

        return version("ray")
    except Exception:  # noqa: BLE001 - for the header only
        return "?"


if __name__ == "__main__":
    main()
