"""Variants of scenarios run side by side in one run: the same tasks, seeds and trials under
several checkpoint policies (`compare-policies`) or with several agents (`run --agent`).

Each variant is a copy of the scenario named `NAME@LABEL` (scenario names are unique in a
run) whose stored source is the variant's own, so resume and replay reproduce it. The policy
and the agent are stored with every episode; the analysis groups by them and compares only
the episodes every variant ran.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import yaml
from pydantic import ValidationError

from trialrun.checkpoints import parse_label
from trialrun.registry import names
from trialrun.scenarios.loader import LoadedScenario, load_scenario_source

VARIANT_SEP = "@"
DEFAULT_POLICIES = ["never", "before_irreversible", "every_n:3", "below_confidence:0.8",
                    "budget:1", "always"]


def policy_variants(loaded: list[LoadedScenario], labels: list[str]) -> list[LoadedScenario]:
    """One copy of each scenario per policy label (`every_n:3`, `nodes:resolve+reply`), with
    the scenario's own human and deny semantics."""
    out = []
    for label in labels:
        try:
            name, options = parse_label(label)
        except (LookupError, ValueError) as e:
            raise ValueError(f"{label!r}: {e}; policies: {', '.join(names('checkpoint'))}") \
                from None

        def update(data: dict[str, Any], name: str = name,
                   options: dict[str, Any] = options) -> None:
            cp = data.get("checkpoints") or {}
            keep = {k: v for k, v in cp.items() if k in ("on_deny", "max_retries", "human")}
            data["checkpoints"] = {**copy.deepcopy(keep), "policy": name, **options}

        out += [_variant(ls, label, update) for ls in loaded]
    return out


def parse_agent(spec: str) -> dict[str, Any]:
    """`--agent` as given on the command line: a name (`scripted:retail`) or a YAML/JSON
    mapping (`{type: openai, name: small, params: {model: gpt-x}}`)."""
    try:
        value = yaml.safe_load(spec)
    except yaml.YAMLError as e:
        raise ValueError(f"--agent {spec!r}: not a name or a YAML mapping ({e})") from None
    if isinstance(value, str):
        return {"type": value}
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return value
    raise ValueError(f"--agent {spec!r}: expected a name or a mapping with a `type`")


def agent_variants(loaded: list[LoadedScenario], agents: list[dict[str, Any]]
                   ) -> list[LoadedScenario]:
    """One copy of each scenario per agent, on the same tasks, seeds and trials. An agent's
    label is its `name`, else its type; two agents may not share a label. An agent of the
    type the scenario already names keeps the scenario's params under its own (so
    `{type: openai, name: big, params: {model: gpt-4o}}` changes the model and keeps the
    prompt and node map)."""
    labels = [a.get("name") or a["type"] for a in agents]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ValueError(f"agents named twice: {', '.join(dupes)}; give each a `name`")
    out = []
    for agent, label in zip(agents, labels, strict=True):
        def update(data: dict[str, Any], agent: dict[str, Any] = agent) -> None:
            mine = copy.deepcopy(agent)
            theirs = data.get("agent") or {}
            if isinstance(theirs, dict) and theirs.get("type") == mine["type"]:
                params = theirs.get("params") or {}
                mine["params"] = {**params, **(mine.get("params") or {})}
            data["agent"] = mine

        out += [_variant(ls, label, update) for ls in loaded]
    return out


def _variant(ls: LoadedScenario, label: str,
             update: Callable[[dict[str, Any]], None]) -> LoadedScenario:
    data = yaml.safe_load(ls.source)
    data["name"] = f"{ls.name}{VARIANT_SEP}{label}"
    update(data)
    source = yaml.safe_dump(data, sort_keys=False)
    try:
        return load_scenario_source(source, ls.path)
    except Exception as e:  # noqa: BLE001 - e.g. every_n:abc or a bad agent: say which label
        msg = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
        raise ValueError(f"{label!r}: {msg}") from None
