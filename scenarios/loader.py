"""Load and validate scenario files, reporting every problem as file:line:column: field: what.

Validation runs in two passes: the schema (types, unknown keys, required fields), then the
references (world, agent and grader names, their options, tool and node names, expressions,
the world's own check of each task), each problem pointing at the line of the offending key
or value. A file's problems are reported together, in line order:

- errors, which fail validation (`ScenarioError`), and
- warnings (`Issue.severity == "warning"`), which do not: they travel with the loaded scenario
  (`LoadedScenario.warnings`) or with the error (`ScenarioError.warnings`), and the command line
  prints them before a run and in `trialrun validate`.

Code the user wrote (a world's hooks, an options validator) runs here too; whatever it raises
becomes an error at the line it concerns, naming the hook, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from trialrun.registry import did_you_mean
from trialrun.scenarios.issues import (
    Collector,
    Issue,
    ScenarioError,
    describe_exception,
    in_line_order,
    one_line,
)
from trialrun.scenarios.schema import CheckpointSpec, GraderSpec, Scenario, TaskSpec
from trialrun.scenarios.yaml_source import Loc, YamlSyntaxError, load_yaml

LIBRARY = Path(__file__).parent / "library"

@dataclass
class LoadedScenario:
    """A validated scenario plus what the runner needs: its source, its resolved tasks, and
    every plugin class it names, looked up once, with its options validated."""

    scenario: Scenario
    path: Path
    source: str  # the file's text as loaded, stored with the run for exact replay
    tasks: list[dict[str, Any]] = field(default_factory=list)
    world_cls: type = type(None)
    world_options: Any = None  # world_cls.Options instance (None if it takes none)
    agent_cls: type = type(None)
    agent_options: Any = None
    policy_cls: type = type(None)  # the checkpoint policy
    policy_options: Any = None
    human_cls: type = type(None)
    human_options: Any = None
    # Problems that do not stop a run (e.g. graders on a node no step can reach), in line order.
    warnings: list[Issue] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.scenario.name


@dataclass
class FileReport:
    """The outcome of validating one file: the scenario (None if it has errors) and every
    problem found, errors and warnings, in line order."""

    path: Path
    loaded: LoadedScenario | None
    issues: list[Issue]

    @property
    def ok(self) -> bool:
        return self.loaded is not None and not self.errors

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]


def read_scenario_text(path: Path) -> str:
    """A scenario file's text; every way it cannot be read is one ScenarioError at a place:
    missing or unreadable, too large (checked before reading), not UTF-8 (at the line and
    column of the first bad byte)."""
    from trialrun.scenarios.yaml_source import MAX_CHARS, position_of

    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_CHARS:
            raise ScenarioError([Issue(file, 1, 1, "", f"the file is {size:,} bytes; a scenario "
                                       f"may have at most {MAX_CHARS:,} (generate tasks with "
                                       "`tasks: {generate: N}` instead of listing them)")])
        data = path.read_bytes()
    except OSError as e:
        raise ScenarioError([Issue(file, None, None, "",
                                   f"cannot read: {e.strerror or e}")]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        good = data[:e.start].decode("utf-8")
        pos = position_of(good, len(good))
        raise ScenarioError([Issue(file, pos.line, pos.column, "", f"not UTF-8 text: byte "
                                   f"0x{data[e.start]:02x} {e.reason} (save the file as "
                                   "UTF-8)")]) from None


def load_scenario(path: str | Path) -> LoadedScenario:
    """Parse and validate one scenario file; raise ScenarioError listing every problem."""
    path = Path(path)
    return load_scenario_source(read_scenario_text(path), path)


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
    out = Collector(file, smap, data)
    if not isinstance(data, dict):
        if data is None and text.strip():  # only comments: no node to point at, so line 1
            raise ScenarioError([Issue(file, 1, 1, "", "the file holds only comments: a "
                                       "scenario is a mapping with keys name, world, tasks, "
                                       "agent, ...")])
        out.add((), "a scenario must be a mapping with keys name, world, tasks, agent, ...")
        raise ScenarioError(out.issues)
    loaded = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        out.add_validation((), e, Scenario)
        scenario = _partial(data, e)
    if scenario is not None:
        loaded = LoadedScenario(scenario=scenario, path=path, source=text)
        _check_references(loaded, out)
    issues = in_line_order({str(i): i for i in out.issues}.values())
    errors = [i for i in issues if i.severity == "error"]
    warnings = [i for i in issues if i.severity == "warning"]
    if errors or loaded is None:
        raise ScenarioError(errors, warnings)
    loaded.warnings = warnings
    return loaded


def _partial(data: dict[str, Any], exc: ValidationError) -> Scenario | None:
    """The scenario without its broken optional sections, so that the reference checks can
    still report the problems of the rest of the file; None when a required one is broken."""
    broken = {err["loc"][0] for err in exc.errors() if err["loc"]}
    if any(k in broken for k, f in Scenario.model_fields.items() if f.is_required()):
        return None
    if any(not err["loc"] for err in exc.errors()):
        return None
    try:
        return Scenario.model_validate({k: v for k, v in data.items() if k not in broken})
    except ValidationError:
        return None


def _hook_of(exc: BaseException, world_cls: type, default: str) -> str:
    """The innermost world hook (constructor, reset, close, check_task, ...) that was running
    when `exc` was raised."""
    hooks = {"__init__": "the constructor", "reset": "reset()", "close": "close()",
             "check_task": "check_task()", "generate_tasks": "generate_tasks()",
             "tool_names": "tool_names()", "state": "state()", "outcome": "outcome()"}
    found = default
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        name = frame.f_code.co_name
        owner = frame.f_locals.get("self", frame.f_locals.get("cls"))
        if name in hooks and (owner is world_cls or isinstance(owner, world_cls)
                              or (isinstance(owner, type) and issubclass(owner, world_cls))):
            found = hooks[name]
        tb = tb.tb_next
    return found


def _world_raised(world_type: str, world_cls: type, exc: BaseException, default: str,
                  doing: str) -> str:
    return (f"world {world_type!r} raised {describe_exception(exc)} in "
            f"{_hook_of(exc, world_cls, default)} {doing}")


def _resolve(kind: str, name: str, loc: Loc, out: Collector) -> type | None:
    from trialrun import registry

    module = name.partition(":")[0] if ":" in name else None
    try:
        return registry.resolve(kind, name)  # type: ignore[arg-type]
    except LookupError as e:
        message = str(e)
        if message.startswith(f"{kind} {name!r}: cannot import"):
            if module in out.unimportable:
                return None  # one error per module that cannot be imported (the first)
            out.unimportable.add(module)
            message = "unknown " + message
        elif message.startswith(f"{kind} {name!r}: module "):
            message = "unknown " + message
        out.add(loc, message)
    except Exception as e:  # noqa: BLE001 - a plugin's code that fails while being looked up
        out.add(loc, f"{kind} {name!r}: looking it up raised {describe_exception(e)}")
    return None


def _validate_options(model: type[BaseModel] | None, options: dict[str, Any], loc: Loc,
                      out: Collector, *, top_keys: Iterable[str] = (), owner: str,
                      context: dict[str, Any] | None = None) -> tuple[bool, Any]:
    """Validate a plugin's options; (ok, the Options instance or None)."""
    if model is None:
        if options:
            for key in options:
                out.add((*loc, key), f"unknown key; {owner} takes no options")
            return False, None
        return True, None
    try:
        return True, model.model_validate(options, context=context)
    except ValidationError as e:
        out.add_validation(loc, e, model, top_keys, owner)
    except Exception as e:  # noqa: BLE001 - a validator the user wrote that raised
        out.add(loc, f"{owner}: validating its options raised {describe_exception(e)}")
    return False, None


def _check_references(loaded: LoadedScenario, out: Collector) -> None:
    sc = loaded.scenario
    world_cls = _resolve("world", sc.world.type, ("world", "type"), out)
    world_options = None
    world_ok = False
    tool_names: set[str] | None = None
    if world_cls is not None:
        loaded.world_cls = world_cls
        options = sc.world.options
        stray_sandbox = sc.world.sandbox is not None and "sandbox" not in getattr(
            world_cls.Options, "model_fields", {})
        if stray_sandbox:
            out.add(("world", "sandbox"), f"world {sc.world.type!r} runs in-process: it takes "
                    "no sandbox")
            options = dict(sc.world.model_extra or {})
        world_ok, world_options = _validate_options(
            world_cls.Options, options, ("world",), out, top_keys=("type",),
            owner=f"world {sc.world.type!r}")
        world_ok = world_ok and not stray_sandbox
        loaded.world_options = world_options
        loaded.tasks = _resolve_tasks(sc, world_cls, world_options, world_ok, out)
        if world_ok:
            try:
                names = world_cls.tool_names(world_options)
                tool_names = set(names) if names is not None else None
            except Exception as e:  # noqa: BLE001 - the world's own code
                out.add(("world",), _world_raised(sc.world.type, world_cls, e, "tool_names()",
                                                  "while listing its tools"))

    agent_cls = _resolve("agent", sc.agent.type, ("agent", "type"), out)
    if agent_cls is not None:
        loaded.agent_cls = agent_cls
        _, loaded.agent_options = _validate_options(
            agent_cls.Options, sc.agent.params, ("agent", "params"), out,
            owner=f"agent {sc.agent.type!r}", context={"world": world_cls})

    from trialrun.graders.base import outcome_keys

    context: dict[str, Any] = {
        "world": world_cls, "world_options": world_options, "tool_names": tool_names,
        "outcome_keys": outcome_keys(world_cls) if world_ok else None}
    agent_nodes = getattr(agent_cls, "nodes", None) if agent_cls is not None else None
    for node, spec in sc.nodes.items():
        node_ctx = {**context, "scope": "node", "node": node,
                    "node_tools": _node_tools(node, sc.node_map, tool_names, agent_nodes)}
        for i, g in enumerate(spec.graders):
            _check_grader(g, ("nodes", node, "graders", i), node_ctx, out)
    for i, g in enumerate(sc.graders):
        _check_grader(g, ("graders", i), {**context, "scope": "outcome", "node": None}, out)
    if tool_names is not None:
        for tool in sc.node_map:
            if tool not in tool_names:
                out.add(("node_map", tool), f"unknown tool {tool!r}"
                        f"{did_you_mean(str(tool), tool_names)} (the world offers: "
                        f"{', '.join(sorted(tool_names))})")
        agent_map = getattr(loaded.agent_options, "node_map", None)  # NodeMapOptions
        for tool in agent_map or {}:
            if tool not in tool_names and tool not in ("ask_human", "finish"):
                known = sorted(tool_names | {"ask_human", "finish"})
                out.add(("agent", "params", "node_map", tool), f"unknown tool {tool!r}"
                        f"{did_you_mean(str(tool), known)} (the keys are the world's tools, "
                        f"ask_human and finish: {', '.join(known)})")
    _check_checkpoints(loaded, out)
    _check_reachable(loaded, agent_nodes, tool_names, out)


def _node_tools(node: str, node_map: dict[str, str], tool_names: set[str] | None,
                agent_nodes: frozenset[str] | None) -> frozenset[str] | None:
    """The tools whose calls land at `node`, when that can be known: the agent does not name
    this node itself, so it is reached only through `node_map` or by a tool's own name."""
    if tool_names is None or agent_nodes is None or node in agent_nodes:
        return None
    tools = {t for t, n in node_map.items() if n == node}
    if node in tool_names and node not in node_map:
        tools.add(node)
    return frozenset(tools)


def _check_reachable(loaded: LoadedScenario, agent_nodes: frozenset[str] | None,
                     tool_names: set[str] | None, out: Collector) -> None:
    """Warn about nodes no step can reach: the agent's nodes, the nodes `node_map` names, and
    the tools called without a mapping (their node is the tool's name). Unknown agent nodes
    or tool names: no warning."""
    if tool_names is None:
        return
    sc = loaded.scenario
    if agent_nodes is not None:
        reachable = set(agent_nodes) | set(sc.node_map.values()) | \
            {t for t in tool_names if t not in sc.node_map}
    else:
        reachable = _node_map_agent_nodes(loaded.agent_options, sc.node_map, tool_names)
        if reachable is None:
            return
    listed = ", ".join(sorted(reachable))
    for node in sc.nodes:
        if node not in reachable:
            out.warn(("nodes", node), f"no step reaches node {node!r}, so its graders "
                     f"never run{did_you_mean(node, reachable)} (steps reach: {listed})")
    cp_nodes = getattr(loaded.policy_options, "nodes", None)
    if isinstance(cp_nodes, list | tuple | set | frozenset):
        for i, node in enumerate(cp_nodes):
            if isinstance(node, str) and node not in reachable:
                out.warn(("checkpoints", "nodes", i), f"no step reaches node {node!r}, so "
                         f"it is never reviewed{did_you_mean(node, reachable)} (steps reach: "
                         f"{listed})")


def _node_map_agent_nodes(options: Any, node_map: dict[str, str], tool_names: set[str]
                          ) -> set[str] | None:
    """Every node the LLM agent (`openai`, which never names its nodes) can reach, by the
    one rule that names them (NodeMapOptions.node_of): its own node_map, else the scenario's,
    else the tool's name; its reply node; ask_human and finish. None for other agents: a
    process, a graph or a program may name nodes of its own, unknown here."""
    import sys

    llm = sys.modules.get("trialrun.agents.openai_agent")  # loaded if the scenario uses it
    if llm is None or not isinstance(options, llm.OpenAIOptions):
        return None
    return ({options.node_of("tool_call", t) or node_map.get(t, t) for t in tool_names}
            | {options.node_of(kind) for kind in ("message", "ask_human", "finish")})


def _check_checkpoints(loaded: LoadedScenario, out: Collector) -> None:
    cp = loaded.scenario.checkpoints
    common = list(CheckpointSpec.model_fields)
    for kind, name, options, loc, attr, type_key in (
            ("checkpoint", cp.policy, cp.options, ("checkpoints",), "policy", "policy"),
            ("human", cp.human.type, cp.human.options, ("checkpoints", "human"), "human",
             "type")):
        cls = _resolve(kind, name, (*loc, type_key), out)
        if cls is None:
            continue
        owner = f"checkpoint policy {name!r}" if kind == "checkpoint" else f"human {name!r}"
        if kind == "checkpoint":
            options = _options_of_other_policies(cls, name, options, common, out)
        ok, opts = _validate_options(
            getattr(cls, "Options", None), options, loc, out, owner=owner,
            top_keys=common if kind == "checkpoint" else ("type",))
        if not ok:
            continue
        setattr(loaded, f"{attr}_cls", cls)
        setattr(loaded, f"{attr}_options", opts)


def _options_of_other_policies(cls: type, name: str, options: dict[str, Any],
                               common: list[str], out: Collector) -> dict[str, Any]:
    """`policy: never` with `nodes: [...]`: say which policy takes that option, and leave it
    out of the options validated."""
    from trialrun import registry

    takes = set(getattr(getattr(cls, "Options", None), "model_fields", {})) | set(common)
    left = {}
    for key, value in options.items():
        other = None
        if key not in takes and not did_you_mean(str(key), takes):
            for policy in registry.names("checkpoint"):
                try:
                    model = getattr(registry.resolve("checkpoint", policy), "Options", None)
                except Exception:  # noqa: BLE001, S112 - a broken plugin says so elsewhere
                    continue
                if model is not None and key in model.model_fields:
                    other = policy
                    break
        if other is None:
            left[key] = value
        else:
            out.add(("checkpoints", key), f"unknown key; checkpoint policy {name!r} takes no "
                    f"option {key!r} (policy {other!r} does)")
    return left


def _check_grader(g: GraderSpec, loc: Loc, context: dict[str, Any], out: Collector) -> None:
    scope = context["scope"]
    cls = _resolve("grader", g.type, (*loc, "type"), out)
    if cls is None:
        return
    if scope not in cls.scopes:
        where = "at a node (under nodes:)" if "node" in cls.scopes else \
            "at the end of the episode (under graders:)"
        out.add((*loc, "type"), f"grader {g.type!r} cannot grade {scope}s; it grades "
                f"{' and '.join(sorted(cls.scopes))}s: put it {where}")
        return
    _validate_options(cls.Options, g.options, loc, out, top_keys=("type", "name"),
                      owner=f"grader {g.type!r}", context=context)


def _resolve_tasks(sc: Scenario, world_cls: Any, world_options: Any, world_ok: bool,
                   out: Collector) -> list[dict[str, Any]]:
    listed = isinstance(sc.tasks, list)
    if listed:
        specs = sc.tasks
    else:
        specs = _generate(sc, world_cls, out) if world_ok else None
        if specs is None:
            return []
    tasks = []
    top = list(TaskSpec.model_fields)
    for i, spec in enumerate(specs):
        fields_ok = True
        if listed:
            fields_ok, _ = _validate_options(
                world_cls.Task, dict(spec.model_extra or {}), ("tasks", i), out,
                top_keys=top, owner=f"world {sc.world.type!r}'s task")
        task = spec.as_dict()
        if listed and fields_ok and world_ok:
            try:
                problems = world_cls.check_task(world_options, task)
            except Exception as e:  # noqa: BLE001 - the world's own code, on the user's task
                out.add(("tasks", i), _world_raised(sc.world.type, world_cls, e,
                                                    "check_task()", "while checking this task"))
                problems = []
            if isinstance(problems, str):
                problems = [problems]
            for problem in problems or []:
                loc, message = out.relocate(("tasks", i), str(problem))
                out.add(loc, message)
        tasks.append(task)
    return tasks


def _generate(sc: Scenario, world_cls: Any, out: Collector) -> list[TaskSpec] | None:
    import inspect

    gen = sc.tasks
    assert not isinstance(gen, list)
    try:
        sig = inspect.signature(world_cls.generate_tasks)
        params = sig.parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            takes = [n for n, p in params.items() if n not in ("n", "seed", "difficulty")
                     and p.kind is not p.VAR_POSITIONAL]
            bad = [k for k in gen.params if k not in takes]
            for k in bad:
                out.add(("tasks", "params", k), f"unknown key{did_you_mean(str(k), takes)}"
                        if did_you_mean(str(k), takes) else
                        f"unknown key; world {sc.world.type!r} generates tasks with: "
                        f"{', '.join(takes) or 'no params'}")
            if bad:
                return None
    except (TypeError, ValueError):  # no signature to read: let the call say
        pass
    try:
        raw = world_cls.generate_tasks(gen.generate, gen.seed, gen.difficulty, **gen.params)
    except NotImplementedError as e:
        out.add(("tasks", "generate"), str(e) or f"world {sc.world.type!r} does not generate "
                "tasks; list them instead")
        return None
    except ValueError as e:
        where = ("tasks", "params") if gen.params else ("tasks", "generate")
        out.add(where, f"cannot generate tasks: {e}")
        return None
    except Exception as e:  # noqa: BLE001 - the world's own code
        out.add(("tasks", "generate"), _world_raised(sc.world.type, world_cls, e,
                                                     "generate_tasks()", "while generating tasks"))
        return None
    try:
        return [TaskSpec.model_validate(t) for t in raw]
    except (ValidationError, TypeError) as e:  # a world bug, but say so clearly
        out.add(("tasks", "generate"), f"world {sc.world.type!r} generated an invalid task: "
                f"{one_line(str(e))}")
        return None


# --- files, folders and suites ----------------------------------------------------------------
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


def check_targets(targets: list[str]) -> list[FileReport]:
    """Validate every file named (files, folders, suites): one report per file, in order.
    Never raises for a problem in a file; a target that names nothing is a report too."""
    reports: list[FileReport] = []
    names: dict[str, Path] = {}
    for target in targets:
        try:
            files = scenario_files(target)
        except FileNotFoundError as e:
            reports.append(FileReport(Path(target), None, [
                Issue(target, None, None, "", str(e).removeprefix(f"{target}: "))]))
            continue
        for f in files:
            try:
                ls = load_scenario(f)
            except ScenarioError as e:
                reports.append(FileReport(f, None, in_line_order([*e.issues, *e.warnings])))
                continue
            except Exception as e:  # noqa: BLE001 - a bug: still one line, still per file
                reports.append(FileReport(f, None, [Issue(
                    str(f), None, None, "", f"trialrun could not validate this file: "
                    f"{type(e).__name__}: {e} (a bug in trialrun or a plugin; please report it)")]))
                continue
            issues = list(ls.warnings)
            if ls.name in names and names[ls.name] != ls.path:
                pos = _name_position(ls)
                issues.append(Issue(str(ls.path), pos[0], pos[1], "name",
                                    f"scenario name {ls.name!r} is also used by "
                                    f"{names[ls.name]}"))
                reports.append(FileReport(f, None, in_line_order(issues)))
                continue
            names[ls.name] = ls.path
            reports.append(FileReport(f, ls, issues))
    return reports


def _name_position(ls: LoadedScenario) -> tuple[int | None, int | None]:
    try:
        _, smap = load_yaml(ls.source)
    except YamlSyntaxError:
        return None, None
    pos = smap.find(("name",))
    return (pos.line, pos.column) if pos else (None, None)


def load_targets(targets: list[str]) -> list[LoadedScenario]:
    """Load every scenario named; collect the errors of all files before raising. Warnings
    travel with each loaded scenario (`LoadedScenario.warnings`)."""
    reports = check_targets(targets)
    errors = [i for r in reports for i in r.errors]
    if errors:
        raise ScenarioError(errors, [i for r in reports for i in r.warnings])
    return [r.loaded for r in reports if r.loaded is not None]
