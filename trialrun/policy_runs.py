"""Run the same scenarios and seeds under several checkpoint policies, in one run."""

from __future__ import annotations

from trialrun.analysis.policies import POLICY_SEP
from trialrun.scenarios.loader import LoadedScenario
from trialrun.scenarios.schema import CheckpointSpec

DEFAULT_POLICIES = ["never", "before_irreversible", "every_n:3", "below_confidence:0.8",
                    "budget:1", "always"]


def parse_policy(label: str, base: CheckpointSpec) -> CheckpointSpec:
    """`never`, `always`, `before_irreversible`, `every_n:3`, `below_confidence:0.8`,
    `budget:2`, `nodes:resolve+reply` — applied on top of the scenario's own spec (human,
    deny semantics)."""
    name, _, arg = label.partition(":")
    update: dict = {"policy": name}
    try:
        match name:
            case "every_n":
                update["n"] = int(arg or 5)
            case "below_confidence":
                update["threshold"] = float(arg or 0.8)
            case "budget":
                update["budget"] = int(arg or 5)
            case "nodes":
                update["nodes"] = [n for n in arg.split("+") if n]
            case "never" | "always" | "before_irreversible":
                if arg:
                    raise ValueError(f"policy {name!r} takes no argument")
            case _:
                raise ValueError(f"unknown policy {name!r}")
    except ValueError as e:
        raise ValueError(f"{label!r}: {e}; expected one of never, always, "
                         "before_irreversible, every_n:N, below_confidence:T, budget:N, "
                         "nodes:a+b") from None
    return CheckpointSpec.model_validate({**base.model_dump(), **update})


def policy_variants(loaded: list[LoadedScenario], labels: list[str]) -> list[LoadedScenario]:
    """One copy of each scenario per policy, named `NAME@POLICY`, with the same seeds."""
    out = []
    for ls in loaded:
        for label in labels:
            spec = parse_policy(label, ls.scenario.checkpoints)
            sc = ls.scenario.model_copy(update={"checkpoints": spec,
                                                "name": f"{ls.name}{POLICY_SEP}{label}"})
            # The stored source must reproduce the variant on resume and replay.
            source = _with_overrides(ls.source, sc)
            out.append(LoadedScenario(scenario=sc, path=ls.path, source=source,
                                      tasks=ls.tasks))
    return out


def _with_overrides(source: str, sc) -> str:
    import yaml

    data = yaml.safe_load(source)
    data["name"] = sc.name
    data["checkpoints"] = sc.checkpoints.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False)
