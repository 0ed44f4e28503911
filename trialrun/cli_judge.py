"""The judge commands: `trialrun grade`, `trialrun calibrate`, `trialrun pairwise` and
`trialrun export golden`. Plain functions; `register(app, export_app)` adds them to the CLI.
Heavy modules are imported inside the commands so that `trialrun --help` stays fast."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from trialrun.cli_options import DEFAULT_DB, DbOption

Concurrency = Annotated[int, typer.Option("-j", "--concurrency", min=1,
                                          help="judge requests in flight")]


def _err(msg: str) -> None:
    from trialrun.cli import _err as err

    err(msg)


def _console() -> Any:
    from rich.console import Console

    return Console()


def _load_judge(path: Path) -> Any:
    """A judge file, or its problems (one line each, file:line) and exit 2."""
    from trialrun.graders.judge import load_judge
    from trialrun.scenarios.issues import ScenarioError

    try:
        return load_judge(path)
    except ScenarioError as e:
        for issue in e.issues:
            _err(str(issue))
        raise typer.Exit(2) from None


def _store_and_run(db: str, run_id: str) -> tuple[Any, str]:
    from trialrun.errors import NotFound
    from trialrun.store import Store

    store = Store(db)
    try:
        return store, store.get_run(run_id).id
    except NotFound as e:
        _err(str(e))
        raise typer.Exit(2) from None


def grade(
    run_id: Annotated[str, typer.Argument(help="a stored run (id or unique prefix)")],
    grader: Annotated[list[Path], typer.Option(
        "--grader", "-g", help="a judge file (YAML; repeat for several): type llm_judge, "
        "name, node (omit to grade outcomes), model, rubric, scale, examples, samples")],
    db: DbOption = DEFAULT_DB,
    concurrency: Concurrency = 8,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the report as "
                                                  "JSON")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="write the HTML "
                                                  "report")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Re-grade a stored run with LLM judges: their grades are stored beside the run's own
    (noisy, apart from trusted ones) and the report shows them. Answers are cached: the same
    judge again asks nothing; a changed rubric or model asks only what changed."""
    import anyio
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from trialrun.calibration import regrade

    judges = [_load_judge(p) for p in grader]
    store, run_id = _store_and_run(db, run_id)
    console = _console()
    failed = False
    for jf in judges:
        bar = Progress(TextColumn(f"judge {jf.name}"), BarColumn(), MofNCompleteColumn(),
                       console=console, disable=not progress, transient=True)
        with bar:
            task = bar.add_task("judge", total=None)
            result = anyio.run(regrade, store, run_id, jf, concurrency,
                               partial(bar.advance, task))
        where = f"at {', '.join(jf.nodes)}" if jf.nodes else "outcomes"
        console.print(f"judge {jf.name} ({where}): {result.items} item(s), {result.judged} "
                      f"judged ({result.passed} passed), {result.not_judged} not judged; "
                      f"{result.requests} request(s) to the endpoint, {result.cached} "
                      "answer(s) from the cache", markup=False, emoji=False, highlight=False)
        if result.failed:
            failed = True
            _err(f"judge {jf.name}: {len(result.failed)} item(s) not judged (infrastructure "
                 f"error, nothing stored; run again to finish, answers so far are cached): "
                 f"{result.failed[0]}")
    _report(store, run_id, json_out, html_out, console)
    if failed:
        raise typer.Exit(1)


def _report(store: Any, run_id: str, json_out: Path | None, html_out: Path | None,
            console: Any) -> None:
    from trialrun.analysis.data import load_run
    from trialrun.analysis.summary import summarize
    from trialrun.calibration import attach_judges
    from trialrun.report import render_summary

    s = attach_judges(summarize(load_run(store, run_id)), store, run_id)
    render_summary(s, console)
    if json_out:
        json_out.write_text(s.model_dump_json(indent=2))
        console.print(f"wrote {json_out}")
    if html_out:
        from trialrun.html_report import write_html

        write_html(store, run_id, html_out, s)
        console.print(f"wrote {html_out}")


def calibrate(
    judge: Annotated[Path, typer.Argument(help="the judge file (YAML)")],
    golden: Annotated[Path, typer.Argument(help="the golden set (YAML or JSONL): contexts "
                                           "with people's labels and explanations")],
    db: DbOption = DEFAULT_DB,
    concurrency: Concurrency = 8,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the calibration "
                                                  "as JSON")] = None,
    show_wrong: Annotated[int, typer.Option(help="list at most this many examples the judge "
                                            "got wrong")] = 10,
) -> None:
    """Measure a judge against a golden set: agreement, Cohen's κ, sensitivity and
    specificity with CIs, the confusion matrix and the examples it got wrong. Stored with the
    judge's fingerprint (model, rubric, examples, sampling): reports correct the judge's
    rates with it while the judge is unchanged."""
    import anyio

    from trialrun.calibration import JudgeInputError, save_calibration
    from trialrun.calibration import calibrate as run_calibration
    from trialrun.errors import InfraError
    from trialrun.graders.golden import load_golden
    from trialrun.graders.judge import JudgeCache, use_judge_cache
    from trialrun.report import render_calibration
    from trialrun.scenarios.issues import ScenarioError
    from trialrun.store import Store

    jf = _load_judge(judge)
    try:
        gold = load_golden(golden)
    except ScenarioError as e:
        for issue in e.issues:
            _err(str(issue))
        raise typer.Exit(2) from None
    store = Store(db)

    async def go():
        with use_judge_cache(JudgeCache(store)):
            return await run_calibration(jf, gold, concurrency)

    try:
        cal, labels = anyio.run(go)
    except JudgeInputError as e:
        for line in str(e).splitlines():
            _err(line)
        raise typer.Exit(2) from None
    except InfraError as e:
        _err(f"{e} (nothing stored; run again to finish: answers so far are cached)")
        raise typer.Exit(1) from None
    cal_id = save_calibration(store, cal, labels)
    console = _console()
    render_calibration(cal, console, show_wrong)
    console.print(f"stored as calibration {cal_id} of judge {jf.name} (fingerprint "
                  f"{cal.fingerprint}) in {store.safe_url}", markup=False, emoji=False,
                  highlight=False)
    if json_out:
        json_out.write_text(cal.model_dump_json(indent=2))
        console.print(f"wrote {json_out}")


def export_golden(
    run_id: Annotated[str, typer.Argument(help="a stored run")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="the golden file to write "
                                             "(.yaml, or .jsonl; default stdout, YAML)")]
    = None,
    node: Annotated[str | None, typer.Option(help="export the decisions at this node "
                                             "(default: the episodes' outcomes)")] = None,
    sample: Annotated[int | None, typer.Option(min=1, help="a seeded random sample of this "
                                               "many (what PPI needs)")] = None,
    seed: Annotated[int, typer.Option(help="the sample's seed")] = 0,
    judge: Annotated[str | None, typer.Option(help="the judge (criterion) the labels will "
                                              "be for")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write a run's steps at a node (or its outcomes) as a golden set for a person to
    label: each example is exactly what a judge sees, with an empty label and explanation.
    Once labelled, `trialrun calibrate JUDGE FILE` measures the judge on it, and since the
    examples name the run's items, reports of that run gain a PPI-corrected rate."""
    from trialrun.graders.golden import export_golden as export
    from trialrun.graders.golden import write_golden

    store, run_id = _store_and_run(db, run_id)
    examples = export(store, run_id, node, sample, seed)
    if not examples:
        _err(f"run {run_id} has no scored " + (f"decision at node {node!r}" if node
                                               else "episode") + " to export")
        raise typer.Exit(2)
    jsonl = out is not None and out.suffix in (".jsonl", ".ndjson")
    if out is None:
        write_golden(examples, sys.stdout, judge=judge, run_id=run_id)
        return
    with out.open("w", encoding="utf-8") as f:
        write_golden(examples, f, judge=judge, run_id=run_id, jsonl=jsonl)
    _console().print(f"wrote {len(examples)} example(s) to label to {out}", markup=False,
                     emoji=False, highlight=False)


def pairwise(
    run_id: Annotated[str, typer.Argument(help="a stored run (side A)")],
    grader: Annotated[Path, typer.Option("--grader", "-g", help="a pairwise judge file "
                                         "(type: pairwise)")],
    other: Annotated[str | None, typer.Argument(help="another run (side B); default: the "
                                                "run's second agent")] = None,
    agents: Annotated[str | None, typer.Option(help="the two agents of the run to compare, "
                                               "as A,B (default: its first two)")] = None,
    db: DbOption = DEFAULT_DB,
    concurrency: Concurrency = 8,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the result as "
                                                  "JSON")] = None,
) -> None:
    """Compare two agents (or two runs) on the same tasks, seeds and trials with a pairwise
    judge, each pair judged in both orders: wins, ties, and the judge's position bias."""
    import anyio

    from trialrun.errors import InfraError
    from trialrun.graders.judge import JudgeCache, judge_many, use_judge_cache
    from trialrun.graders.pairwise import PairwiseJudge, pair_items, pairwise_summary
    from trialrun.report import render_pairwise

    jf = _load_judge(grader)
    if not isinstance(jf.judge, PairwiseJudge):
        _err(f"{grader}: a pairwise comparison needs a judge file with `type: pairwise`")
        raise typer.Exit(2)
    store, run_id = _store_and_run(db, run_id)
    other_id = _store_and_run(db, other)[1] if other else None
    try:
        names, pairs = pair_items(store, run_id, other_id,
                                  agents.split(",") if agents else None,
                                  set(jf.nodes) if jf.nodes else None)
    except ValueError as e:
        _err(str(e))
        raise typer.Exit(2) from None

    async def go() -> list[Any]:
        with use_judge_cache(JudgeCache(store)):
            return await judge_many(_Pairs(jf.judge), pairs, concurrency)

    results = anyio.run(go)
    failed = [r for r in results if isinstance(r, InfraError)]
    if failed:
        _err(f"{len(failed)} pair(s) not judged: {failed[0]} (run again to finish: answers "
             "so far are cached)")
        raise typer.Exit(1)
    summary = pairwise_summary(results, jf.name, *names)
    render_pairwise(summary, _console())
    if json_out:
        json_out.write_text(summary.model_dump_json(indent=2))


class _Pairs:
    """A pairwise judge seen as one that judges a (a, b) pair: `judge_many` runs it."""

    def __init__(self, judge: Any) -> None:
        self.inner = judge

    async def judge(self, pair: tuple[Any, Any]) -> Any:
        return await self.inner.compare(*pair)


def register(app: typer.Typer, export_app: typer.Typer) -> None:
    """Add the judge commands to the `trialrun` app and its `export` group."""
    app.command()(grade)
    app.command()(calibrate)
    app.command()(pairwise)
    export_app.command("golden")(export_golden)
