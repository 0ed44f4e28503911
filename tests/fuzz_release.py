"""The fuzz run before each release (issue 14), outside the suite: thousands of mutated
scenario files through validation, and those that still load through a one-episode run into
a store. It must find no traceback, no hang and no error without a line.

    python -m tests.fuzz_release [--mutations 5000] [--seed 0] [--runs 300] [--keep DIR]

Mutations are those of the suite's Hypothesis test (test_hostile_input.py), drawn from a
seeded generator so a finding reproduces with its seed; the library's scenarios and the
corpus (tests/corpus) are the starting points. A finding is written to --keep (default
fuzz-findings/) with the traceback beside it; the exit status is 1 if there is any.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests.test_hostile_input import PIECES
from trialrun.scenarios.loader import LIBRARY, check_targets

CORPUS = Path(__file__).parent / "corpus"
SLOW_S = 2.0  # validation of one file past this is a hang


def mutate(rng: random.Random, data: bytes) -> bytes:
    """1-4 edits: insert a piece or random bytes, delete a span, replace a byte, duplicate a
    line (the suite's `mutated` strategy, on a seeded generator)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(out))
        kind = rng.choice(("insert", "delete", "replace", "duplicate_line"))
        if kind == "insert":
            out[at:at] = rng.choice(PIECES) if rng.random() < 0.7 else rng.randbytes(
                rng.randint(1, 4))
        elif kind == "delete":
            del out[at:at + rng.randint(1, 40)]
        elif kind == "replace":
            out[at:at + 1] = rng.choice(PIECES)
        else:
            start = out.rfind(b"\n", 0, at) + 1
            end = out.find(b"\n", at)
            end = len(out) if end < 0 else end + 1
            out[end:end] = out[start:end]
    return bytes(out)


def problem(report, data: bytes, elapsed: float) -> str | None:
    """What is wrong with one validation, or None."""
    if elapsed > SLOW_S:
        return f"validation took {elapsed:.1f}s"
    for issue in report.issues:
        if "could not validate this file" in issue.message or "Traceback" in issue.message:
            return f"crash reported as an issue: {issue}"
        if data.strip() and (issue.line is None or issue.column is None):
            return f"an issue without a line: {issue}"
    return None


def run_one(path: Path, store_dir: Path) -> str | None:
    """Run the first planned episode of a file that loads; any exception is a finding
    (an episode's own faults come back as error episodes, never raised)."""
    import anyio

    from trialrun.runner import RunOptions, run_episodes
    from trialrun.scenarios.loader import ScenarioError, load_scenario
    from trialrun.store import Store

    try:
        loaded = load_scenario(path)
    except ScenarioError:
        return None
    if "sandbox" in getattr(loaded.world_cls.Options, "model_fields", {}):
        return None  # a sandboxed world runs real test suites (~40 s an episode): validated only
    store = Store(f"sqlite:///{store_dir / 'fuzz.db'}")
    opts = RunOptions(limit=1, max_attempts=1, retry_backoff_s=0.0, sandbox="local")

    async def go() -> None:
        with anyio.fail_after(30):  # a hang is a finding (TimeoutError)
            await run_episodes(store, [loaded], options=opts)

    anyio.run(go)
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutations", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=300, help="of the files that load, run "
                    "this many (one episode each)")
    ap.add_argument("--keep", type=Path, default=Path("fuzz-findings"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(CORPUS))  # the corpus's toy world (corpus_toy:...)
    seeds = sorted(LIBRARY.glob("*/*.yaml")) + sorted(CORPUS.glob("*.yaml"))
    sources = [p.read_bytes() for p in seeds]
    rng = random.Random(args.seed)
    check_targets([str(p) for p in seeds[:8]])  # imports and caches: not a file's own time
    findings, loaded_ok, ran, slowest = 0, 0, 0, 0.0
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i in range(args.mutations):
            data = mutate(rng, rng.choice(sources))
            path = work / f"m{i}.yaml"
            path.write_bytes(data)
            what = None
            t0 = time.perf_counter()
            try:
                (report,) = check_targets([str(path)])
                elapsed = time.perf_counter() - t0
                slowest = max(slowest, elapsed)
                what = problem(report, data, elapsed)
                if what is None and report.ok:
                    loaded_ok += 1
                    if ran < args.runs:
                        ran += 1
                        what = run_one(path, work)
            except Exception:  # noqa: BLE001 - that is the finding
                what = traceback.format_exc()
            if what is not None:
                findings += 1
                args.keep.mkdir(parents=True, exist_ok=True)
                (args.keep / f"seed{args.seed}-m{i}.yaml").write_bytes(data)
                (args.keep / f"seed{args.seed}-m{i}.txt").write_text(what)
                print(f"finding m{i}: {what.strip().splitlines()[-1]}", file=sys.stderr)
            path.unlink()
    print(f"{args.mutations} mutations of {len(seeds)} files (seed {args.seed}) in "
          f"{time.perf_counter() - t_start:.0f}s: {loaded_ok} still load, {ran} run; "
          f"slowest validation {slowest * 1000:.0f} ms; findings: {findings}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
