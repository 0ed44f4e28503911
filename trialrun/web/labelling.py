"""Labelling in the web app: a person labels a step or an outcome for a judge's criterion
(stored as a golden label, which the report's PPI reads; downloadable as a golden file for
`trialrun calibrate`), and marks a failed episode as a regression case (trialrun/web/marks.py).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from trialrun import store as st
from trialrun.errors import TrialrunError
from trialrun.store import Store

__all__ = ["criteria", "golden", "label", "mark_regression"]


def criteria(store: Store, run_id: str, result: Any) -> list[str]:
    """Criteria to label for: the run's judges (re-grades and noisy grades) and the ones
    people labelled before."""
    names = {g.grader for g in store.judge_gradings(run_id)}
    names |= {g.grader for s in result.steps for g in s.grades if g.trust == "noisy"}
    names |= {g.grader for g in result.outcome_grades if g.trust == "noisy"}
    names |= {r.criterion for r in st.labels_of(store, run_id=run_id)}
    return sorted(names)


async def label(request: Request) -> Response:
    """A person labels a step or the outcome of an episode for a judge's criterion: stored
    as a golden label (the report's PPI reads it) with who, when and why."""
    from trialrun.web import app as web

    form = await web._form(request)
    if isinstance(form, Response):
        return form
    from trialrun.graders.golden import item_id

    store = web._store(request)
    row = store.get_episode(request.path_params["episode_id"])
    who = web._reviewer(form)
    criterion = form.get("criterion", "").strip()[:200]
    verdict = form.get("verdict")
    target = form.get("item", "outcome")
    errors = []
    if not who:
        errors.append("a label needs your name")
    if not criterion:
        errors.append("a label needs the criterion (the judge's name) it is for")
    if verdict not in ("pass", "fail"):
        errors.append("a label is pass or fail")
    step: int | None = None
    if target != "outcome":
        try:
            step = int(target)
        except ValueError:
            errors.append(f"no item {target!r}: a step number or outcome")
        else:
            if not 0 <= step < row.n_steps:
                errors.append(f"no step {step} in this episode ({row.n_steps} steps)")
    if row.end_reason in ("error", "paused"):
        errors.append(f"this episode ended {row.end_reason}: only scored episodes are "
                      "labelled (what a judge grades)")
    if errors:
        return await web.episode(request, 400, errors=errors)
    st.save_label(store, row.run_id, row.id, criterion, item_id(row.id, step),
                  verdict == "pass", form.get("explanation", "").strip()[:2000], who)
    return web.redirect_as(who, f"/episodes/{row.id}#labels")


async def mark_regression(request: Request) -> Response:
    """Write a failed episode as a regression case into the server's regressions folder."""
    from trialrun.web import app as web

    form = await web._form(request)
    if isinstance(form, Response):
        return form
    from trialrun.web.marks import mark_failed_episode

    store = web._store(request)
    row = store.get_episode(request.path_params["episode_id"])
    who = web._reviewer(form)
    if not who:
        return await web.episode(request, 400, errors=["marking a regression case needs your "
                                                   "name"])
    try:
        mark_failed_episode(store, row.id, request.app.state.regressions, who,
                            form.get("from_first_error") == "1")
    except (TrialrunError, OSError) as e:
        return await web.episode(request, 400, errors=[str(e)])
    return web.redirect_as(who, f"/episodes/{row.id}#regression")


async def golden(request: Request) -> Response:
    """The labels given in the app for one criterion of a run, as a golden file:
    `trialrun calibrate JUDGE.yaml THIS_FILE` measures the judge on them."""
    import io

    from trialrun.graders.judge import outcome_context, step_context
    from trialrun.web import app as web

    store = web._store(request)
    row = store.get_run(request.path_params["run_id"])
    criterion = request.query_params.get("criterion", "")
    labels = st.labels_of(store, run_id=row.id, criterion=criterion)
    if not criterion or not labels:
        return web._page(request, "error.html.j2", 404, title="No labels",
                         message=f"no labels for criterion {criterion!r} in run {row.id}")
    tasks: dict[str, dict[str, Any]] = {}
    try:
        tasks = {name: p.tasks for name, p in
                 request.app.state.states.plan(row.id).scenarios.items()}
    except Exception:  # noqa: BLE001 - scenarios that no longer load: task ids only
        pass
    examples = []
    by_episode: dict[str, list[Any]] = {}
    for lab in labels:
        by_episode.setdefault(lab.episode_id, []).append(lab)
    for eid, labs in by_episode.items():
        ep = store.load_episode(eid)
        task = tasks.get(ep.key.scenario, {}).get(ep.key.task, {"id": ep.key.task})
        steps = {s.index: s for s in ep.steps}
        for lab in labs:
            where = lab.item.rsplit(":", 1)[1]
            if where == "outcome":
                ctx = outcome_context(task, ep.steps, ep.end_reason.value)
            else:
                s = steps[int(where)]
                ctx = step_context(s.node, s.decision, s.result, task)
            examples.append({"id": lab.item, "label": "pass" if lab.passed else "fail",
                             "explanation": lab.explanation, "context": ctx})
    from trialrun.graders.golden import write_golden

    out = io.StringIO()
    write_golden(examples, out, judge=criterion, run_id=row.id)
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in criterion)
    return Response(out.getvalue(), media_type="application/yaml", headers={
        "Content-Disposition": f'attachment; filename="golden-{row.id}-{name}.yaml"'})
