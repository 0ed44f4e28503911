"""The `trialrun` command line. Heavy modules are imported inside commands so --help is fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="trialrun",
    help="Evaluate AI agents and long-running workflows in sandboxed, simulated worlds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DbOption = Annotated[str, typer.Option(
    "--db", envvar="TRIALRUN_DB", help="SQLAlchemy URL of the store.")]
DEFAULT_DB = "sqlite:///trialrun.db"


def _console():
    from rich.console import Console

    return Console()


def _err(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {msg}", highlight=False)


def _load(targets: list[str]):
    from trialrun.scenarios.loader import ScenarioError, load_targets

    try:
        return load_targets(targets)
    except ScenarioError as e:
        for issue in e.issues:
            _err(str(issue))
        raise typer.Exit(2) from None


@app.command()
def run(
    targets: Annotated[list[str] | None, typer.Argument(
        help="scenario files, folders, or built-in suites (retail, vending, calendar, "
             "workflow, codebase)")] = None,
    db: DbOption = DEFAULT_DB,
    concurrency: Annotated[int, typer.Option("-j", "--concurrency", min=1)] = 8,
    resume: Annotated[str | None, typer.Option(help="finish an interrupted run")] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="override trials")] = None,
    seeds: Annotated[int | None, typer.Option(min=1, help="override seeds: 0..N-1")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="run only the first N episodes")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the report as JSON")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="write the HTML report")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    fail_under: Annotated[float | None, typer.Option(
        help="exit 1 if the success rate is below this (a CI gate)")] = None,
) -> None:
    """Run scenarios and print the report."""
    import anyio

    from trialrun.runner import RunOptions, run_episodes
    from trialrun.store import Store

    if not targets and not resume:
        _err("name what to run (e.g. `trialrun run retail`) or --resume RUN_ID")
        raise typer.Exit(2)
    loaded = [] if resume else _load(targets)
    store = Store(db)
    opts = RunOptions(concurrency=concurrency, limit=limit, trials=trials, seeds=seeds)
    console = _console()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                   TimeRemainingColumn(), console=console, disable=not progress,
                   transient=False)
    counts = {"ok": 0, "fail": 0, "err": 0}

    def on_episode(r) -> None:
        key = "err" if r.end_reason.value == "error" else ("ok" if r.success else "fail")
        counts[key] += 1
        bar.update(task_id, advance=1, status=f"[green]{counts['ok']} ok[/] "
                   f"[red]{counts['fail']} failed[/] [yellow]{counts['err']} errors[/]")

    async def go():
        from trialrun.runner import apply_overrides, plan_keys, scenarios_of_run

        nonlocal task_id
        if resume:
            try:
                planned = len(plan_keys(scenarios_of_run(store, resume)))
                done = len(store.done_keys(store.get_run(resume).id))
            except KeyError as e:
                _err(str(e.args[0]))
                raise typer.Exit(2) from None
        else:
            apply_overrides(loaded, opts.overrides())
            planned, done = len(plan_keys(loaded)), 0
        if limit is not None:
            planned = min(planned, limit)
        task_id = bar.add_task("episodes", total=planned, completed=done, status="")
        summary = await run_episodes(store, loaded, targets=targets or [], resume=resume,
                                     options=opts, on_episode=on_episode)
        bar.update(task_id, total=summary.planned, completed=summary.planned)
        return summary

    task_id = None
    try:
        with bar:
            summary = anyio.run(go)
    except KeyboardInterrupt:
        _err("interrupted; finished episodes are stored. Resume with "
             "`trialrun run --resume RUN_ID` (see `trialrun runs`).")
        raise typer.Exit(130) from None
    if summary.skipped:
        console.print(f"resumed run {summary.run_id}: {summary.skipped} episode(s) were already "
                      f"done, {summary.ran} run now")
    rate = _report(store, summary.run_id, json_out, html_out, console)
    console.print(f"[dim]{summary.ran} episode(s) in {summary.wall_s:.1f}s · "
                  f"store {db} · `trialrun show {summary.run_id}`[/]")
    if fail_under is not None and (rate is None or rate < fail_under):
        _err(f"success rate {rate} is below --fail-under {fail_under}")
        raise typer.Exit(1)


def _report(store, run_id: str, json_out: Path | None, html_out: Path | None, console) -> float | None:
    from trialrun.analysis.data import load_run
    from trialrun.analysis.summary import summarize
    from trialrun.report import render_summary

    data = load_run(store, run_id)
    s = summarize(data)
    render_summary(s, console)
    if json_out:
        json_out.write_text(s.model_dump_json(indent=2))
        console.print(f"wrote {json_out}")
    if html_out:
        from trialrun.html_report import write_html

        write_html(store, run_id, html_out)
        console.print(f"wrote {html_out}")
    return s.success.rate


@app.command()
def validate(files: Annotated[list[str], typer.Argument(help="scenario files or folders")]) -> None:
    """Check scenario files; print every problem as file:line:column: field: message."""
    loaded = _load(files)
    for ls in loaded:
        typer.echo(f"ok  {ls.path}  ({ls.name}: {len(ls.tasks)} task(s))")


@app.command()
def schema() -> None:
    """Print the scenario JSON Schema (for editor autocompletion)."""
    from trialrun.scenarios.schema import Scenario

    typer.echo(json.dumps(Scenario.model_json_schema(), indent=2))


@app.command()
def runs(db: DbOption = DEFAULT_DB, limit: int = 20) -> None:
    """List recent runs."""
    from rich.table import Table

    from trialrun.store import Store

    t = Table()
    for col in ("run", "created", "status", "episodes", "success", "errors", "targets"):
        t.add_column(col)
    for r, agg in Store(db).runs(limit):
        n = agg["episodes"] - agg["errors"]
        rate = f"{100 * agg['successes'] / n:.1f}%" if n else "–"
        t.add_row(r.id, r.created_at, r.status, f"{agg['episodes']}/{r.planned}", rate,
                  str(agg["errors"]), " ".join(json.loads(r.targets)))
    _console().print(t)


@app.command()
def show(
    ident: Annotated[str, typer.Argument(help="a run id or an episode id")],
    db: DbOption = DEFAULT_DB,
    failed: Annotated[bool, typer.Option(help="list only failed episodes of a run")] = False,
) -> None:
    """Show a run (its episodes) or one episode (its trajectory, step by step)."""
    from rich.table import Table

    from trialrun.report import render_episode
    from trialrun.store import Store

    store = Store(db)
    console = _console()
    if "-" in ident:
        try:
            render_episode(store.load_episode(ident), console)
        except KeyError as e:
            _err(str(e.args[0]))
            raise typer.Exit(2) from None
        return
    try:
        run = store.get_run(ident)
    except KeyError as e:
        _err(str(e.args[0]))
        raise typer.Exit(2) from None
    t = Table(title=f"run {run.id} ({run.status})", title_justify="left")
    t.add_column("episode", no_wrap=True, min_width=19)
    for col in ("scenario", "task", "seed", "trial", "end", "success", "steps", "first error"):
        t.add_column(col)
    for e in store.episodes(run.id):
        if failed and e.success is not False:
            continue
        mark = {True: "[green]yes[/]", False: "[red]no[/]", None: "[yellow]–[/]"}[e.success]
        t.add_row(e.id, e.scenario, e.task, str(e.seed), str(e.trial), e.end_reason, mark,
                  str(e.n_steps), e.first_error_node or "")
    console.print(t)


@app.command()
def report(
    run_id: str,
    db: DbOption = DEFAULT_DB,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
    html_out: Annotated[Path | None, typer.Option("--html")] = None,
) -> None:
    """Print (and optionally write) the report of a stored run."""
    from trialrun.store import Store

    store = Store(db)
    try:
        run_id = store.get_run(run_id).id
    except KeyError as e:
        _err(str(e.args[0]))
        raise typer.Exit(2) from None
    _report(store, run_id, json_out, html_out, _console())


@app.command()
def replay(
    episode_id: str,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Re-run a stored episode exactly (same scenario, seed, decisions, human answers) and
    check that every step reproduces bit for bit."""
    import anyio

    from trialrun.replay.exact import replay_episode
    from trialrun.store import Store

    store = Store(db)
    try:
        rep, _ = anyio.run(replay_episode, store, episode_id)
    except KeyError as e:
        _err(str(e.args[0]))
        raise typer.Exit(2) from None
    console = _console()
    if rep.identical:
        console.print(f"[green]identical[/]: {rep.steps} steps reproduced bit for bit "
                      f"(success: {rep.replayed_success})")
        return
    console.print(f"[red]diverged[/] in {len(rep.differences)} place(s):")
    for d in rep.differences[:20]:
        console.print(f"  step {d.index} {d.what}: recorded {d.recorded!r} replayed {d.replayed!r}")
    raise typer.Exit(1)


def _mount_optional() -> None:
    """Sub-apps that live in their own modules (imported only when named on the line)."""
    argv = sys.argv[1:2]
    if not argv or argv[0] in ("sandbox", "--help", "-h"):
        try:
            from trialrun.cli_sandbox import app as sandbox_app

            app.add_typer(sandbox_app, name="sandbox", help="Build images, list and prune "
                          "sandbox containers.")
        except ImportError:
            pass


def main() -> None:
    _mount_optional()
    app()


if __name__ == "__main__":
    main()
