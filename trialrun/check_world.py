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
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.util
import json
import random
import re
import sys
import time
import traceback
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal
from unittest import mock

from pydantic import BaseModel, Field, ValidationError

from trialrun.sandbox.tools import ToolError
from trialrun.trajectory import Decision, Observation, ToolResult, ToolSpec

__all__ = ["Check", "WorldReport", "check_world"]

Status = Literal["pass", "warn", "fail", "skip"]

# Every check, in report order, with what it protects (shown when it passes).
CHECKS: dict[str, str] = {
    "resolve": "the class resolves and subclasses World",
    "name": "the world has a name",
    "options_model": "Options is a pydantic model that forbids unknown keys",
    "task_model": "Task is a pydantic model that forbids unknown keys",
    "tasks": "there is a task to check the world on",
    "lifecycle": "the world builds, resets and closes; hooks return the right types",
    "tool_schemas": "every tool has a valid JSON-schema object for its arguments",
    "tool_errors": "bad tool calls are answered with ToolError, never a crash",
    "state": "state() is a JSON-able dict",
    "digest": "digest() is a string that changes whenever state() does",
    "status": "status() returns a WorldStatus",
    "outcome": "outcome() returns a JSON-able dict",
    "same_seed": "the same seed twice gives the same run",
    "wall_clock": "the world never reads the wall clock",
    "global_rng": "the world draws from self.rng only, never the global RNG",
    "snapshot_restore": "restore(snapshot()) round-trips",
    "judge": "judge() gives ground truth (Verdicts) and only reads the state",
    "reference_decision": "reference_decision() gives a sound decision to substitute",
}

ROUNDS = 2  # passes over the tool list when planning the decisions
GENERATED = 3  # tasks asked of generate_tasks
WALL = (1_000_000_000.0, 1_900_000_000.0)  # 2001-09-09 and 2030-03-17: the two wall clocks
GLOBAL_SEEDS = (12345, 54321)  # the global RNGs' seeds: usual, and "seeded otherwise"
JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what model APIs accept as a function name
MAX_DETAILS = 6


class Check(BaseModel):
    """One property of the world: passed, failed, warned about or skipped, and why."""

    id: str
    status: Status
    message: str
    fix: str = ""
    details: list[str] = Field(default_factory=list)


class WorldReport(BaseModel):
    """What `check_world` found: one Check per entry of CHECKS, in that order."""

    world: str  # as asked: a registered name or an import path
    cls: str = ""  # the class it resolved to, module:qualname
    seed: int
    task: str | None = None
    task_source: str = ""
    steps: int = 0  # decisions replayed per run
    checks: list[Check]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def get(self, check_id: str) -> Check:
        return next(c for c in self.checks if c.id == check_id)

    def text(self) -> str:
        """The report as plain text, one line per check (details and fixes indented)."""
        head = f"check-world {self.world}"
        if self.cls and self.cls != self.world:
            head += f"  ({self.cls})"
        where = [f"seed {self.seed}"]
        if self.task is not None:
            where.append(f"task {self.task!r} from {self.task_source}")
        if self.steps:
            where.append(f"{self.steps} decision(s) replayed per run")
        lines = [head, "  " + " · ".join(where)]
        width = max(len(c.id) for c in self.checks)
        pad = " " * (width + 10)
        for c in self.checks:
            mark = {"pass": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}[c.status]
            lines.append(f"  {mark}  {c.id:<{width}}  {c.message}")
            lines.extend(f"{pad}- {d}" for d in c.details)
            if c.fix and c.status in ("fail", "warn"):
                lines.append(f"{pad}fix: {c.fix}")
        n = {s: sum(c.status == s for c in self.checks) for s in ("pass", "warn", "fail", "skip")}
        lines.append(f"{n['pass']} passed, {n['warn']} warning(s), {n['fail']} failed, "
                     f"{n['skip']} skipped")
        return "\n".join(lines)


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


# --- collecting checks ---------------------------------------------------------------------
class _Report:
    """Checks as they are decided; `finish` fills in skips and orders them."""

    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}

    def add(self, check_id: str, status: Status, message: str, fix: str = "",
            details: list[str] | None = None) -> None:
        assert check_id in CHECKS, check_id
        self.checks[check_id] = Check(id=check_id, status=status, message=message, fix=fix,
                                      details=_cap(details or []))

    def passed(self, check_id: str, message: str = "") -> None:
        self.add(check_id, "pass", message or CHECKS[check_id])

    def skip(self, check_id: str, why: str) -> None:
        if check_id not in self.checks:
            self.add(check_id, "skip", why)

    def problems(self, check_id: str, problems: dict[str, Status], fix: str,
                 ok: str = "") -> None:
        """Pass, or the worst severity among `problems` (text -> severity) as details."""
        if not problems:
            self.passed(check_id, ok)
            return
        status: Status = "fail" if "fail" in problems.values() else "warn"
        texts = sorted(problems, key=lambda t: problems[t] != "fail")
        more = f" (and {len(texts) - 1} more below)" if len(texts) > 1 else ""
        self.add(check_id, status, texts[0] + more, fix, texts[1:])

    def finish(self, why: str) -> list[Check]:
        for check_id in CHECKS:
            self.skip(check_id, f"not checked: {why}")
        return [self.checks[c] for c in CHECKS]


def _cap(details: list[str]) -> list[str]:
    if len(details) <= MAX_DETAILS:
        return details
    return [*details[:MAX_DETAILS], f"... and {len(details) - MAX_DETAILS} more"]


# --- static checks -------------------------------------------------------------------------
def _resolve(world: str | type, out: _Report) -> type | None:
    from trialrun.sandbox.world import World

    if isinstance(world, type):
        cls = world
    else:
        from trialrun.registry import resolve

        try:
            cls = resolve("world", world)
        except LookupError as e:  # PluginNotFound: unknown, typo, not a World subclass
            out.add("resolve", "fail", str(e),
                    "name a registered world (`trialrun check-world retail`) or an import "
                    "path `pkg.module:Class` to a subclass of trialrun.sandbox.world.World")
            return None
        except Exception as e:  # noqa: BLE001 - a world package that fails while importing
            out.add("resolve", "fail", f"importing world {world!r} raised {_exc(e)}",
                    "fix the import error shown (run `python -c 'import <module>'`)")
            return None
    if not (isinstance(cls, type) and issubclass(cls, World)):
        out.add("resolve", "fail", f"{cls!r} is not a subclass of World",
                "subclass trialrun.sandbox.world.World")
        return None
    out.passed("resolve", f"{cls.__module__}:{cls.__qualname__} subclasses World")
    return cls


def _check_name(cls: type, out: _Report) -> None:
    name = getattr(cls, "name", "")
    if isinstance(name, str) and name:
        out.passed("name", f"named {name!r}")
    else:
        out.add("name", "fail", f"{cls.__qualname__}.name is empty: messages and reports "
                "cannot say which world they are about",
                "decorate the class with @register(\"world\", \"<name>\") "
                "(trialrun.registry.register), or set the class attribute name = \"<name>\"")


def _check_model(cls: type, attr: str, check_id: str, out: _Report) -> None:
    model = getattr(cls, attr, None)
    block = "the scenario's `world:` block" if attr == "Options" else "each task's own fields"
    fix = (f"declare `class {attr}(BaseModel): model_config = ConfigDict(extra=\"forbid\")` "
           f"with a field per key of {block} (an empty model is fine)")
    if model is None:
        hint = " (issue 8 renamed `Config` to `Options`)" if attr == "Options" and \
            getattr(cls, "Config", None) is not None else ""
        out.add(check_id, "fail", f"{cls.__qualname__}.{attr} is None{hint}: {block} is not "
                "validated, so a misspelled key is silently ignored", fix)
        return
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        out.add(check_id, "fail", f"{cls.__qualname__}.{attr} is {model!r}, not a pydantic "
                "model", fix)
        return
    loose = [m.__qualname__ for m in _models_in(model) if m.model_config.get("extra") != "forbid"]
    if loose:
        out.add(check_id, "fail", f"{', '.join(loose)} accept(s) unknown keys: a misspelled "
                f"key in {block} would be silently ignored",
                "set model_config = ConfigDict(extra=\"forbid\") on each of them")
        return
    out.passed(check_id, f"{model.__qualname__} forbids unknown keys"
               + (" (and so do the models inside it)" if len(_models_in(model)) > 1 else ""))


def _models_in(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The model and every pydantic model its fields hold (in lists, dicts, unions)."""
    seen: list[type[BaseModel]] = []

    def walk(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp not in seen:
                seen.append(tp)
                for f in tp.model_fields.values():
                    walk(f.annotation)
            return
        for arg in typing.get_args(tp):
            walk(arg)

    walk(model)
    return seen


# --- the task and options ------------------------------------------------------------------
@dataclass
class _Ctx:
    cls: Any
    options: Any
    task: dict[str, Any]
    seed: int
    steps: int
    source: str
    modules: list[ModuleType] = field(default_factory=list)


def _context(cls: Any, seed: int, options: Any, scenario: str | Path | None,
             task_id: str | None, sandbox: str | None, steps: int,
             out: _Report) -> _Ctx | None:
    """The world's options and the task to run it on (the `tasks` check), or None."""
    problems: dict[str, Status] = {}
    if scenario is not None:
        got = _scenario_tasks(cls, scenario, sandbox, out)
        if got is None:
            return None
        opts, tasks, source = got
    else:
        opts = _options(cls, options, sandbox, out)
        if opts is _NO_OPTIONS:
            return None
        generated, source = _generated_tasks(cls, seed, problems, out)
        if generated is None:
            return None
        tasks = _valid_tasks(cls, generated, problems)
    if not tasks:
        problems["no task to run the world on"] = "fail"
        out.problems("tasks", problems, "give a scenario file with tasks (--scenario FILE)")
        return None
    ids = [t["id"] for t in tasks]
    if len(set(ids)) != len(ids):
        problems[f"task ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}"] = "fail"
    if task_id is None:
        chosen = tasks[0]
    else:
        chosen = next((t for t in tasks if t["id"] == task_id), None)
        if chosen is None:
            from trialrun.registry import did_you_mean

            out.add("tasks", "fail", f"no task {task_id!r} in {source}{did_you_mean(task_id, ids)}",
                    f"pick one of: {', '.join(ids[:20])}")
            return None
    fix = "generate_tasks(n, seed, difficulty, **params) must return the same list of task " \
          "dicts for the same arguments, each with a unique `id` and fields the Task model accepts"
    out.problems("tasks", problems, fix,
                 ok=f"task {chosen['id']!r} (of {len(tasks)}) from {source}")
    return _Ctx(cls, opts, chosen, seed, steps, source, _world_modules(cls))


_NO_OPTIONS = object()


def _valid_tasks(cls: Any, generated: list[dict[str, Any]],
                 problems: dict[str, Status]) -> list[dict[str, Any]]:
    """Generated tasks as the loader makes them (TaskSpec.as_dict), each also checked
    against the world's Task model (the loader checks only written tasks against it, and
    World.__init__ silently drops fields the model does not know)."""
    from trialrun.scenarios.schema import TaskSpec

    model = cls.Task if isinstance(cls.Task, type) and issubclass(cls.Task, BaseModel) else None
    out = []
    for t in generated:
        try:
            spec = TaskSpec.model_validate(t)
        except ValidationError as e:
            problems[f"generate_tasks gave a task the scenario schema refuses: {_brief(e)}"] = \
                "fail"
            continue
        if model is not None:
            try:
                model.model_validate(spec.model_extra or {})
            except ValidationError as e:
                problems[f"generate_tasks gave task {spec.id!r} fields its Task model refuses: "
                         f"{_brief(e)}"] = "fail"
        out.append(spec.as_dict())
    return out


def _options(cls: Any, options: Any, sandbox: str | None, out: _Report) -> Any:
    model = cls.Options if isinstance(cls.Options, type) and \
        issubclass(cls.Options, BaseModel) else None
    if isinstance(options, BaseModel):
        options = options.model_dump(exclude_unset=True)
    raw = dict(options or {})
    if sandbox and cls.uses_sandbox:
        raw["sandbox"] = sandbox
    if model is None:
        return raw or None
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        out.add("tasks", "fail", f"cannot build the world's options from {raw or 'defaults'}: "
                f"{_brief(e)}", "give a scenario whose `world:` block sets them "
                "(--scenario FILE)")
        return _NO_OPTIONS


def _generated_tasks(cls: Any, seed: int, problems: dict[str, Status],
                     out: _Report) -> tuple[list[dict[str, Any]] | None, str]:
    source = f"generate_tasks({GENERATED}, seed={seed})"
    try:
        tasks = cls.generate_tasks(GENERATED, seed)
    except NotImplementedError:
        out.add("tasks", "fail", f"{cls.__qualname__} does not implement generate_tasks and no "
                "scenario file was given: there is no task to check the world on",
                "pass a scenario with tasks for this world (`--scenario FILE`, and `--task ID` "
                "to pick one), or implement the classmethod generate_tasks(n, seed, difficulty, "
                "**params)")
        return None, source
    except Exception as e:  # noqa: BLE001 - the world's own code
        out.add("tasks", "fail", f"{source} raised {_exc(e)}",
                "generate_tasks must return n task dicts for any n >= 1 and any seed")
        return None, source
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        out.add("tasks", "fail", f"{source} returned {type(tasks).__name__}, expected a list "
                "of task dicts", "return [{\"id\": ..., <Task fields>}, ...]")
        return None, source
    if len(tasks) != GENERATED:
        problems[f"{source} returned {len(tasks)} task(s), expected {GENERATED}"] = "warn"
    try:
        again = cls.generate_tasks(GENERATED, seed)
    except Exception:  # noqa: BLE001 - it worked once; the difference is the finding
        again = None
    if _plain(again) != _plain(tasks):
        problems[f"{source} twice gave different tasks: draw from random.Random(seed), "
                 "never the global RNG or the clock"] = "fail"
    return tasks, source


def _scenario_tasks(cls: Any, scenario: str | Path, sandbox: str | None,
                    out: _Report) -> tuple[Any, list[dict[str, Any]], str] | None:
    from trialrun.scenarios.loader import ScenarioError, load_scenario, scenario_files

    try:  # a file, or a built-in one by its suite: `retail/refund_in_window`, `retail`
        files = scenario_files(str(scenario))
    except FileNotFoundError as e:
        out.add("tasks", "fail", str(e), "give a scenario file, or a built-in scenario as "
                "<suite>/<name> (e.g. retail/refund_in_window)")
        return None
    scenario = files[0]
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as e:
        out.add("tasks", "fail", f"the scenario {scenario} does not load", "fix the problems "
                "listed (`trialrun validate FILE` shows the same)", [str(i) for i in e.issues])
        return None
    if loaded.world_cls is not cls:
        out.add("tasks", "fail", f"the scenario {scenario} is for world "
                f"{loaded.scenario.world.type!r}, not {cls.__qualname__}",
                "give a scenario whose `world: {type: ...}` names this world")
        return None
    if sandbox and cls.uses_sandbox:
        from trialrun.plan import apply_overrides

        loaded = apply_overrides(loaded, {"sandbox": sandbox})
    return loaded.world_options, loaded.tasks, f"scenario {scenario}"


# --- the runs ------------------------------------------------------------------------------
@dataclass
class _Run:
    """What one run of the world recorded: comparable entries, and contract problems."""

    entries: list[tuple[str, Any]] = field(default_factory=list)
    problems: dict[str, dict[str, Status]] = field(default_factory=dict)
    plan: list[tuple[Decision, Decision]] = field(default_factory=list)  # (probe, executed)
    fatal: str | None = None
    tools: list[ToolSpec] | None = None
    states: list[tuple[str, Any, Any]] = field(default_factory=list)  # (where, state, digest)
    judged: int = 0
    verdicts: int = 0
    references: int = 0
    restore: tuple[Status, str, list[str]] | None = None  # run E's finding
    starts: list[int] = field(default_factory=list)  # index in entries where each step starts
    end_at: int = 0  # index in entries where the steps end
    seen: set[str] = field(default_factory=set)  # kinds of problems noted once

    def add(self, label: str, value: Any) -> None:
        self.entries.append((label, _plain(value)))

    def problem(self, check_id: str, text: str, severity: Status = "fail",
                once: str | None = None) -> None:
        """Note a problem; with `once`, only the first of its kind (e.g. the first step)."""
        if once is not None:
            if once in self.seen:
                return
            self.seen.add(once)
        self.problems.setdefault(check_id, {}).setdefault(text, severity)

    @property
    def digest(self) -> Any:
        return self.states[-1][2] if self.states else None


def _dynamic_checks(ctx: _Ctx, out: _Report, report: WorldReport) -> None:
    a = _run(ctx, WALL[0], GLOBAL_SEEDS[0], None)
    report.steps = len(a.plan)
    _check_tools(a.tools if a.tools is not None else
                 [t.spec for t in ctx.cls.declared_tools.values()], ctx.cls, ctx.options, out)
    if a.fatal is not None:
        fix = "reset() must build the initial state from self.spec, self.options and " \
              "self.rng and return Observation(text=..., data=...)"
        if ctx.cls.uses_sandbox:
            fix += "; if the sandbox backend is unavailable here, try --sandbox local"
        out.add("lifecycle", "fail", a.fatal, fix, list(a.problems.get("lifecycle", {})))
        for check_id in CHECKS:
            out.skip(check_id, "not checked: the world did not start (see lifecycle)")
        return
    _contract_checks(ctx, a, out)
    b = _run(ctx, WALL[0], GLOBAL_SEEDS[0], a.plan)
    c = _run(ctx, WALL[1], GLOBAL_SEEDS[0], a.plan)
    d = _run(ctx, WALL[0], GLOBAL_SEEDS[1], a.plan)
    steps = f"{len(a.plan)} decision(s)"
    diff = _difference(a, b)
    if diff:
        out.add("same_seed", "fail", f"two runs with seed {ctx.seed} differ: {diff[0]}",
                "a world must be a function of its seed, its task and the decisions: draw "
                "every random number from self.rng, take time from self.clock, and avoid "
                "uuid4/os.urandom, unseeded random.Random(), id() and the order of sets",
                diff[1:])
        for check_id in ("wall_clock", "global_rng"):
            out.skip(check_id, "inconclusive: the world differs even with the same seed, "
                     "clock and global RNG (see same_seed)")
    else:
        out.passed("same_seed", f"two runs with seed {ctx.seed} agree on every observation, "
                   f"verdict, result, state and digest over {steps}")
        diff = _difference(a, c)
        if diff:
            out.add("wall_clock", "fail", f"the run changes when the wall clock moves: {diff[0]}",
                    "read time from self.clock (simulated seconds, advanced by @tool(seconds=...) "
                    "or self.clock.advance), never time.time(), datetime.now() or date.today()",
                    diff[1:])
        else:
            out.passed("wall_clock", "moving the wall clock by 29 years changes nothing")
        diff = _difference(a, d)
        if diff:
            out.add("global_rng", "fail", "the run changes when the global `random` module "
                    f"(or numpy's global RNG) is seeded otherwise: {diff[0]}",
                    "draw every random number from self.rng (random.Random(seed)); for numpy, "
                    "use numpy.random.default_rng(self.rng.getrandbits(64)), never "
                    "random.random()/random.choice() or numpy.random.*", diff[1:])
        else:
            out.passed("global_rng", "reseeding the global `random` module"
                       + (" and numpy's global RNG" if _numpy() else "") + " changes nothing")
    e = _run(ctx, WALL[0], GLOBAL_SEEDS[0], a.plan, snapshot_at=len(a.plan) // 2)
    if e.restore is None:
        out.add("snapshot_restore", "skip", f"not checked: {e.fatal or 'the run stopped early'}")
    else:
        status, message, details = e.restore
        fix = {"pass": "", "skip": "",
               "warn": "implement load_state(state): set the world back from what state() "
                       "returned (snapshot() stores state(), the RNG and the clock)",
               "fail": "load_state must set everything state() reports and rebuild anything "
                       "else the world keeps (caches, derived tables) from it; snapshot() must "
                       "copy, not share, the live state"}[status]
        out.add("snapshot_restore", status, message, fix, details)


def _contract_checks(ctx: _Ctx, a: _Run, out: _Report) -> None:
    """What run A saw about each hook's contract."""
    p = a.problems
    out.problems("lifecycle", p.get("lifecycle", {}),
                 "reset() and observe() return trialrun.trajectory.Observation; close() must "
                 "not raise (it also runs after errors)",
                 ok="the world builds, resets, observes and closes")
    out.problems("tool_errors", p.get("tool_errors", {}),
                 "raise ToolError (trialrun.sandbox.world.ToolError) for a call the world "
                 "refuses: the loop grades it as the agent's error; any other exception ends "
                 "the episode as an infrastructure error",
                 ok=f"{len(a.plan)} call(s) with schema-made or reference arguments: answered "
                    "or refused with ToolError")
    out.problems("state", p.get("state", {}),
                 "return plain JSON data from state(): dicts with str keys, lists, str, "
                 "numbers, bools, None (convert sets, tuples, dates, models)")
    out.problems("digest", p.get("digest", {}),
                 "let digest() hash everything state() returns (the default does), or drop "
                 "the override")
    out.problems("status", p.get("status", {}),
                 "return trialrun.sandbox.world.WorldStatus(done=..., reason=..., metrics=...)")
    out.problems("outcome", p.get("outcome", {}),
                 "return a dict of plain JSON data from outcome(): the facts outcome graders "
                 "read (at least {\"state\": self.state()})")
    judge = dict(p.get("judge", {}))
    if a.judged and not a.verdicts and not judge:
        judge[f"judge() returned None for all {a.judged} decisions the checker tried: node "
              "graders of this world have no ground truth (the `world` grader grades no "
              "step)"] = "warn"
    out.problems("judge", judge, "return Verdict(correct=..., reason=...) from judge(decision) "
                 "wherever the world knows what a sound decision is; judge only reads the state",
                 ok=f"Verdicts for {a.verdicts} of {a.judged} decision(s) judged")
    ref = dict(p.get("reference_decision", {}))
    if not a.references and not ref:
        ref["reference_decision() returned None for every decision: a human taking over "
            "(checkpoints on_deny: takeover) and counterfactual replays (correct_at) have "
            "nothing to substitute"] = "warn"
    out.problems("reference_decision", ref,
                 "return the Decision a careful agent would take instead of `decision` "
                 "(same node), where the world knows it",
                 ok=f"a reference decision for {a.references} decision(s)")


@contextlib.contextmanager
def _world(ctx: _Ctx, run: _Run) -> Iterator[Any]:
    try:
        world = ctx.cls(ctx.options, ctx.task, ctx.seed)
    except Exception as e:  # noqa: BLE001 - the world's own code
        run.fatal = f"{ctx.cls.__qualname__}(options, task, seed={ctx.seed}) raised {_exc(e)}"
        run.add("fatal", run.fatal)
        yield None
        return
    try:
        yield world
    finally:
        try:
            world.close()
        except Exception as e:  # noqa: BLE001
            run.problem("lifecycle", f"close() raised {_exc(e)}")


def _run(ctx: _Ctx, wall: float, global_seed: int, plan: list[tuple[Decision, Decision]] | None,
         snapshot_at: int | None = None) -> _Run:
    """One episode-like run: reset, the decisions (planned now when `plan` is None), then
    the end probes and the outcome; with `snapshot_at`, the snapshot/restore round trip."""
    run = _Run()
    with _environment(wall, global_seed, ctx.modules), _world(ctx, run) as world:
        if world is None:
            return run
        try:
            obs = world.reset()
        except Exception as e:  # noqa: BLE001
            run.fatal = f"reset() raised {_exc(e)}"
            run.add("fatal", run.fatal)
            return run
        try:
            _episode(ctx, world, run, obs, plan, snapshot_at)
        except Exception as e:  # noqa: BLE001 - a fault no hook check caught (no self.clock...)
            run.fatal = f"the world broke the checker's run: {_exc(e)}"
            run.add("fatal", run.fatal)
    return run


def _episode(ctx: _Ctx, world: Any, run: _Run, obs: Any,
             plan: list[tuple[Decision, Decision]] | None, snapshot_at: int | None) -> None:
    _check_observation("reset()", obs, run)
    run.add("first observation", obs)
    _record_state(world, run, "after reset")
    run.tools = _tools(world, run)
    run.add("tools", run.tools)
    source = plan if plan is not None else ((p, None) for p in _probes(world, run, ctx))
    snap = None
    for i, (probe, decision) in enumerate(source):
        if i == snapshot_at:
            snap = _snapshot(world, run)
        run.starts.append(len(run.entries))
        executed, done = _step(ctx, world, run, i, probe, decision)
        run.plan.append((probe, executed))
        if done:
            break
    run.end_at = len(run.entries)
    if snapshot_at is None:
        _end(ctx, world, run)
        return
    if snap is None:  # the plan is shorter than asked: snapshot now
        snapshot_at = len(run.plan)
        snap = _snapshot(world, run)
    run.restore = _restore(ctx, world, run, snap, snapshot_at)


def _probes(world: Any, run: _Run, ctx: _Ctx) -> Iterator[Decision]:
    """A call to each tool, round after round, with arguments made from its schema."""
    n = 0
    for r in range(ROUNDS):
        tools = run.tools if r == 0 else _tools(world, run)
        for spec in tools or []:
            if n >= ctx.steps:
                return
            params = spec.parameters if isinstance(spec.parameters, dict) else {}
            yield Decision(kind="tool_call", node=spec.name, tool=spec.name,
                           args=_example_args(params))
            n += 1


def _step(ctx: _Ctx, world: Any, run: _Run, i: int, probe: Decision,
          decision: Decision | None) -> tuple[Decision, bool]:
    tag = f"step {i} ({probe.tool or probe.kind})"
    ref = _reference(world, run, probe)
    run.add(f"{tag}: reference decision", ref)
    if decision is None:
        decision = ref if ref is not None and ref.kind != "finish" else probe
    if decision != probe:
        run.add(f"{tag}: verdict on the probe",
                None if _refused(run, probe) else _judge(world, run, probe))
    refused = _refused(run, decision)
    verdict = None if refused else _judge(world, run, decision)
    run.add(f"{tag}: verdict", verdict)
    if decision is ref and getattr(verdict, "correct", True) is False:
        run.problem("reference_decision", f"judge() calls the world's own reference decision "
                    f"{_clip(ref.label())} wrong ({verdict.reason}): a counterfactual replay "
                    "(correct_at) that substitutes it still records an error there", "warn")
    _unchanged(world, run, f"at {tag}")
    result = ToolResult(ok=False, error=refused, fault="agent") if refused else \
        _apply(ctx, world, run, decision)
    run.add(f"{tag}: result", result)
    obs = _hook(run, "lifecycle", world.observe)
    if not isinstance(obs, _Raised):
        _check_observation("observe()", obs, run)
    run.add(f"{tag}: observation", obs)
    _record_state(world, run, f"after {tag}")
    run.add(f"{tag}: simulated clock", world.clock.now)
    status = _status(world, run)
    run.add(f"{tag}: status", status)
    return decision, bool(getattr(status, "done", False))


def _end(ctx: _Ctx, world: Any, run: _Run) -> None:
    """What the loop asks at the end: judge/reference the other decision kinds, outcome."""
    for kind, text in (("ask_human", "Which one do you mean?"), ("message", "Working on it."),
                       ("finish", "Done.")):
        d = Decision(kind=kind, node=kind, text=text)
        run.add(f"end: reference for {kind}", _reference(world, run, d))
        run.add(f"end: verdict on {kind}", _judge(world, run, d))
    _unchanged(world, run, "at the end")
    outcome = _hook(run, "outcome", world.outcome)
    if not isinstance(outcome, _Raised):
        if not isinstance(outcome, dict):
            run.problem("outcome", f"outcome() returned {type(outcome).__name__}, expected a dict")
        elif not _is_json(outcome):
            run.problem("outcome", "outcome() is not plain JSON data (it is graded and "
                        f"stored): {_json_error(outcome)}", "warn")
        if isinstance(outcome, dict) and "success" not in outcome:
            run.problem("outcome", "outcome() has no \"success\" key: the `world` outcome "
                        "grader (the default when a scenario lists no graders) reads "
                        "success, reason and score, so it fails every episode", "warn")
    run.add("outcome", outcome)
    run.add("status after the outcome", _status(world, run))


def _apply(ctx: _Ctx, world: Any, run: _Run, d: Decision) -> Any:
    """The decision takes effect, as the episode loop does it."""
    if d.kind == "tool_call":
        try:
            result = world.execute(d.node, d.tool, d.args)
        except ToolError as e:
            return ToolResult(ok=False, error=str(e), fault="agent")
        except Exception as e:  # noqa: BLE001
            run.problem("tool_errors", f"execute({d.tool!r}, {_short(d.args)}) raised {_exc(e)}")
            return f"raised {_exc(e)}"
        if not isinstance(result, ToolResult):
            run.problem("tool_errors", f"execute({d.tool!r}, ...) returned "
                        f"{type(result).__name__}, expected a ToolResult (the default execute "
                        "wraps what a @tool method returns)")
        return result
    if d.kind == "finish":
        return None
    world.clock.advance(ctx.cls.sim_seconds_per_step)
    if d.kind == "ask_human":
        return _hook(run, "lifecycle", world.human_answer, d.text or "")
    said = _hook(run, "lifecycle", world.on_message, d.text or "")
    if not isinstance(said, _Raised):
        _check_observation("on_message()", said, run)
    return said


class _Raised(str):
    """What a hook raised, as the value the run records in its place."""


def _hook(run: _Run, check_id: str, fn: Any, *args: Any, why: str = "") -> Any:
    """Call a world hook; what it raises is a problem of `check_id` and a _Raised value."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - the world's own code
        run.problem(check_id, f"{getattr(fn, '__name__', 'a hook')}() raised {_exc(e)}{why}")
        return _Raised(f"raised {_exc(e)}")


def _judge(world: Any, run: _Run, d: Decision) -> Any:
    from trialrun.sandbox.world import Verdict

    run.judged += 1
    v = _hook(run, "judge", world.judge, d, why=f" on {d.label()}: the loop judges every "
              "decision, also odd ones an agent makes")
    if isinstance(v, _Raised):
        return v
    if v is not None and not isinstance(v, Verdict):
        run.problem("judge", f"judge() returned {type(v).__name__}, expected a Verdict or None")
    elif v is not None:
        run.verdicts += 1
    return v


def _reference(world: Any, run: _Run, d: Decision) -> Any:
    ref = _hook(run, "reference_decision", world.reference_decision, d, why=f" on {d.label()}")
    if ref is None or isinstance(ref, _Raised):
        return None
    if not isinstance(ref, Decision):
        run.problem("reference_decision", f"reference_decision() returned "
                    f"{type(ref).__name__}, expected a Decision or None")
        return None
    run.references += 1
    why = _refused(run, ref)
    if why:
        run.problem("reference_decision", f"reference_decision() proposes "
                    f"{_clip(ref.label())}, which the loop refuses: {why}",
                    once=f"ref-refused-{ref.tool}")
    return ref


def _refused(run: _Run, d: Decision) -> str | None:
    """Why the loop refuses a tool call before judging or running it (unknown tool, arguments
    against its schema), as `Episode.validate_call` does; None for a well-formed call."""
    if d.kind != "tool_call" or run.tools is None:
        return None
    from trialrun.episode import check_arguments

    spec = next((t for t in run.tools if t.name == d.tool), None)
    return f"unknown tool {d.tool!r}" if spec is None else check_arguments(spec, d.args)


def _status(world: Any, run: _Run) -> Any:
    from trialrun.sandbox.world import WorldStatus

    status = _hook(run, "status", world.status)
    if not isinstance(status, WorldStatus | _Raised):
        run.problem("status", f"status() returned {type(status).__name__}, expected a "
                    "WorldStatus")
    return status


def _tools(world: Any, run: _Run) -> list[ToolSpec]:
    tools = _hook(run, "lifecycle", world.tools)
    if isinstance(tools, _Raised):
        return []
    if not isinstance(tools, list) or not all(isinstance(t, ToolSpec) for t in tools):
        run.problem("lifecycle", f"tools() returned {_short(tools)}, expected a list of "
                    "ToolSpec")
        return [t for t in tools if isinstance(t, ToolSpec)] if isinstance(tools, list) else []
    return tools


def _record_state(world: Any, run: _Run, where: str) -> None:
    state = _hook(run, "state", world.state)
    if not isinstance(state, _Raised):
        if not isinstance(state, dict):
            run.problem("state", f"state() returned {type(state).__name__}, expected a dict")
        elif not _is_json(state):
            run.problem("state", f"state() is not plain JSON data: {_json_error(state)}")
        elif json.loads(json.dumps(state)) != state:
            run.problem("state", "state() changes in a JSON round trip (tuples become lists, "
                        "non-str keys become str): snapshot() stores the round-tripped form, "
                        "so load_state sees other data than state() gave", "warn")
    digest = _digest(world, run)
    run.add(f"state {where}", state)
    run.add(f"digest {where}", digest)
    plain = _plain(state)
    if run.states and plain != run.states[-1][1] and digest == run.states[-1][2]:
        run.problem("digest", f"the state changed {where} but digest() did not: replays "
                    "compare digests, so they would miss this divergence "
                    f"({_leaf_diff(run.states[-1][1], plain)})", once="digest-misses")
    run.states.append((where, plain, digest))


def _digest(world: Any, run: _Run) -> Any:
    digest = _hook(run, "digest", world.digest)
    if not isinstance(digest, str):
        run.problem("digest", f"digest() returned {type(digest).__name__}, expected a str")
    return digest


def _unchanged(world: Any, run: _Run, where: str) -> None:
    """Ground-truth hooks only read: the digest is what it was after the last step."""
    if run.states and _digest(world, run) != run.digest:
        run.problem("judge", "judge() or reference_decision() changed the world's state (its "
                    f"digest) {where}, before any decision took effect: ground-truth hooks "
                    "must only read the state", once="judge-writes")


def _check_observation(hook: str, obs: Any, run: _Run) -> None:
    if not isinstance(obs, Observation):
        run.problem("lifecycle", f"{hook} returned {type(obs).__name__}, expected an "
                    "Observation (trialrun.trajectory.Observation(text=..., data=...))")
        return
    try:
        obs.model_dump_json()
    except Exception as e:  # noqa: BLE001 - pydantic's serialisation errors
        run.problem("lifecycle", f"{hook}'s observation data is not JSON ({type(e).__name__}: "
                    f"{str(e).splitlines()[0]}): LLM agents cannot be shown it", "warn")


# --- snapshot / restore ----------------------------------------------------------------------
def _snapshot(world: Any, run: _Run) -> Any:
    try:
        snap = world.snapshot()
    except Exception as e:  # noqa: BLE001
        return e
    state, digest = _plain(_safe(world.state)), _safe(world.digest)
    return snap, state, digest


def _restore(ctx: _Ctx, world: Any, run: _Run, snap: Any,
             at: int) -> tuple[Status, str, list[str]]:
    """Status, message and details of the round trip: restore, compare, run on again."""
    if isinstance(snap, Exception):
        return "fail", f"snapshot() raised {_exc(snap)}", []
    snapshot, state, digest = snap
    if not isinstance(snapshot, dict):
        return "fail", f"snapshot() returned {type(snapshot).__name__}, expected a dict", []
    # Restoring is a warning, not a failure, when unimplemented: no part of the episode loop
    # or of the replays needs it today (they re-run from the seed), while a world whose
    # restore exists but does not round-trip is wrong, and any tool that branches an episode
    # from a snapshot would silently compare different worlds.
    try:
        world.restore(snapshot)
    except NotImplementedError as e:
        return "warn", f"cannot restore ({e or 'load_state is not implemented'}): nothing can " \
                       "branch an episode of this world from a snapshot", []
    except Exception as e:  # noqa: BLE001
        return "fail", f"restore(snapshot()) raised {_exc(e)}", []
    where = f"after {at} step(s) and {len(run.plan) - at} more"
    now_state, now_digest = _plain(_safe(world.state)), _safe(world.digest)
    if now_state != state:
        return "fail", f"restore(snapshot {where}) does not give the snapshot's state back " \
                       f"(snapshot != restored): {_leaf_diff(state, now_state)}", []
    if now_digest != digest:
        return "fail", f"after restore(snapshot {where}) the state is the snapshot's but the " \
                       f"digest is not ({now_digest!r} != {digest!r}): something digest() " \
                       "covers is not restored", []
    # Run on from the restored world: the same calls must give what they gave the first time
    # (in this same world, so that a world the other checks find irreproducible is not
    # blamed here again).
    again = _Run(tools=run.tools, states=[("after restore", now_state, now_digest)])
    for i, (probe, decision) in enumerate(run.plan[at:], start=at):
        _step(ctx, world, again, i, probe, decision)
    first = run.entries[run.starts[at]:run.end_at] if at < len(run.starts) else []
    diff = _entries_difference(first, again.entries)
    if diff:
        return "fail", f"after restore(snapshot {where}), the same calls give other results " \
                       f"than the first time: {diff[0]}; the world keeps something state() " \
                       "and load_state do not cover", diff[1:]
    return "pass", f"restore(snapshot {where}) gives the snapshot's state and digest back, " \
                   "and the same calls then give the same results", []


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - reported by the runs' own checks
        return f"raised {_exc(e)}"


# --- comparing runs --------------------------------------------------------------------------
def _difference(a: _Run, b: _Run) -> list[str]:
    """The first difference between two runs, then how many records differ; [] if none."""
    if b.fatal and not a.fatal:
        return [f"this run failed where the first did not: {b.fatal}"]
    return _entries_difference(a.entries, b.entries)


def _entries_difference(a: list[tuple[str, Any]], b: list[tuple[str, Any]]) -> list[str]:
    first = None
    count = 0
    for (la, va), (lb, vb) in zip(a, b, strict=False):
        if la != lb:
            first = first or f"the runs went different ways: {la!r} against {lb!r}"
            count += 1
            break
        if va != vb:
            first = first or f"{la}: {_leaf_diff(va, vb)}"
            count += 1
    if len(a) != len(b):
        first = first or f"one run stopped early ({len(a)} against {len(b)} records)"
    if first is None:
        return []
    return [first, f"{count} record(s) differ in all"] if count > 1 else [first]


def _leaf_diff(a: Any, b: Any, path: str = "") -> str:
    """Where two plain values first differ: `.orders.O-1001.status: 'x' != 'y'`."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}.{k}: only in {'the second' if k not in a else 'the first'} run"
            if a[k] != b[k]:
                return _leaf_diff(a[k], b[k], f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _leaf_diff(x, y, f"{path}[{i}]")
    return f"{path or 'value'}: {_short(a)} != {_short(b)}"


# --- the environment: wall clock and global RNGs ---------------------------------------------
_REAL_DATETIME, _REAL_DATE = _dt.datetime, _dt.date
_REAL_TIME = {n: getattr(time, n) for n in ("time", "time_ns", "monotonic", "monotonic_ns",
                                            "perf_counter", "perf_counter_ns")}


class _RealInstances(type):
    """Metaclass of the patched datetime classes: isinstance checks against the real class,
    so that world code comparing types behaves as without the patch."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.__bases__[0])

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls.__bases__[0])


def _clock_fakes(wall: float) -> dict[Any, Any]:
    """Real clock object -> its stand-in for a run whose wall clock reads `wall`."""

    class FrozenDatetime(_REAL_DATETIME, metaclass=_RealInstances):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return _REAL_DATETIME.fromtimestamp(wall, tz)

        @classmethod
        def utcnow(cls) -> Any:
            return _REAL_DATETIME.fromtimestamp(wall, _dt.UTC).replace(tzinfo=None)

        @classmethod
        def today(cls) -> Any:
            return _REAL_DATETIME.fromtimestamp(wall)

    class FrozenDate(_REAL_DATE, metaclass=_RealInstances):
        @classmethod
        def today(cls) -> Any:
            return _REAL_DATE.fromtimestamp(wall)

    real = _REAL_TIME
    shift_ns = int(wall * 1e9)
    return {
        # What time it is: fixed for the whole run.
        real["time"]: lambda: wall,
        real["time_ns"]: lambda: shift_ns,
        # Interval clocks keep running (timeouts depend on them), shifted by the wall clock.
        real["monotonic"]: lambda: real["monotonic"]() + wall,
        real["monotonic_ns"]: lambda: real["monotonic_ns"]() + shift_ns,
        real["perf_counter"]: lambda: real["perf_counter"]() + wall,
        real["perf_counter_ns"]: lambda: real["perf_counter_ns"]() + shift_ns,
        _REAL_DATETIME: FrozenDatetime,
        _REAL_DATE: FrozenDate,
    }


@contextlib.contextmanager
def _environment(wall: float, global_seed: int, modules: list[ModuleType]) -> Iterator[None]:
    """The wall clock reads `wall`; the global RNGs are seeded with `global_seed`."""
    fakes = _clock_fakes(wall)
    with contextlib.ExitStack() as stack:
        for name, real in _REAL_TIME.items():
            stack.enter_context(mock.patch.object(time, name, fakes[real]))
        stack.enter_context(mock.patch.object(_dt, "datetime", fakes[_REAL_DATETIME]))
        stack.enter_context(mock.patch.object(_dt, "date", fakes[_REAL_DATE]))
        for module in modules:  # `from time import time`, `from datetime import datetime`
            for attr, value in list(vars(module).items()):
                try:
                    fake = fakes.get(value)
                except Exception:  # noqa: BLE001 - unhashable or odd module attributes
                    continue
                if fake is not None:
                    stack.enter_context(mock.patch.object(module, attr, fake))
        random.seed(global_seed)
        np = _numpy()
        if np is not None:
            np.random.seed(global_seed)
        yield


def _world_modules(cls: type) -> list[ModuleType]:
    """The modules of the world's package(s): where `from time import time` binds names."""
    from trialrun.sandbox import world as world_module

    packages = set()
    for klass in cls.__mro__:
        mod = klass.__module__
        if mod in ("builtins", "abc", world_module.__name__):
            continue
        packages.add(mod.rpartition(".")[0] or mod)
    return [m for name, m in list(sys.modules.items()) if isinstance(m, ModuleType) and any(
        name == p or name.startswith(p + ".") for p in packages)]


def _numpy() -> Any:
    if "numpy" not in sys.modules and importlib.util.find_spec("numpy") is None:
        return None
    import numpy

    return numpy


@dataclass
class _GlobalRngs:
    """The global RNGs' states before the checks, put back after them."""

    py: Any
    np: Any

    @classmethod
    def save(cls) -> _GlobalRngs:
        np = _numpy()
        return cls(random.getstate(), np.random.get_state() if np is not None else None)

    def restore(self) -> None:
        random.setstate(self.py)
        if self.np is not None:
            _numpy().random.set_state(self.np)


# --- tool schemas ----------------------------------------------------------------------------
def _check_tools(tools: list[ToolSpec], cls: Any, options: Any, out: _Report,
                 with_names: bool = True) -> None:
    problems: dict[str, Status] = {}
    names = [t.name for t in tools]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems[f"tool name {dup!r} is offered {names.count(dup)} times"] = "fail"
    for t in tools:
        if not TOOL_NAME.match(t.name):
            problems[f"tool name {t.name!r}: model APIs accept only letters, digits, _ and -, "
                     "at most 64 characters"] = "fail"
        if not t.description.strip():
            problems[f"tool {t.name!r} has no description: an LLM agent is not told what it "
                     "does (write a docstring)"] = "warn"
        for p in _schema_problems(t.parameters):
            problems[f"tool {t.name!r}: {p}"] = "fail"
    if not tools:
        problems["the world offers no tools: agents can only talk and finish"] = "warn"
    known = None
    try:
        if with_names:
            known = cls.tool_names(options)
    except Exception as e:  # noqa: BLE001
        problems[f"tool_names(options) raised {_exc(e)}"] = "fail"
    if known is not None:
        missing = sorted(set(names) - set(known))
        if missing:
            problems[f"tool_names() lacks {', '.join(missing)}: scenarios cannot map these "
                     "tools to nodes (node_map is checked against tool_names)"] = "warn"
    out.problems("tool_schemas", problems,
                 "declare tools with @tool on typed methods (trialrun.sandbox.world.tool): the "
                 "schema then comes from the signature and the docstring's Args: section",
                 ok=f"{len(tools)} tool(s) with valid argument schemas and descriptions")


def _schema_problems(params: Any) -> list[str]:
    if not isinstance(params, dict) or params.get("type") != "object":
        return ["parameters must be a JSON-schema object: {\"type\": \"object\", "
                "\"properties\": {...}, \"required\": [...]}"]
    out: list[str] = []
    props = params.get("properties")
    if not isinstance(props, dict):
        return ["parameters has no `properties` object (use {} for a tool without arguments)"]
    required = params.get("required", [])
    if not isinstance(required, list):
        out.append("`required` must be a list of property names")
    else:
        out += [f"required argument {r!r} is not among the properties "
                f"({', '.join(props) or 'none'})" for r in required if r not in props]
    for name, prop in props.items():
        out += _type_problems(prop, f"argument {name!r}")
    return out


def _type_problems(s: Any, where: str) -> list[str]:
    if not isinstance(s, dict):
        return [f"{where}: its schema must be an object, got {_short(s)}"]
    if "$ref" in s:
        return []  # pydantic's $defs: a nested model, valid as it comes
    out: list[str] = []
    t = s.get("type")
    kinds = t if isinstance(t, list) else [t] if t is not None else []
    for k in kinds:
        if k not in JSON_TYPES:
            out.append(f"{where}: type {k!r} is not a JSON type (one of "
                       f"{', '.join(sorted(JSON_TYPES))})")
    for key in ("anyOf", "oneOf", "allOf"):
        for i, branch in enumerate(s.get(key) or []):
            out += _type_problems(branch, f"{where} {key}[{i}]")
    if "items" in s:
        out += _type_problems(s["items"], f"{where} items")
    if isinstance(s.get("properties"), dict):
        for name, sub in s["properties"].items():
            out += _type_problems(sub, f"{where}.{name}")
    if t is None and not any(k in s for k in ("anyOf", "oneOf", "allOf", "enum", "const")):
        out.append(f"{where} has no type: say what the agent should pass "
                   "(a type annotation on the @tool method's argument)")
    return out


def _example_args(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments for every required property: what a schema-following agent could send."""
    defs = schema.get("$defs") or {}
    props = schema.get("properties") or {}
    required = schema.get("required") or []
    if not isinstance(props, dict) or not isinstance(required, list):
        return {}
    return {n: _example(props[n], defs, 0) for n in required if n in props}


def _example(s: Any, defs: dict[str, Any], depth: int) -> Any:
    if not isinstance(s, dict) or depth > 6:
        return "x"
    ref = s.get("$ref")
    if isinstance(ref, str):
        return _example(defs.get(ref.rpartition("/")[2], {}), defs, depth + 1)
    if "const" in s:
        return s["const"]
    if s.get("enum"):
        return s["enum"][0]
    if "default" in s:
        return s["default"]
    for key in ("anyOf", "oneOf"):
        branches = [b for b in s.get(key) or [] if isinstance(b, dict) and b.get("type") != "null"]
        if branches:
            return _example(branches[0], defs, depth + 1)
    t = s.get("type")
    if isinstance(t, list):
        t = next((k for k in t if k != "null"), None)
    if t in ("integer", "number"):
        lo = s.get("minimum", s.get("exclusiveMinimum"))
        hi = s.get("maximum", s.get("exclusiveMaximum"))
        v = 1 if lo is None or lo < 1 else lo + (1 if "exclusiveMinimum" in s else 0)
        if hi is not None and v > hi:
            v = hi - (1 if "exclusiveMaximum" in s else 0)
        return int(v) if t == "integer" else float(v)
    if t == "boolean":
        return False
    if t == "array":
        return [_example(s.get("items", {}), defs, depth + 1)] * int(s.get("minItems", 0) or 0)
    if t == "object":
        return _example_args({**s, "$defs": defs})
    if t == "null":
        return None
    return "x" * max(1, int(s.get("minLength", 1) or 1))


# --- small helpers ---------------------------------------------------------------------------
def _plain(x: Any) -> Any:
    """A value as comparable plain data (models dumped, the rest through JSON)."""
    if isinstance(x, BaseModel):
        try:
            x = x.model_dump(mode="json")
        except Exception:  # noqa: BLE001 - data that is not JSON: compare its python dump
            x = x.model_dump()
    elif isinstance(x, list) and x and all(isinstance(i, BaseModel) for i in x):
        return [_plain(i) for i in x]
    try:
        return json.loads(json.dumps(x, sort_keys=True, default=repr))
    except (TypeError, ValueError, RecursionError):
        return repr(x)


def _is_json(x: Any) -> bool:
    return _json_error(x) == ""


def _json_error(x: Any) -> str:
    try:
        json.dumps(x, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        return str(e)
    return ""


def _exc(e: BaseException) -> str:
    """`KeyError: 'x' (world.py:42 in get_order)`: the exception and where it was raised."""
    tb = traceback.extract_tb(e.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno} in {tb[-1].name})" if tb else ""
    return f"{type(e).__name__}: {e}{where}"


def _short(x: Any, n: int = 80) -> str:
    return _clip(repr(x), n)


def _clip(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def _brief(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg']}"
                     for err in e.errors()[:5])
