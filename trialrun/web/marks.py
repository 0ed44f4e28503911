"""Marking a failed episode as a regression case from the web app.

The case is what `trialrun regress` writes (trialrun/replay/regress.py: the scenario as the
run planned it, narrowed to the episode's task and seed, with its provenance), for the
episodes marked so far of that scenario, task and seed, into the server's regressions folder
(`trialrun serve --regressions DIR`, default `regressions/`), under the same file name
`trialrun regress` gives it, so `trialrun run regressions/ --gate 'success>=1'` (the CI
regression suite, docs/ci.md) runs it.
"""

from __future__ import annotations

from pathlib import Path

from trialrun.errors import BadInput
from trialrun.store import Store, mark_regression, regression_marks

__all__ = ["mark_failed_episode"]


def mark_failed_episode(store: Store, episode_id: str, out_dir: str | Path, marked_by: str,
                        from_first_error: bool = False) -> Path:
    """Write (or rewrite) the regression case of a failed episode; the file's path."""
    from trialrun.replay.regress import Case, one_line, write_case
    from trialrun.replay.rerun import plan_to_rerun

    e = store.get_episode(episode_id)
    if e.success is not False or e.end_reason == "error":
        raise BadInput(f"episode {e.id} did not fail (success {e.success}, end "
                       f"{e.end_reason}): only a failed, scored episode is a regression case")
    plan = plan_to_rerun(store, e.run_id, "re-run as a regression case")
    same = [store.get_episode(m.episode_id) for m in regression_marks(store, e.run_id)
            if m.episode_id != e.id]
    episodes = [x for x in same if (x.scenario, x.task, x.seed) == (e.scenario, e.task, e.seed)]
    case = Case(e.scenario, e.task, e.seed, sorted([*episodes, e], key=lambda x: x.trial))
    head = f"# Marked as a regression case in `trialrun serve` by {one_line(marked_by, 100)}.\n"
    path = write_case(store, plan, e.run_id, case, out_dir, from_first_error, head)
    mark_regression(store, e.id, e.run_id, str(path), marked_by)
    return path
