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

import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from trialrun.errors import InvalidScenario
from trialrun.expr import ExprError
from trialrun.registry import did_you_mean
from trialrun.scenarios.schema import CheckpointSpec, GraderSpec, Scenario, TaskSpec
from trialrun.scenarios.yaml_source import Loc, SourceMap, YamlSyntaxError, load_yaml

LIBRARY = Path(__file__).parent / "library"

Severity = Literal["error", "warning"]


@dataclass
class Issue:
    """One problem: where (file, line, column, field path) and what."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    severity: Severity = "error"

    def __post_init__(self) -> None:
        self.message = _one_line(self.message)

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        label = "warning: " if self.severity == "warning" else ""
        return f"{where}: {self.path + ': ' if self.path else ''}{label}{self.message}"

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.line or 0, self.column or 0)


def in_line_order(issues: Iterable[Issue]) -> list[Issue]:
    """Issues sorted by line and column (file-level ones first); stable for equal places."""
    return sorted(issues, key=lambda i: i.sort_key)


class ScenarioError(InvalidScenario):
    """Every error found in one or more scenario files, each with its place. `warnings` holds
    the warnings of the same files (they do not fail validation; the CLI prints them too)."""

    def __init__(self, issues: list[Issue], warnings: list[Issue] | None = None) -> None:
        self.issues = issues
        self.warnings = list(warnings or [])
        super().__init__("\n".join(str(i) for i in issues))


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


# --- formatting ----------------------------------------------------------------------------
def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", str(text)).strip()


def _fmt_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_PATH_PREFIX = re.compile(r"^([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*|\[\d+\])*): (.+)$", re.S)


def _parse_path(text: str) -> Loc:
    return tuple(int(p[1:-1]) if p.startswith("[") else p
                 for p in re.findall(r"\[\d+\]|[^.\[\]]+", text))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe_exception(e: BaseException) -> str:
    return _short(e, 160) if str(e) else type(e).__name__


# --- where a value sits in the models --------------------------------------------------------
def _members(tp: Any) -> list[Any]:
    """The alternatives of a union (or just the type), Annotated unwrapped."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(tp) for m in _members(a)]
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _model_at(model: type[BaseModel] | None, loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `loc` under `model`, if any."""
    tp: Any = model
    for part in loc:
        nxt = None
        for m in _members(tp):
            origin = typing.get_origin(m)
            if isinstance(part, int) and origin in (list, tuple, set, frozenset):
                nxt = typing.get_args(m)[0] if typing.get_args(m) else None
            elif isinstance(part, str) and _is_model(m) and part in m.model_fields:
                nxt = m.model_fields[part].annotation
            elif origin is dict and typing.get_args(m):
                nxt = typing.get_args(m)[1]
            if nxt is not None:
                break
        if nxt is None:
            return None
        tp = nxt
    return next((m for m in _members(tp) if _is_model(m)), None)


def _model_named(title: str) -> type[BaseModel] | None:
    """The one loaded pydantic model class called `title` (a nested ValidationError names
    its model only by title), or None when there is none or several."""
    found: list[type[BaseModel]] = []
    stack = list(BaseModel.__subclasses__())
    seen: set[type] = set()
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        if cls.__name__ == title:
            found.append(cls)
        stack.extend(cls.__subclasses__())
    return found[0] if len(found) == 1 else None


def _kin_fields(model: type[BaseModel]) -> set[str]:
    """Every field of every model that shares `model`'s nearest strict base (e.g. all agent
    options): the candidates for "did you mean" when the model that refused a key is not
    known."""
    base = next((b for b in model.__mro__[1:] if _is_model(b) and b is not BaseModel
                 and b.model_config.get("extra") == "forbid"), None)
    if base is None:
        return set()
    out: set[str] = set()
    stack, seen = [base], set()
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.add(cls)
            out |= set(cls.model_fields)
            stack.extend(cls.__subclasses__())
    return out


def _data_at(data: Any, loc: Loc) -> Any:
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


# --- turning pydantic errors into issues ----------------------------------------------------
@dataclass
class _Err:
    loc: Loc  # cleaned: only real keys and indexes
    tags: list[tuple[Loc, str]]  # union alternatives passed through: (where, which)
    kind: str
    msg: str
    input: Any
    ctx: dict[str, Any]


def _split_loc(raw: tuple, data: Any, kind: str) -> tuple[Loc, list[tuple[Loc, str]]]:
    """Separate pydantic's union-member tags ("list[TaskSpec]", "int", "function-after[..]")
    from the keys and indexes of the document, by walking the data."""
    loc: list[Any] = []
    tags: list[tuple[Loc, str]] = []
    cur = data
    for i, part in enumerate(raw):
        last = i == len(raw) - 1
        if isinstance(cur, dict) and part in cur:
            loc.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            loc.append(part)
            cur = cur[part]
        elif last and kind in ("missing", "extra_forbidden"):
            loc.append(part)
        elif isinstance(part, str):
            tags.append((tuple(loc), part))
        else:
            loc.append(part)
            cur = None
    return tuple(loc), tags


def _pick_union_branches(errs: list[_Err], describe: Callable[[Loc], str | None]) -> list[_Err]:
    """Where a value failed every alternative of a union, keep the alternatives that got past
    the value's shape (a dict for GenerateTasks, a list for tasks); if none did, say in one
    error what was expected."""
    by_place: dict[Loc, dict[str, list[_Err]]] = {}
    for e in errs:
        if e.tags:
            where, tag = e.tags[0]
            by_place.setdefault(where, {}).setdefault(tag, []).append(e)
    out = [e for e in errs if not e.tags]
    for where, branches in by_place.items():
        if len(branches) < 2:
            out.extend(e for es in branches.values() for e in es)
            continue
        deep = {t: es for t, es in branches.items() if any(e.loc != where for e in es)}
        if deep:
            for es in deep.values():
                out.extend(e for e in es if e.loc != where or len(deep) == 1)
            continue
        first = next(iter(branches.values()))[0]
        wanted = _expected_from(describe(where)) or " or ".join(
            es[0].msg.removeprefix("Input should be ") for es in branches.values())
        out.append(_Err(where, [], "union", f"expected {wanted}", first.input, {}))
    return out


def _expected_from(description: str | None) -> str | None:
    """What a field's description says it takes: "where it runs: docker or local" -> "docker
    or local"."""
    if not description:
        return None
    head, sep, tail = description.partition(": ")
    return tail if sep and "{" not in head else description


class _Collector:
    def __init__(self, file: str, smap: SourceMap, data: Any) -> None:
        self.file = file
        self.smap = smap
        self.data = data
        self.issues: list[Issue] = []
        self.unimportable: set[str | None] = set()  # modules of plugins that failed to import

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    def add(self, loc: Loc, message: str, severity: Severity = "error") -> None:
        pos = self.smap.find(loc)
        self.issues.append(Issue(self.file, pos.line if pos else None,
                                 pos.column if pos else None, _fmt_loc(loc), message, severity))

    def warn(self, loc: Loc, message: str) -> None:
        self.add(loc, message, "warning")

    def exists(self, loc: Loc) -> bool:
        return loc in self.smap.keys or loc in self.smap.values

    def relocate(self, loc: Loc, message: str, force: bool = False) -> tuple[Loc, str]:
        """A validator that says where (`"error_rates.rsolve: unknown node"`) is believed:
        the problem moves to that path (when it is in the file, or `force`); then, if the
        message names a key under that path that is in the file ('rsolve'), to that key."""
        m = _PATH_PREFIX.match(message)
        if m:
            sub = _parse_path(m.group(1))
            for cand in ((*loc, *sub), (*loc[:-1], *sub) if loc and sub[0] == loc[-1] else None):
                if cand is not None and (force or self.exists(cand)):
                    loc, message = cand, m.group(2)
                    break
        q = re.search(r"'([^']+)'", message)
        if q and (*loc, q.group(1)) in self.smap.keys:
            loc = (*loc, q.group(1))
        return loc, message

    def add_validation(self, prefix: Loc, exc: ValidationError, model: type[BaseModel] | None
                       = None, top_keys: Iterable[str] = (), owner: str = "") -> None:
        """Report a pydantic error at `prefix` in the document. `model` is what validated
        the value there (for "did you mean"), `top_keys` the keys also allowed at its top level
        (e.g. `type`), `owner` who takes these options ("checkpoint policy 'nodes'")."""
        data = _data_at(self.data, prefix)
        top_keys = list(top_keys)
        errs = []
        for err in exc.errors():
            loc, tags = _split_loc(err["loc"], data, err["type"])
            errs.append(_Err(loc, tags, err["type"], err["msg"], err.get("input"),
                             dict(err.get("ctx") or {})))

        def describe(loc: Loc) -> str | None:
            parent = _model_at(model, loc[:-1]) if loc else None
            f = parent.model_fields.get(loc[-1]) if parent and isinstance(loc[-1], str) else None
            return f.description if f else None

        errs = _pick_union_branches(errs, describe)
        errs = self._merge_typos(errs, data, model, top_keys)
        for e in errs:
            self._add_error(prefix, e, data, model, top_keys, owner)

    def _allowed(self, model: type[BaseModel] | None, parent: Loc,
                 top_keys: list[str]) -> list[str] | None:
        sub = _model_at(model, parent)
        if sub is None:
            return None
        keys = list(sub.model_fields)
        return keys + [k for k in top_keys if k not in keys] if not parent else keys

    def _merge_typos(self, errs: list[_Err], data: Any, model: type[BaseModel] | None,
                     top_keys: list[str]) -> list[_Err]:
        """`nmae:` gives "unknown key 'nmae'" and "missing 'name'": one error, at `nmae`,
        saying "did you mean 'name'?". A model that allows extra keys reports only the missing
        field; the near-miss key in the data is found the same way."""
        extras = {e.loc: e for e in errs if e.kind == "extra_forbidden" and e.loc}
        out = []
        for e in errs:
            if e.kind != "missing" or not e.loc:
                out.append(e)
                continue
            parent, name = e.loc[:-1], e.loc[-1]
            here = _data_at(data, parent)
            allowed = set(self._allowed(model, parent, top_keys) or ())
            near = [loc for loc in extras if loc[:-1] == parent
                    and did_you_mean(str(loc[-1]), [str(name)])]
            if near:
                continue  # the unknown key's error says "did you mean" this one
            if isinstance(here, dict):
                typo = [k for k in here if k not in allowed and isinstance(k, str)
                        and did_you_mean(k, [str(name)])]
                if typo:
                    out.append(_Err((*parent, typo[0]), [], "typo",
                                    f"unknown key; did you mean {name!r}? ({name!r} is "
                                    "required)", None, {}))
                    continue
            out.append(e)
        return out

    def _add_error(self, prefix: Loc, e: _Err, data: Any, model: type[BaseModel] | None,
                   top_keys: list[str], owner: str) -> None:
        loc = (*prefix, *e.loc)
        kind = e.kind
        ctx_err = e.ctx.get("error")
        if isinstance(ctx_err, ExprError):
            self.add(loc, f"expression {ctx_err}")
            return
        if isinstance(ctx_err, ValidationError):
            # A validator that validated something else (e.g. a wrapped agent's options).
            inner = _model_named(ctx_err.title)
            self.add_validation(loc, ctx_err, inner)
            return
        if kind == "extra_forbidden":
            allowed = self._allowed(model, e.loc[:-1], top_keys)
            key = str(e.loc[-1]) if e.loc else ""
            here = _model_at(model, e.loc[:-1])
            if here is not None and here.model_config.get("extra") == "allow":
                # This model passes its extra keys on (a wrapper's options go to the wrapped
                # agent): the refusing model is not known here; suggest from its kin.
                kin = _kin_fields(here)
                self.add(loc, "unknown key" + did_you_mean(key, kin))
                return
            hint = did_you_mean(key, allowed) if allowed else ""
            if hint:
                message = "unknown key" + hint
            elif here is not None and not here.model_fields and owner and not e.loc[:-1]:
                message = f"unknown key; {owner} takes no options"
            elif allowed:
                message = f"unknown key; expected one of: {', '.join(allowed)}"
            else:
                message = "unknown key"
            self.add(loc, message)
            return
        if kind == "missing":
            parent = _model_at(model, e.loc[:-1])
            f = parent.model_fields.get(str(e.loc[-1])) if parent and e.loc else None
            message = "required field is missing"
            if owner and len(e.loc) == 1:
                message += f"; {owner} needs it"
            if f is not None and f.description:
                message += f" ({f.description})"
            self.add(loc, message)
            return
        if kind in ("value_error", "assertion_error"):
            message = e.msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
            loc, message = self.relocate(loc, message, force=not e.loc)
            self.add(loc, message)
            return
        if kind == "too_short" and isinstance(e.input, list | dict | str):
            n, got = e.ctx.get("min_length"), e.ctx.get("actual_length")
            parent = _model_at(model, e.loc[:-1])
            f = parent.model_fields.get(str(e.loc[-1])) if parent and e.loc else None
            what = f" ({f.description})" if f is not None and f.description else ""
            self.add(loc, f"expected at least {n} item{'s' if n != 1 else ''}, got "
                     f"{got or 'none'}{what}")
            return
        message = e.msg
        if kind != "typo" and (isinstance(e.input, str | int | float | bool | list)
                               or e.input is None and kind != "union"):
            message += f" (got {_short(e.input)})"
        if kind == "literal_error" and isinstance(e.input, str):
            choices = re.findall(r"'([^']*)'", str(e.ctx.get("expected", "")))
            message += did_you_mean(e.input, choices)
        self.add(loc, message)


# --- loading ---------------------------------------------------------------------------------
def load_scenario(path: str | Path) -> LoadedScenario:
    """Parse and validate one scenario file; raise ScenarioError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError([Issue(str(path), None, None, "", f"cannot read: {e.strerror}")]) \
            from None
    except UnicodeDecodeError as e:
        raise ScenarioError([Issue(str(path), None, None, "",
                                   f"cannot read: not UTF-8 text ({e.reason})")]) from None
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
    out = _Collector(file, smap, data)
    if not isinstance(data, dict):
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
    return (f"world {world_type!r} raised {_describe_exception(exc)} in "
            f"{_hook_of(exc, world_cls, default)} {doing}")


def _resolve(kind: str, name: str, loc: Loc, out: _Collector) -> type | None:
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
        out.add(loc, f"{kind} {name!r}: looking it up raised {_describe_exception(e)}")
    return None


def _validate_options(model: type[BaseModel] | None, options: dict[str, Any], loc: Loc,
                      out: _Collector, *, top_keys: Iterable[str] = (), owner: str,
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
        out.add(loc, f"{owner}: validating its options raised {_describe_exception(e)}")
    return False, None


def _check_references(loaded: LoadedScenario, out: _Collector) -> None:
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
                     tool_names: set[str] | None, out: _Collector) -> None:
    """Warn about nodes no step can reach: the agent's nodes, the nodes `node_map` names, and
    the tools called without a mapping (their node is the tool's name). Unknown agent nodes
    or tool names: no warning."""
    if agent_nodes is None or tool_names is None:
        return
    sc = loaded.scenario
    reachable = set(agent_nodes) | set(sc.node_map.values()) | \
        {t for t in tool_names if t not in sc.node_map}
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


def _check_checkpoints(loaded: LoadedScenario, out: _Collector) -> None:
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
                               common: list[str], out: _Collector) -> dict[str, Any]:
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


def _check_grader(g: GraderSpec, loc: Loc, context: dict[str, Any], out: _Collector) -> None:
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
                   out: _Collector) -> list[dict[str, Any]]:
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


def _generate(sc: Scenario, world_cls: Any, out: _Collector) -> list[TaskSpec] | None:
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
                f"{_one_line(str(e))}")
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
