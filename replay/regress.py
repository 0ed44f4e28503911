"""Regression cases: a run's failures kept as pinned scenario files, a suite that runs in CI.

`trialrun regress RUN_ID -o regressions/` writes one file per (scenario, task, seed) that had
a failed episode: the scenario exactly as the run planned it (its stored text, with the run's
`--trials`/`--seeds`/`--sandbox` overrides applied), narrowed to that one task (written out
in full, generated tasks included) and that one seed, with the run's trials (the agent's
randomness depends on the trial, so every failed trial is among them) and the same agent.
Nothing else changes, so the case fails again until the agent is fixed: running the folder
(`trialrun run regressions/ --gate success>=1`) is the regression suite.

Each file says where it came from twice: in a comment at the top, for the reader, and in the
`provenance:` field (the run, and for each failed episode its id, trial and first error: step,
node, reason), which the loader validates and ignores when it runs the case.

With `from_first_error`, each failed episode's recorded steps up to its first error go in
`start_from:` (the decisions, model calls included, and the checkpoint answers): the case
starts exactly where the agent went wrong, its agent adopting the recorded steps as its own
(no model call for them), and asks whether the agent gets that step right.

A run imported from elsewhere (`trialrun import`) has no world to re-run, so it cannot be
turned into regression cases; `regress` says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trialrun.replay.rerun import CannotRerun, plan_to_rerun
from trialrun.store import EpisodeRow, Store


class CannotRegress(CannotRerun):
    """A run whose failures cannot become regression cases (e.g. an imported run)."""


@dataclass
class Case:
    """One pinned scenario: a scenario's task and seed, and the failed episodes behind it."""

    scenario: str
    task: str
    seed: int
    episodes: list[EpisodeRow] = field(default_factory=list)


def one_line(text: Any, limit: int = 240) -> str:
    """Text from the record (grader reasons, names) made safe for one YAML comment line."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "case"


def failed_cases(store: Store, run_id: str) -> list[Case]:
    """The run's failed (scored) episodes, grouped by scenario, task and seed."""
    cases: dict[tuple[str, str, int], Case] = {}
    for e in store.episodes(run_id):
        if e.success is False and e.end_reason != "error":
            key = (e.scenario, e.task, e.seed)
            cases.setdefault(key, Case(e.scenario, e.task, e.seed)).episodes.append(e)
    return list(cases.values())


def _first_error(store: Store, e: EpisodeRow) -> dict[str, Any]:
    """Where the episode first went wrong: step, node and the failing graders' reasons; for
    an episode with no graded error, the failing outcome grades."""
    if e.first_error_step is not None:
        ep = store.load_episode(e.id)
        step = next((s for s in ep.steps if s.index == e.first_error_step), None)
        reasons = [f"{g.grader}: {g.reason}" for g in (step.grades if step else [])
                   if not g.passed]
        return {"step": e.first_error_step, "node": e.first_error_node,
                "reason": one_line("; ".join(reasons) or "graded wrong")}
    failed = [g for g in json.loads(e.outcome_grades or "[]") if not g.get("passed")]
    return {"step": None, "node": None, "reason": one_line(
        "no step graded wrong; outcome: "
        + ("; ".join(f"{g.get('grader')}: {g.get('reason', '')}" for g in failed)
           or f"ended {e.end_reason}"))}


def _prefix(store: Store, e: EpisodeRow) -> dict[str, Any] | None:
    """The episode's recorded steps before its first error, as `start_from` holds them."""
    if e.first_error_step is None:
        return None
    from trialrun.replay.exact import recorded_answers

    ep = store.load_episode(e.id)
    steps = ep.steps[:e.first_error_step]
    reviews = sum(1 for s in steps if s.checkpoint and s.checkpoint.reviewed)
    return {"task": e.task, "seed": e.seed, "trial": e.trial,
            "decisions": [s.decision.model_dump(mode="json", exclude_none=True)
                          for s in steps],
            "answers": [a.model_dump() for a in recorded_answers(ep)[:reviews]]}


def pinned_case(source: dict[str, Any], plan: Any, case: Case, run_id: str,
                errors: list[dict[str, Any]],
                prefixes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The scenario mapping of one regression case, started from the recorded `prefixes`
    when given."""
    data = dict(source)
    sc = plan.scenario
    data["name"] = f"regress/{case.scenario}/{case.task}/s{case.seed}"
    data["description"] = (f"Regression case from run {run_id}: scenario {case.scenario}, "
                           f"task {case.task}, seed {case.seed}.")
    data["tags"] = sorted({*(data.get("tags") or []), "regression"})
    world = dict(data.get("world") or {})
    if sc.world.sandbox is not None:
        world["sandbox"] = sc.world.sandbox  # the run's --sandbox, if it overrode the file's
    data["world"] = world
    data["tasks"] = [plan.tasks[case.task]]
    data["seeds"] = [case.seed]
    data["trials"] = sc.trials
    data["provenance"] = {
        "run": run_id, "scenario": case.scenario, "task": case.task, "seed": case.seed,
        "episodes": [{"episode": e.id, "trial": e.trial, "first_error": err}
                     for e, err in zip(case.episodes, errors, strict=True)]}
    if prefixes:
        data["start_from"] = prefixes
    return data


def _comment(case: Case, run_id: str, errors: list[dict[str, Any]]) -> str:
    lines = [("", f"Regression case written by `trialrun regress {run_id}`."),
             ("", f"From run {run_id}: scenario {case.scenario}, task {case.task}, "
                  f"seed {case.seed}."), ("", "Failed episode(s):")]
    for e, err in zip(case.episodes, errors, strict=True):
        where = (f"first error at step {err['step']}, node {err['node']}"
                 if err["step"] is not None else "no step graded wrong")
        lines.append(("  ", f"{e.id} (trial {e.trial}): {where}: {err['reason']}"))
        lines.append(("    ", f"trialrun show {e.id}"))
    lines.append(("", "It fails until the agent is fixed: trialrun run <this folder> "
                      "--gate success>=1"))
    # One line each, whatever the record holds: a newline in a reason must not end the
    # comment and start YAML.
    return "".join(f"# {indent}{one_line(text, 400)}\n" for indent, text in lines)


def write_regressions(store: Store, run_id: str, out_dir: str | Path,
                      on_case: Callable[[Path], None] | None = None,
                      from_first_error: bool = False) -> list[Path]:
    """Write every failed (scenario, task, seed) of the run as a scenario file in `out_dir`
    (each starting at its recorded first error with `from_first_error`); the paths written
    (none if nothing failed)."""
    run = store.get_run(run_id)
    plan = plan_to_rerun(store, run.id, "re-run as regression cases")
    cases = failed_cases(store, run.id)
    if not cases:
        return []
    written = []
    for case in cases:
        path = write_case(store, plan, run.id, case, out_dir, from_first_error)
        written.append(path)
        if on_case is not None:
            on_case(path)
    return written


def write_case(store: Store, plan: Any, run_id: str, case: Case, out_dir: str | Path,
               from_first_error: bool = False, head: str = "") -> Path:
    """One pinned case (`plan`: the run's, `plan_to_rerun`) as a scenario file in `out_dir`,
    named by scenario, task and seed so that writing it again replaces it; its path. `head`:
    comment lines before the provenance (who marked it, in the web app)."""
    sp = plan.scenarios.get(case.scenario)
    if sp is None:  # the run's own scenario text is stored with it: this is a bug
        raise CannotRegress(f"run {run_id} has no stored scenario {case.scenario!r}")
    errors = [_first_error(store, e) for e in case.episodes]
    prefixes = [p for p in (_prefix(store, e) for e in case.episodes) if p] \
        if from_first_error else None
    data = pinned_case(yaml.safe_load(sp.loaded.source), sp, case, run_id, errors, prefixes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{_slug(case.scenario)}__{_slug(case.task)}__s{case.seed}.yaml"
    path.write_text(head + _comment(case, run_id, errors)
                    + yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return path
