"""Per-episode container overhead and per-command exec latency of the docker sandbox.

Compares, on the same image in the same run, trialrun's sandbox with bare Docker:
- bare CLI: `docker run -d` / `docker exec` / `docker rm -f` (what a person types),
- bare SDK: docker-py `containers.run` / `exec_run` / `remove(force=True)`,
- trialrun cold: `open_sandbox` (locked-down container, labels, counters) / `exec` / `close`,
- trialrun warm pool: `open_sandbox` + `close` per short episode with `pool: N`.

    python bench/bench_sandbox.py [-n 20] [--pool 4] [--json out.json]

Targets (issue): cold start <= 1.2x bare, exec <= 1.2x bare, warm pool < 50 ms/episode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time

from trialrun.sandbox.backend import SandboxSpec, open_sandbox
from trialrun.sandbox.docker_backend import client
from trialrun.sandbox.image import default_image, image_exists
from trialrun.sandbox.pool import shutdown_pools


def ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1000, 1)


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


class BareCLI:
    name = "bare_cli"

    def __init__(self, image: str) -> None:
        self.image = image

    def start(self, i: int):
        out = subprocess.run(
            ["docker", "run", "-d", "--network", "none", self.image, "sleep", "infinity"],
            check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def exec(self, cid) -> None:
        subprocess.run(["docker", "exec", cid, "true"], check=True)

    def remove(self, cid) -> None:
        subprocess.run(["docker", "rm", "-f", cid], check=True, capture_output=True)


class BareSDK:
    name = "bare_sdk"

    def __init__(self, image: str) -> None:
        self.image = image

    def start(self, i: int):
        return client().containers.run(self.image, ["sleep", "infinity"], detach=True,
                                       network_mode="none")

    def exec(self, box) -> None:
        box.exec_run(["true"])

    def remove(self, box) -> None:
        box.remove(force=True)


class Trialrun:
    name = "trialrun_cold"
    spec = SandboxSpec(backend="docker")

    def start(self, i: int):
        return open_sandbox(self.spec, {"run": "bench", "episode": f"c{i}"})

    def exec(self, box) -> None:
        box.exec(["true"])

    def remove(self, box) -> None:
        box.close()


def compare(image: str, n: int, execs: int) -> dict[str, dict[str, float]]:
    """Round-robin over the variants, so that load on the machine hits them alike."""
    variants = [BareCLI(image), BareSDK(image), Trialrun()]
    t: dict[str, dict[str, list[float]]] = {
        v.name: {"start": [], "exec": [], "remove": []} for v in variants}
    for i in range(n):
        for v in variants:
            dt, box = timed(lambda v=v, i=i: v.start(i))
            t[v.name]["start"].append(dt)
            for _ in range(execs):
                t[v.name]["exec"].append(timed(lambda v=v, box=box: v.exec(box))[0])
            t[v.name]["remove"].append(timed(lambda v=v, box=box: v.remove(box))[0])
    return {name: {f"{k}_ms": ms(xs) for k, xs in d.items()} for name, d in t.items()}


def trialrun_pool(n: int, size: int) -> dict[str, float]:
    spec = SandboxSpec(backend="docker", pool=size)
    first = open_sandbox(spec, {"run": "bench-pool", "episode": "warm-up"})
    pool = first.pool
    first.close()
    pool.wait_ready()
    per_episode, acquire = [], []
    for i in range(n):
        t0 = time.perf_counter()
        box = open_sandbox(spec, {"run": "bench-pool", "episode": f"p{i}"})
        acquire.append(time.perf_counter() - t0)
        box.exec(["true"])  # a short episode: one command
        t1 = time.perf_counter()
        box.close()
        per_episode.append(acquire[-1] + time.perf_counter() - t1)
    shutdown_pools()
    return {"open_ms": ms(acquire), "open_close_ms": ms(per_episode),
            "p90_open_close_ms": round(sorted(per_episode)[int(0.9 * (n - 1))] * 1000, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="containers per variant")
    ap.add_argument("--execs", type=int, default=10, help="execs per container")
    ap.add_argument("--pool", type=int, default=4)
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    image = default_image()
    if not image_exists(image):
        raise SystemExit(f"{image} missing: run `trialrun sandbox build` first")
    compare(image, 1, 1)  # warm the daemon, the page cache and the client
    res = {"image": image, "engine": client().version().get("Version"),
           **compare(image, a.n, a.execs), "trialrun_pool": trialrun_pool(a.n * 3, a.pool)}
    cold, cli, sdk = res["trialrun_cold"], res["bare_cli"], res["bare_sdk"]
    res["ratios"] = {
        "start_vs_cli": round(cold["start_ms"] / cli["start_ms"], 2),
        "start_vs_sdk": round(cold["start_ms"] / sdk["start_ms"], 2),
        "exec_vs_cli": round(cold["exec_ms"] / cli["exec_ms"], 2),
        "exec_vs_sdk": round(cold["exec_ms"] / sdk["exec_ms"], 2),
        "remove_vs_cli": round(cold["remove_ms"] / cli["remove_ms"], 2),
    }
    print(json.dumps(res, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
