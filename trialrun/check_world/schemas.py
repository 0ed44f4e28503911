"""Tool schema checks (names, descriptions, JSON-schema arguments), and example
arguments made from a schema for the checker's probes.
"""

from __future__ import annotations

import re
from typing import Any

from trialrun.check_world.report import Status, _Report
from trialrun.check_world.util import _exc, _short
from trialrun.trajectory import ToolSpec

JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what model APIs accept as a function name


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
