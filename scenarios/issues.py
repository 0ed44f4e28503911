"""Problems found in scenario files, and the translation of pydantic's errors into them.

Every problem is an `Issue` at `file:line:column: field.path`, with a message that says what
was expected (the allowed keys, a "did you mean"). `Collector` gathers a file's issues;
`add_validation` turns a pydantic ValidationError into one issue per real mistake: a typo
that also leaves a required field missing is one issue, not two; a value that fails every
member of a union is one issue, not one per member.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from trialrun.errors import InvalidScenario
from trialrun.expr import ExprError
from trialrun.registry import did_you_mean
from trialrun.scenarios.yaml_source import Loc, SourceMap

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
        self.message = one_line(self.message)

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


# --- formatting ----------------------------------------------------------------------------
def one_line(text: str) -> str:
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


def describe_exception(e: BaseException) -> str:
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


class Collector:
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
