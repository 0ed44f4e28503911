"""Run the same scenarios and seeds under several checkpoint policies, in one run.

Each variant is a copy of the scenario named `NAME@POLICY` (scenario names are unique in a
run); the policy itself is stored with every episode, and the analysis groups by it.
"""

from __future__ import annotations

import copy

from pydantic import ValidationError

from trialrun.checkpoints import parse_label
from trialrun.registry import names
from trialrun.scenarios.loader import LoadedScenario, load_scenario_source

POLICY_SEP = "@"
DEFAULT_POLICIES = ["never", "before_irreversible", "every_n:3", "below_confidence:0.8",
                    "budget:1", "always"]


def policy_variants(loaded: list[LoadedScenario], labels: list[str]) -> list[LoadedScenario]:
    """One copy of each scenario per policy label (`every_n:3`, `nodes:resolve+reply`), with
    the same seeds and the scenario's own human and deny semantics. The stored source is the
    variant's, so resume and replay reproduce it."""
    import yaml

    out = []
    for label in labels:
        try:
            name, options = parse_label(label)
        except (LookupError, ValueError) as e:
            raise ValueError(f"{label!r}: {e}; policies: {', '.join(names('checkpoint'))}") \
                from None
        for ls in loaded:
            data = yaml.safe_load(ls.source)
            data["name"] = f"{ls.name}{POLICY_SEP}{label}"
            cp = data.get("checkpoints") or {}
            keep = {k: v for k, v in cp.items() if k in ("on_deny", "max_retries", "human")}
            data["checkpoints"] = {**copy.deepcopy(keep), "policy": name, **options}
            source = yaml.safe_dump(data, sort_keys=False)
            try:
                out.append(load_scenario_source(source, ls.path))
            except Exception as e:  # noqa: BLE001 - e.g. every_n:abc: say which label
                msg = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
                raise ValueError(f"{label!r}: {msg}") from None
    return out
