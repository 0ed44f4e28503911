"""`trialrun check-world`: a conformance checker for world authors (after Gymnasium's
`env_checker`). Run it on a world before writing scenarios for it:

    trialrun check-world retail
    trialrun check-world my_pkg.shop:ShopWorld --scenario shop.yaml

`check_world(...)` is a pure function: it prints nothing and returns a `WorldReport`, one
`Check` per property, all of them run and reported like a test report (not just the first
failure). Each failure says what is wrong and how to fix it.

How the determinism checks work. The checker builds the world on one task, resets it and
drives it with a fixed list of decisions (run A): for each tool, in two rounds, a call with
arguments made from the tool's schema (the "probe"), replaced by the world's
`reference_decision` for it when there is one. It records everything the loop would see
(observations, verdicts, results, states, digests, the simulated clock, status, outcome),
then replays exactly the same decisions in fresh worlds built with the same seed:

    B  same seed, same environment            -> must equal A (same seed twice)
    C  the wall clock ~29 years later         -> must equal A (reads no wall clock)
    D  the global RNGs (`random`, numpy) seeded otherwise -> must equal A (uses self.rng)
    E  snapshot half-way, run on, restore     -> state equals the snapshot's, and the same
                                                 calls give the same results again

The wall clock is moved with `unittest.mock`: `time.time`/`time_ns` and `datetime.now`/
`utcnow`/`today`, `date.today` return a fixed instant per run; `time.monotonic` and
`time.perf_counter` (used by timeouts, which must keep working) are shifted by it. Names a
world module bound with `from time import time` or `from datetime import datetime` are
patched in the world's own package too. Limits: everything runs in one process, so what
varies only between processes (str hashing, PYTHONHASHSEED) is not seen; os.urandom, uuid4
and unseeded `random.Random()` show up as "same seed twice" differences.

The modules: `report` (Check, WorldReport, CHECKS and their collector), `static` (the class
and its models), `tasks` (the task and options), `schemas` (tool schemas, example arguments),
`dynamic` (the runs A-E turned into checks), `runs`, `steps` and `hooks` (running the world
as the loop does), `record` (what a run records), `restore` (run E's round trip), `compare`
(differences between runs), `environment` (wall clock and global RNGs), `util`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from trialrun.check_world.dynamic import _dynamic_checks
from trialrun.check_world.environment import _GlobalRngs
from trialrun.check_world.report import CHECKS as CHECKS
from trialrun.check_world.report import Check, WorldReport, _Report
from trialrun.check_world.schemas import _check_tools
from trialrun.check_world.schemas import _example_args as _example_args
from trialrun.check_world.static import _check_model, _check_name, _resolve
from trialrun.check_world.tasks import _context

# The public face. `CHECKS as CHECKS` and `_example_args as _example_args` re-export what
# tests/test_check_world.py also imports from `trialrun.check_world`.
__all__ = ["Check", "WorldReport", "check_world"]


def check_world(world: str | type, *, seed: int = 0,
                options: dict[str, Any] | BaseModel | None = None,
                scenario: str | Path | None = None, task: str | None = None,
                sandbox: str | None = None, steps: int = 24) -> WorldReport:
    """Check a world class against the World contract; never raises for the world's faults.

    `world` is a registered name (`retail`), an import path (`pkg.module:Class`) or the class.
    Tasks (and the world's options) come from `scenario` when given, else from the world's
    `generate_tasks`; `task` picks one by id (default: the first). `options` are the world's
    options when there is no scenario (default: the Options model's defaults). `sandbox`
    (`local`/`docker`) overrides where sandboxed worlds run. `steps` caps the decisions per run.
    """
    out = _Report()
    label = world if isinstance(world, str) else f"{world.__module__}:{world.__qualname__}"
    report = WorldReport(world=label, seed=seed, checks=[])
    cls = _resolve(world, out)
    if cls is None:
        report.checks = out.finish("the class did not resolve")
        return report
    report.cls = f"{cls.__module__}:{cls.__qualname__}"
    _check_name(cls, out)
    _check_model(cls, "Options", "options_model", out)
    _check_model(cls, "Task", "task_model", out)
    ctx = _context(cls, seed, options, scenario, task, sandbox, steps, out)
    if ctx is None:
        _check_tools([t.spec for t in cls.declared_tools.values()], cls, None, out,
                     with_names=False)
        report.checks = out.finish("no task to run the world on (see `tasks`)")
        return report
    report.task, report.task_source = ctx.task.get("id"), ctx.source
    saved = _GlobalRngs.save()
    try:
        _dynamic_checks(ctx, out, report)
    finally:
        saved.restore()
    report.checks = out.finish("")
    return report
