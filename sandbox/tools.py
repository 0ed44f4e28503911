"""Declare a world's tool once: `@tool` on a method gives its name, its argument schema (from
the signature and the docstring's `Args:` section), its simulated duration and whether it is
irreversible.

    class Shop(World):
        @tool(seconds=60, irreversible=True)
        def refund(self, order_id: str, amount: float) -> dict:
            '''Refund a delivered order.

            Args:
                order_id: the order to refund
                amount: the full order total
            '''

Calls are checked against a pydantic model built from the signature (strict: "5" is not an
int; unknown arguments are refused), so a world never sees malformed arguments: they come back
to the agent as a `ToolError`, a graded agent error.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from trialrun.trajectory import ToolSpec

F = TypeVar("F", bound=Callable[..., Any])


class ToolError(Exception):
    """The agent called a tool wrongly (unknown tool, bad arguments, not allowed now).

    Raised by `World.execute`; the episode loop turns it into a failed tool result and a
    graded agent error, never a crash.
    """


@dataclass(frozen=True)
class DeclaredTool:
    """A tool as its world declares it: spec for the agent, argument model, cost, method."""

    spec: ToolSpec
    args: type[BaseModel]
    seconds: float
    method: str  # attribute name on the world
    # For an argument model built from a signature (`collect_tools`) whose arguments are all
    # plain (str, int, float, bool, or one of them or None; no constraints): each argument's
    # exact types. Arguments of exactly those types, the required ones given, are valid as
    # they are: strict validation would return them unchanged, so they skip it. None: the
    # model checks every call.
    plain: Mapping[str, tuple[type, ...]] | None = field(default=None, compare=False)
    required: frozenset[str] = field(default=frozenset(), compare=False)

    def validate(self, args: Any) -> dict[str, Any]:
        if not isinstance(args, dict):
            raise ToolError(f"{self.spec.name}: arguments must be an object, "
                            f"got {type(args).__name__}")
        plain = self.plain
        if plain is not None and self.required.issubset(args):
            for k, v in args.items():
                types_ = plain.get(k)
                if types_ is None or type(v) not in types_:
                    break
            else:
                return dict(args)
        try:
            model = self.args.model_validate(args, strict=True)
        except ValidationError as e:
            raise ToolError(f"{self.spec.name}: bad arguments: {_brief(e)}") from None
        # Only what the caller gave (defaults are the method's business), as parsed values.
        return {k: getattr(model, k) for k in args}


_PLAIN = (str, int, float, bool)


def _plain_fields(model: type[BaseModel]
                  ) -> tuple[dict[str, tuple[type, ...]] | None, frozenset[str]]:
    """For a model `_args_model` built: per argument, the exact types strict validation
    returns unchanged when every argument is plain (one of _PLAIN, or it or None, with no
    constraints), else None; and the required arguments."""
    out: dict[str, tuple[type, ...]] | None = {}
    for name, f in model.model_fields.items():
        ann, parts = f.annotation, (f.annotation,)
        if typing.get_origin(ann) in (typing.Union, types.UnionType):
            parts = typing.get_args(ann)
        if f.metadata or not all(p in _PLAIN or p is type(None) for p in parts):
            out = None
            break
        out[name] = tuple(parts)
    return out, frozenset(k for k, f in model.model_fields.items() if f.is_required())


def tool(seconds: float = 0.0, irreversible: bool = False, name: str | None = None) -> \
        Callable[[F], F]:
    """Mark a world method as a tool the agent can call (see the module docstring)."""

    def deco(fn: F) -> F:
        fn.__trialrun_tool__ = {  # type: ignore[attr-defined]
            "seconds": float(seconds), "irreversible": irreversible, "name": name or fn.__name__}
        return fn

    return deco


def collect_tools(cls: type) -> dict[str, DeclaredTool]:
    """The tools a world class declares with `@tool`, in definition order (bases first)."""
    out: dict[str, DeclaredTool] = {}
    for klass in reversed(cls.__mro__):
        for attr, fn in vars(klass).items():
            meta = getattr(fn, "__trialrun_tool__", None)
            if meta is None:
                continue
            summary, arg_docs = _parse_doc(inspect.getdoc(fn) or "")
            model = _args_model(fn, meta["name"], arg_docs)
            schema = model.model_json_schema()
            schema.pop("title", None)
            for prop in schema.get("properties", {}).values():
                prop.pop("title", None)
            schema["additionalProperties"] = False
            spec = ToolSpec(name=meta["name"], description=summary, parameters=schema,
                            irreversible=meta["irreversible"])
            out[meta["name"]] = DeclaredTool(spec, model, meta["seconds"], attr,
                                             *_plain_fields(model))
    return out


def _args_model(fn: Callable[..., Any], name: str, docs: dict[str, str]) -> type[BaseModel]:
    hints = typing.get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for pname, p in list(inspect.signature(fn).parameters.items())[1:]:  # skip self
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"tool {name}: *args/**kwargs cannot be described to an agent")
        ann = hints.get(pname, Any)
        default = ... if p.default is p.empty else p.default
        fields[pname] = (ann, Field(default, description=docs.get(pname)))
    return create_model(f"{name}_args", __config__=ConfigDict(extra="forbid"), **fields)


_ARG_LINE = re.compile(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def _parse_doc(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (text before `Args:`) and each argument's description."""
    head, _, rest = doc.partition("\nArgs:")
    args: dict[str, str] = {}
    current = None
    for line in rest.splitlines():
        m = _ARG_LINE.match(line)
        if m and len(line) - len(line.lstrip()) <= 4:
            current = m.group(1)
            args[current] = m.group(2).strip()
        elif current and line.strip():
            args[current] += " " + line.strip()
        elif not line.strip():
            current = None
    return " ".join(head.split()), args


def _brief(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown argument {where!r}")
        elif err["type"] == "missing":
            parts.append(f"missing required argument {where!r}")
        else:
            parts.append(f"{where}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)
