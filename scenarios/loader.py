"""Load and validate scenario files, reporting every problem as file:line:column: field: what.

Validation runs in two passes: the schema (types, unknown keys, required fields), then the
references (world, agent and grader names, their options, tool and node names, expressions),
each error pointing at the line of the offending key or value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from trialrun.expr import ExprError
from trialrun.scenarios.schema import GraderSpec, Scenario, TaskSpec
from trialrun.scenarios.yaml_source import Loc, SourceMap, YamlSyntaxError, load_yaml

LIBRARY = Path(__file__).parent / "library"


@dataclass
class Issue:
    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        return f"{where}: {self.path + ': ' if self.path else ''}{self.message}"


class ScenarioError(Exception):
    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


@dataclass
class LoadedScenario:
    """A validated scenario plus what the runner needs: its source and resolved tasks."""

    scenario: Scenario
    path: Path
    source: str  # the file's text as loaded, stored with the run for exact replay
    tasks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.scenario.name


def _fmt_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_message(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required field is missing"
    msg = err["msg"]
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{msg} (got {err.get('input')!r})"
    return msg.removeprefix("Value error, ")


class _Collector:
    def __init__(self, file: str, smap: SourceMap) -> None:
        self.file = file
        self.smap = smap
        self.issues: list[Issue] = []

    def add(self, loc: Loc, message: str, column_offset: int | None = None) -> None:
        pos = self.smap.find(loc)
        col = pos.column if pos else None
        self.issues.append(
            Issue(self.file, pos.line if pos else None, col, _fmt_loc(loc), message)
        )

    def add_validation(self, prefix: Loc, exc: ValidationError, hint: str = "") -> None:
        for err in exc.errors():
            loc = _clean_loc(err["loc"])
            message = _pydantic_message(err)
            if err["type"] == "extra_forbidden" and hint:
                message += f"; {hint}"
            self.add((*prefix, *loc), message)


def _clean_loc(loc: tuple) -> Loc:
    # pydantic inserts union-member names ("list[TaskSpec]", "int") into locations.
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in (
        "int", "GenerateTasks", "function-after"))))


def _allowed_keys(model: type[BaseModel]) -> str:
    return "expected one of: " + ", ".join(model.model_fields)


def load_scenario(path: str | Path) -> LoadedScenario:
    """Parse and validate one scenario file; raise ScenarioError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError([Issue(str(path), None, None, "", f"cannot read: {e.strerror}")]) \
            from None
    return load_scenario_source(text, path)


def load_scenario_source(text: str, path: str | Path) -> LoadedScenario:
    """Validate scenario YAML text; `path` names it in errors (a run stores the text)."""
    path = Path(path)
    file = str(path)
    try:
        data, smap = load_yaml(text)
    except YamlSyntaxError as e:
        p = e.position
        raise ScenarioError(
            [Issue(file, p.line if p else None, p.column if p else None, "", str(e))]
        ) from None
    out = _Collector(file, smap)
    if not isinstance(data, dict):
        out.add((), "a scenario must be a mapping with keys name, world, tasks, agent, ...")
        raise ScenarioError(out.issues)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        out.add_validation((), e)
        raise ScenarioError(out.issues) from None
    tasks = _check_references(scenario, data, out)
    if out.issues:
        raise ScenarioError(out.issues)
    return LoadedScenario(scenario=scenario, path=path, source=text, tasks=tasks)


def _check_references(sc: Scenario, data: dict, out: _Collector) -> list[dict[str, Any]]:
    from trialrun.agents.registry import agent_class
    from trialrun.graders.base import grader_class
    from trialrun.sandbox.world import world_class

    tasks: list[dict[str, Any]] = []
    world_cls = None
    try:
        world_cls = world_class(sc.world.type)
    except LookupError as e:
        out.add(("world", "type"), str(e))
    if world_cls is not None:
        if world_cls.Config is not None:
            try:
                world_cls.Config.model_validate(sc.world.model_extra or {})
            except ValidationError as e:
                out.add_validation(("world",), e, _allowed_keys(world_cls.Config))
        if sc.world.sandbox is not None:
            _check_sandbox(sc.world.sandbox, out)
        tasks = _resolve_tasks(sc, world_cls, out)

    tool_names = world_cls.tool_names(sc.world.options) if world_cls else None
    nodes = set(sc.nodes)
    try:
        agent_cls = agent_class(sc.agent.type)
        try:
            agent_cls.validate_params(sc.agent.params, nodes or None)
        except (ValueError, ValidationError) as e:
            msg = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            out.add(("agent", "params"), msg)
    except LookupError as e:
        out.add(("agent", "type"), str(e))

    for node, spec in sc.nodes.items():
        for i, g in enumerate(spec.graders):
            _check_grader(g, ("nodes", node, "graders", i), "node", out, grader_class)
    for i, g in enumerate(sc.graders):
        _check_grader(g, ("graders", i), "outcome", out, grader_class)
    if tool_names is not None:
        for tool in sc.node_map:
            if tool not in tool_names:
                out.add(("node_map", tool), f"unknown tool {tool!r}; the {sc.world.type} world "
                        f"offers: {', '.join(sorted(tool_names))}")
    if sc.checkpoints.policy == "nodes" and not sc.checkpoints.nodes:
        out.add(("checkpoints", "nodes"), "policy 'nodes' needs a list of nodes to review")
    return tasks


def _check_sandbox(spec: dict[str, Any], out: _Collector) -> None:
    try:
        from trialrun.sandbox.backend import SandboxSpec
    except ImportError:  # backend not available: nothing more to check here
        return
    try:
        SandboxSpec.model_validate(spec)
    except ValidationError as e:
        out.add_validation(("world", "sandbox"), e)


def _check_grader(g: GraderSpec, loc: Loc, scope: str, out: _Collector, grader_class) -> None:
    try:
        cls = grader_class(g.type)
    except LookupError as e:
        out.add((*loc, "type"), str(e))
        return
    if scope not in cls.scopes:
        out.add((*loc, "type"), f"grader {g.type!r} cannot grade {scope}s; it grades "
                f"{' and '.join(sorted(cls.scopes))}s")
        return
    try:
        cls.Options.model_validate(g.options)
    except ValidationError as e:
        for err in e.errors():
            sub = _clean_loc(err["loc"])
            ctx_err = err.get("ctx", {}).get("error")
            if isinstance(ctx_err, ExprError):
                out.add((*loc, *sub), f"expression {ctx_err}")
            else:
                msg = _pydantic_message(err)
                if err["type"] == "extra_forbidden":
                    msg += "; " + _allowed_keys(cls.Options)
                out.add((*loc, *sub), msg)


def _resolve_tasks(sc: Scenario, world_cls: Any, out: _Collector) -> list[dict[str, Any]]:
    if isinstance(sc.tasks, list):
        specs = sc.tasks
    else:
        gen = sc.tasks
        try:
            raw = world_cls.generate_tasks(gen.generate, gen.seed, gen.difficulty, **gen.params)
        except NotImplementedError as e:
            out.add(("tasks", "generate"), str(e))
            return []
        except (TypeError, ValueError) as e:
            out.add(("tasks", "params"), f"cannot generate tasks: {e}")
            return []
        try:
            specs = [TaskSpec.model_validate(t) for t in raw]
        except ValidationError as e:  # a world bug, but say so clearly
            out.add(("tasks",), f"world {sc.world.type!r} generated an invalid task: {e}")
            return []
    tasks = []
    world_ok = not out.issues  # the world's options validated: it can be built
    for i, spec in enumerate(specs):
        fields_ok = True
        if world_cls.Task is not None and isinstance(sc.tasks, list):
            try:
                world_cls.Task.model_validate(spec.model_extra or {})
            except ValidationError as e:
                out.add_validation(("tasks", i), e, _allowed_keys(world_cls.Task))
                fields_ok = False
        task = spec.as_dict()
        if isinstance(sc.tasks, list) and fields_ok and world_ok:
            for problem in world_cls.check_task(sc.world.options, task):
                out.add(("tasks", i), problem)
        tasks.append(task)
    return tasks


def scenario_files(target: str) -> list[Path]:
    """A file, a folder of scenarios, or the name of a built-in suite (`retail`)."""
    p = Path(target)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
        if not files:
            raise FileNotFoundError(f"{target}: no *.yaml scenario files in this folder")
        return files
    suite = LIBRARY / target
    if suite.is_dir():
        return sorted(suite.glob("*.yaml"))
    single = LIBRARY / f"{target}.yaml"
    if "/" in target and single.is_file():
        return [single]
    suites = ", ".join(sorted(d.name for d in LIBRARY.iterdir() if d.is_dir()))
    raise FileNotFoundError(
        f"{target}: no such file or folder, and not a built-in suite (built-in: {suites})"
    )


def load_targets(targets: list[str]) -> list[LoadedScenario]:
    """Load every scenario named; collect the errors of all files before raising."""
    loaded: list[LoadedScenario] = []
    issues: list[Issue] = []
    for target in targets:
        try:
            files = scenario_files(target)
        except FileNotFoundError as e:
            issues.append(Issue(target, None, None, "", str(e).removeprefix(f"{target}: ")))
            continue
        for f in files:
            try:
                loaded.append(load_scenario(f))
            except ScenarioError as e:
                issues.extend(e.issues)
    if issues:
        raise ScenarioError(issues)
    names: dict[str, Path] = {}
    for ls in loaded:
        if ls.name in names and names[ls.name] != ls.path:
            raise ScenarioError([Issue(str(ls.path), None, None, "name",
                                       f"scenario name {ls.name!r} also used by {names[ls.name]}")])
        names[ls.name] = ls.path
    return loaded
