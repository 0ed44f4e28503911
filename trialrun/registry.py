"""One registry for every kind of plugin: worlds, agents, graders, humans, checkpoint policies,
sandbox backends, executors and importers.

A name in YAML or on the command line resolves, in this order, to
1. a class registered under that name (`@register("world", "retail")`),
2. a built-in, imported on first use (the table below: importing the module registers it),
3. an entry point in its kind's group (`trialrun.worlds`, `trialrun.agents`, ... see
   GROUPS) of a third-party package,
4. an import path `pkg.module:Class`.
A typo gets "did you mean"; a class of the wrong kind is refused. Every plugin class declares
its options as a pydantic model `Options` (extra keys forbidden), validated when the scenario
loads, so a misspelled option is a load error with file:line:column, never a silent default.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Literal, TypeVar, get_args

from trialrun.errors import PluginNotFound

Kind = Literal["world", "agent", "grader", "human", "checkpoint", "sandbox", "executor",
               "importer"]
KINDS: tuple[str, ...] = get_args(Kind)

# Built-in plugins: name -> module that registers it when imported. Kept as strings so that
# naming a plugin imports only its own module (`trialrun --help` imports none of them).
_BUILTIN: dict[str, dict[str, str]] = {
    # Built-in worlds are the folders of sandbox/worlds/ (see _world_folders): each registers
    # world `<folder>` and agent `scripted:<folder>`, so adding one touches one folder.
    "world": {},
    "agent": {
        "scripted:always_ask": "trialrun.agents.generic",
        "scripted:never_ask": "trialrun.agents.generic",
        "openai": "trialrun.agents.openai_agent",
        "process": "trialrun.agents.process_agent",
        "langgraph": "trialrun.agents.langgraph_agent",
        "mcp": "trialrun.agents.mcp_agent",
        "mcp-served": "trialrun.agents.mcp_agent",
    },
    "grader": {**{name: "trialrun.graders.builtin" for name in (
        "world", "assert", "args_match", "reply_contains", "state_equals")},
        "llm_judge": "trialrun.graders.judge"},
    "human": {name: "trialrun.humans" for name in ("simulated", "scripted", "oracle",
                                                  "reviewer")},
    "checkpoint": {name: "trialrun.checkpoints" for name in (
        "never", "always", "every_n", "before_irreversible", "below_confidence", "budget",
        "nodes")},
    "sandbox": {"local": "trialrun.sandbox.local", "docker": "trialrun.sandbox.docker_backend"},
    "executor": {"local": "trialrun.executors", "ray": "trialrun.ray_executor"},
    "importer": {"tau-bench": "trialrun.importers.tau_bench",
                 "inspect": "trialrun.importers.inspect_log", "otel": "trialrun.importers.otel"},
}

# The base class each kind must subclass, as import paths (resolved lazily: no cycles).
_BASES: dict[str, str] = {
    "world": "trialrun.sandbox.world:World",
    "agent": "trialrun.agents.base:Agent",
    "grader": "trialrun.graders.base:Grader",
    "human": "trialrun.humans:Human",
    "checkpoint": "trialrun.checkpoints:CheckpointPolicy",
    "sandbox": "trialrun.sandbox.backend:Sandbox",
    "executor": "trialrun.executors:Executor",
    "importer": "trialrun.importers.base:Importer",
}

_registered: dict[str, dict[str, type]] = {k: {} for k in KINDS}
_worlds_found = False


def _builtin(kind: str) -> dict[str, str]:
    global _worlds_found
    if kind in ("world", "agent") and not _worlds_found:
        _worlds_found = True
        for folder in _world_folders():
            module = f"trialrun.sandbox.worlds.{folder}"
            _BUILTIN["world"].setdefault(folder, module)
            _BUILTIN["agent"].setdefault(f"scripted:{folder}", module)
    return _BUILTIN[kind]


def _world_folders() -> list[str]:
    import pkgutil

    from trialrun.sandbox import worlds

    return sorted(m.name for m in pkgutil.iter_modules(worlds.__path__) if m.ispkg)
# Entry point groups third-party packages publish plugins under.
GROUPS: dict[str, str] = {"world": "trialrun.worlds", "agent": "trialrun.agents",
                          "grader": "trialrun.graders", "human": "trialrun.humans",
                          "checkpoint": "trialrun.checkpoints", "sandbox": "trialrun.sandboxes",
                          "executor": "trialrun.executors", "importer": "trialrun.importers"}
T = TypeVar("T", bound=type)


def register(kind: Kind, name: str) -> Callable[[T], T]:
    """Class decorator: make `name` resolve to this class. Sets `cls.name`."""

    def deco(cls: T) -> T:
        cls.name = name  # type: ignore[attr-defined]
        _registered[kind][name] = cls
        return cls

    return deco


def names(kind: Kind) -> list[str]:
    """Every name that resolves without an import path: registered, built-in, entry points."""
    out = set(_registered[kind]) | set(_builtin(kind))
    out |= {ep.name for ep in entry_points(group=GROUPS[kind])}
    return sorted(out)


def resolve(kind: Kind, name: str) -> type:
    """The class `name` stands for; PluginNotFound with the known names otherwise."""
    if not isinstance(name, str) or not name:
        raise PluginNotFound(f"{kind}: expected a name or an import path 'pkg.module:Class'")
    cls = _registered[kind].get(name)
    if cls is None and name in _builtin(kind):
        module = _BUILTIN[kind][name]
        importlib.import_module(module)
        cls = _registered[kind].get(name)
        if cls is None:  # a harness bug, not a user's: say exactly what is missing
            raise PluginNotFound(f"built-in {kind} {name!r}: importing {module} registered "
                                 f"nothing under that name")
    if cls is None:
        for ep in entry_points(group=GROUPS[kind], name=name):
            cls = _registered[kind][name] = ep.load()
    if cls is None and (":" in name or "." in name) and not name.startswith("scripted:"):
        cls = load_class(name, kind)
    if cls is None:
        raise PluginNotFound(unknown_message(kind, name, names(kind)))
    base = _base(kind)
    if base is not None and not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginNotFound(f"{kind} {name!r} is not a subclass of "
                             f"{base.__module__}.{base.__qualname__}")
    if not vars(cls).get("name"):
        cls.name = name  # a plugin named by path or entry point is known by that name
    return cls


def unknown_message(kind: str, name: str, known: list[str]) -> str:
    return f"unknown {kind} {name!r}{did_you_mean(name, known)} (known: {', '.join(known)})"


def did_you_mean(word: str, choices: list[str] | set[str]) -> str:
    """'; did you mean X?' for a near miss, '' otherwise."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def load_class(path: str, kind: str) -> type:
    """Import `pkg.module:Class` (or `pkg.module.Class`)."""
    return load_object(path, kind)


def load_object(path: str, kind: str) -> Any:
    """Import whatever `pkg.module:name` names (a class, a graph, a factory); errors say
    which `kind` of thing was wanted."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise PluginNotFound(f"{kind} {path!r}: expected a name or an import path "
                             "'pkg.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise PluginNotFound(f"{kind} {path!r}: cannot import module {module_name!r} "
                             f"({type(e).__name__}: {e})") from None
    except Exception as e:  # noqa: BLE001 - a user's module that fails while importing
        raise PluginNotFound(f"{kind} {path!r}: importing {module_name!r} raised "
                             f"{type(e).__name__}: {e}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise PluginNotFound(f"{kind} {path!r}: module {module_name!r} has no {attr!r}") \
            from None


def _base(kind: str) -> type | None:
    path = _BASES.get(kind)
    if path is None:
        return None
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)

