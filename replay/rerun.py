"""The plan a stored run's episodes are re-run from (replay, attribution, forks, regression
cases), or one clear error when there is none to re-run."""

from __future__ import annotations

import json

from trialrun.errors import BadInput
from trialrun.plan import RunPlan
from trialrun.store import EpisodeRow, Store
from trialrun.trajectory import EndReason


class CannotRerun(BadInput):
    """A run whose episodes cannot be run again (e.g. one imported from another tool)."""


def refuse_paused(row: EpisodeRow, what: str) -> None:
    """A paused episode has not ended (its record stops at a review nobody answered):
    there is nothing to `what` yet. Says how to go on."""
    if row.end_reason == EndReason.paused:
        raise CannotRerun(
            f"episode {row.id} is paused, waiting for review: it has not ended, so there is "
            f"nothing to {what} yet. Answer it (`trialrun review list {row.run_id}`), then go "
            f"on with `trialrun run --resume {row.run_id}`")


def plan_to_rerun(store: Store, run_id: str, what: str = "re-run") -> RunPlan:
    """The run's own plan; an imported run has no world that re-creates its environment."""
    from trialrun.runner import plan_of_run

    run = store.get_run(run_id)
    imported = json.loads(run.options or "{}").get("imported")
    if imported:
        raise CannotRerun(
            f"run {run.id} was imported from {imported.get('format')} "
            f"({', '.join(imported.get('files', []))}): trialrun has no world that re-creates "
            f"that environment, so its episodes cannot be {what} (use "
            f"`trialrun show {run.id} --failed` to read them)")
    return plan_of_run(store, run.id)
