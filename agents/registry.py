"""Resolve agents named in scenarios: `scripted:retail`, `replay`, or `pkg.module:Class`."""

from __future__ import annotations

import importlib

from trialrun.agents.base import Agent
from trialrun.sandbox.world import load_class

_AGENTS: dict[str, type[Agent]] = {}
_BUILTIN_MODULES = {
    "scripted:retail": "trialrun.agents.scripted_retail",
    "scripted:vending": "trialrun.agents.scripted_vending",
    "scripted:calendar": "trialrun.agents.scripted_calendar",
    "scripted:workflow": "trialrun.agents.scripted_workflow",
    "scripted:codebase": "trialrun.agents.scripted_codebase",
    "scripted:always_ask": "trialrun.agents.generic",
    "scripted:never_ask": "trialrun.agents.generic",
}


def register_agent(name: str):
    def deco(cls: type[Agent]) -> type[Agent]:
        cls.name = name
        _AGENTS[name] = cls
        return cls

    return deco


def known_agents() -> list[str]:
    return sorted(set(_AGENTS) | set(_BUILTIN_MODULES))


def agent_class(name: str) -> type[Agent]:
    if name in _AGENTS:
        return _AGENTS[name]
    module = _BUILTIN_MODULES.get(name)
    if module:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
        if name in _AGENTS:
            return _AGENTS[name]
    if ":" in name and not name.startswith("scripted:") or "." in name:
        cls = load_class(name, "agent")
        if not (isinstance(cls, type) and issubclass(cls, Agent)):
            raise LookupError(f"agent {name!r} is not a subclass of trialrun.agents.base.Agent")
        return cls
    raise LookupError(f"unknown agent {name!r}; known: {', '.join(known_agents())}")
