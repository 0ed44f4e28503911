"""The task to run the world on and the world's options (the `tasks` check): from a
scenario file, or from the world's own `generate_tasks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError

from trialrun.check_world.environment import _world_modules
from trialrun.check_world.report import Status, _Report
from trialrun.check_world.util import _brief, _exc, _plain

GENERATED = 3  # tasks asked of generate_tasks


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
