"""Commands for the software lifecycle: `diff`, `regress`, `import`, and the CI pieces of `run`
and `report` (`--gate`, `--junit`, exit codes).

    trialrun diff RUN_A RUN_B [--json F] [--html F]        what changed, paired, with tests
    trialrun regress RUN_ID -o regressions/                failures as pinned scenario files
    trialrun import tau-bench results.json [--gate ...]    a run made elsewhere, analysed here

The commands are plain functions mounted on the main app by `register(app)`; heavy modules
are imported inside them, so `trialrun --help` stays fast. Exit codes are those of
`trialrun.ci`: 0 pass, 1 a gate failed (or `diff --fail-on-regression` found one), 2 usage or
input error, 3 infrastructure errors kept the gates from judging the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trialrun.cli_options import DEFAULT_DB, DbOption

if TYPE_CHECKING:
    from rich.console import Console

    from trialrun.analysis.summary import RunSummary
    from trialrun.ci import Gate
    from trialrun.store import Store

GateOption = Annotated[list[str] | None, typer.Option(
    "--gate", help="a condition the run must meet, e.g. 'success>=0.9', 'pass^3>=0.7', "
    "'node:resolve>=0.95', 'ask_f1>=0.6'; '.lo' gates on the lower end of the 95% CI "
    "('success.lo>=0.8'). Repeat for several; exit 1 if any fails (docs/ci.md)")]
JunitOption = Annotated[Path | None, typer.Option(
    "--junit", help="write a JUnit XML file: a test case per scenario × task, failures "
    "with their first error and `trialrun show EPISODE`")]


def _err(msg: str) -> None:
    from trialrun.cli import _err as err

    err(msg)


def _console() -> Console:
    from rich.console import Console

    return Console()


def _store(db: str) -> Store:
    from trialrun.store import Store

    return Store(db)


def _run_id(store: Store, ident: str) -> str:
    from trialrun.errors import NotFound

    try:
        return store.get_run(ident).id
    except NotFound as e:
        _err(str(e))
        raise typer.Exit(2) from None


# --- the CI pieces of run, report and import -------------------------------------------------
def gates_from_options(gate: list[str] | None, fail_under: float | None = None) -> list[Gate]:
    """Parse --gate (and --fail-under) before anything runs: a bad expression is one line on
    stderr and exit 2, not a traceback after a long run."""
    from trialrun.ci import GateError, parse_gates

    try:
        return parse_gates(gate, fail_under)
    except GateError as e:
        _err(str(e))
        raise typer.Exit(2) from None


def judge(store: Store, s: RunSummary, gates: list[Gate], junit: Path | None,
          console: Console, json_out: Path | None = None) -> int:
    """After the report: write the JUnit file, check the gates, print one line per gate (and
    add them to the --json file as `gates`); the exit code (`trialrun.ci.exit_code`)."""
    from rich.text import Text

    from trialrun.ci import GateError, evaluate_gates, exit_code, gates_json, write_junit

    results = []
    if gates:
        from trialrun.analysis.data import load_run

        try:
            results = evaluate_gates(gates, s, load=lambda: load_run(store, s.run_id))
        except GateError as e:
            _err(str(e))
            return 2
        for r in results:
            console.print(Text(r.line(), style="green" if r.passed else "red"))
        if json_out is not None and json_out.exists():
            data = json.loads(json_out.read_text())
            data["gates"] = gates_json(results)
            json_out.write_text(json.dumps(data, indent=2))
    if junit is not None:
        write_junit(store, s.run_id, junit, gates=results)
        console.print(f"wrote {junit}")
    infra, paused = s.end_reasons.get("error", 0), s.end_reasons.get("paused", 0)
    code = exit_code(results, infra, paused)
    if code == 3 and infra:
        _err(f"{infra} episode(s) ended in an infrastructure error after retries: the gates "
             "cannot judge this run (exit 3); finish it with "
             f"`trialrun run --resume {s.run_id}`")
    elif code == 3:
        _err(f"{paused} episode(s) wait for a reviewer: the gates cannot judge an unfinished "
             "run (exit 3); answer them (`trialrun review list`), then "
             f"`trialrun run --resume {s.run_id}`")
    elif code == 1:
        failed = [r.gate.text for r in results if not r.passed]
        _err(f"{len(failed)} gate(s) failed: {', '.join(failed)}")
    return code


def report_and_judge(store: Store, run_id: str, json_out: Path | None, html_out: Path | None,
                     console: Console, gates: list[Gate] | None = None,
                     junit: Path | None = None, bar: float | None = None,
                     bar_on_lower_bound: bool = False) -> int:
    """The run's report (terminal, --json, --html), then `judge`; the exit code."""
    from trialrun.analysis.data import load_run
    from trialrun.analysis.summary import summarize
    from trialrun.calibration import attach_judges
    from trialrun.report import render_summary

    s = summarize(load_run(store, run_id), bar=bar, bar_on_lower_bound=bar_on_lower_bound)
    attach_judges(s, store, run_id)  # LLM-judge grades: raw beside corrected, calibration
    render_summary(s, console)
    if json_out:
        json_out.write_text(s.model_dump_json(indent=2))
        console.print(f"wrote {json_out}")
    if html_out:
        from trialrun.html_report import write_html

        write_html(store, run_id, html_out, s)
        console.print(f"wrote {html_out}")
    return judge(store, s, gates or [], junit, console, json_out)


# --- diff ---------------------------------------------------------------------------------------
def diff(
    run_a: Annotated[str, typer.Argument(help="the baseline run")],
    run_b: Annotated[str, typer.Argument(help="the run to compare with it")],
    db: DbOption = DEFAULT_DB,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the diff as JSON")]
    = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="write the HTML page")] = None,
    cases: Annotated[int, typer.Option(
        min=0, help="newly failing/passing cases to list in the terminal")] = 20,
    fail_on_regression: Annotated[bool, typer.Option(
        help="exit 1 if success or a node got significantly worse (a CI gate)")] = False,
) -> None:
    """Compare two runs pair by pair (same scenario, task, seed, trial): newly failing and
    newly passing cases, the success difference (McNemar exact test, paired-bootstrap CI),
    per-node accuracy, escalation, cost and latency differences."""
    from trialrun.analysis.data import load_run
    from trialrun.analysis.diff import diff_runs

    store = _store(db)
    a, b = _run_id(store, run_a), _run_id(store, run_b)
    r = diff_runs(load_run(store, a), load_run(store, b))
    console = _console()
    render_diff(r, console, cases)
    if json_out:
        json_out.write_text(r.model_dump_json(indent=2))
        console.print(f"wrote {json_out}")
    if html_out:
        from trialrun.html_report import write_diff_html

        write_diff_html(r, html_out)
        console.print(f"wrote {html_out}")
    if fail_on_regression and r.regressed:
        _err(f"run {b} regressed against {a} (see above)")
        raise typer.Exit(1)


def render_diff(r: Any, console: Console, limit: int = 20) -> None:
    """The diff in the terminal. Names come from scenarios and agents: plain text only."""
    from rich import box
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    from trialrun.analysis.diff import (
        DIFF_LABELS,
        DIFF_MEANINGS,
        case_rows,
        measure_rows,
        node_rows,
    )

    def table(title: str, headers: list[str], rows: list[list[str]], caption: str = "",
              keep: list[int] | None = None, fold: tuple[int, ...] = (),
              styles: list[str] | None = None) -> Table:
        keep = list(range(len(headers))) if keep is None else keep
        t = Table(title=title, title_justify="left", caption=caption or None,
                  caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
        for i in keep:
            # Ids and commands are folded, never cut: they are meant to be copied.
            t.add_column(headers[i], overflow="fold" if i in fold else "ellipsis",
                         no_wrap=i in (0, 3) and i not in fold)
        for n, row in enumerate(rows):
            t.add_row(*(Text(row[i]) for i in keep), style=styles[n] if styles else None)
        return t

    s = r.success
    head = Table.grid(padding=(0, 2))
    head.add_column(no_wrap=True)
    head.add_column()
    head.add_row("runs", Text(f"A {r.run_a} → B {r.run_b}"))
    head.add_row("pairs", f"{r.pairs}" + (f" ({r.paired_by_task} matched by task)"
                                          if r.paired_by_task else ""))
    delta = "–" if s.delta is None else f"{100 * s.delta:+.1f} pts" + (
        "" if s.lo is None else f" [{100 * s.lo:+.1f}, {100 * s.hi:+.1f}]")
    head.add_row(DIFF_LABELS["success"],
                 Text(f"{_pct(s.a.rate)} → {_pct(s.b.rate)}  {delta}  McNemar p "
                      f"{s.mcnemar_p:.3g}",
                      style=("red" if (s.delta or 0) < 0 else "green") if s.significant
                      else ""))
    head.add_row(DIFF_LABELS["newly_failing"], str(s.newly_failing))
    head.add_row(DIFF_LABELS["newly_passing"], str(s.newly_passing))
    notes = Text("\n".join([*r.findings, "", f"B − A: {DIFF_MEANINGS['ci']}",
                            f"McNemar p: {DIFF_MEANINGS['mcnemar_p']}"]), style="dim")
    console.print(Panel(head, title="trialrun diff"))
    console.print(notes)
    if r.nodes:
        headers, rows = node_rows(r)
        # Rates without their counts here (the JSON and HTML have them): fits 80 columns.
        # Significant changes are coloured (red worse, green better) instead of flagged.
        rows = [[row[0], row[1].split(" (")[0], row[2].split(" (")[0], *row[3:]]
                for row in rows]
        styles = [("red" if (n.delta or 0) < 0 else "green") if n.significant else ""
                  for n in r.nodes]
        console.print(table("per-node " + DIFF_LABELS["accuracy_per_episode"], headers, rows,
                            caption=f"{DIFF_LABELS['accuracy_per_episode']}: "
                                    f"{DIFF_MEANINGS['accuracy_per_episode']}; red: "
                                    "significantly worse, green: significantly better",
                            keep=[0, 1, 2, 3, 6], styles=styles))
    headers, rows = measure_rows(r)
    if rows:
        console.print(table("escalation, cost and latency", headers, rows, keep=[0, 1, 2, 3]))
    for key, cs in (("newly_failing", r.newly_failing), ("newly_passing", r.newly_passing)):
        if cs and limit:
            h, rows = case_rows(cs[:limit])
            more = len(cs) - limit
            one = len({c.scenario for c in cs}) == 1
            console.print(table(f"{DIFF_LABELS[key]} ({DIFF_MEANINGS[key]})"
                                + (f" in {cs[0].scenario}" if one else ""), h, rows,
                                caption=f"... and {more} more (--json lists all)"
                                if more > 0 else "", keep=[1, 2, 3, 4, 5] if one else None,
                                fold=(5,)))


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


# --- regress -------------------------------------------------------------------------------------
def regress(
    run_id: Annotated[str, typer.Argument(help="a run whose failures to keep")],
    out: Annotated[Path, typer.Option("-o", "--out", help="the folder to write into")] = Path(
        "regressions"),
    from_first_error: Annotated[bool, typer.Option(
        help="start each case at its recorded first error: the steps before it replayed "
             "and adopted by the agent (no model call for them)")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write each failed episode of a run as a pinned scenario (world options, that task,
    that seed, the run's trials and agent) with its provenance; run the folder as a suite:
    `trialrun run regressions/ --gate success>=1`."""
    from rich.progress import Progress

    from trialrun.replay.regress import CannotRegress, failed_cases, write_regressions

    store = _store(db)
    run_id = _run_id(store, run_id)
    console = _console()
    try:
        with Progress(console=console, transient=True) as bar:
            t = bar.add_task("regression cases", total=len(failed_cases(store, run_id)))
            paths = write_regressions(store, run_id, out, lambda _: bar.advance(t),
                                      from_first_error)
    except CannotRegress as e:
        _err(str(e))
        raise typer.Exit(2) from None
    if not paths:
        console.print(f"run {run_id} has no failed episode: no regression case to write")
        return
    for p in paths:
        console.print(Path(p).as_posix(), markup=False, highlight=False)
    console.print(f"wrote {len(paths)} regression case(s) to {out}; run them with "
                  f"`trialrun run {out} --gate success>=1`", markup=False, highlight=False)


# --- import --------------------------------------------------------------------------------------
def import_cmd(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="tau-bench, inspect or otel")],
    files: Annotated[list[Path], typer.Argument(help="the files to import")],
    db: DbOption = DEFAULT_DB,
    scenario: Annotated[str | None, typer.Option(
        help="the scenario name the episodes get (default: from the format)")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="write the report as JSON")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="write the HTML report")] = None,
    gate: GateOption = None,
    junit: JunitOption = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Import a run made elsewhere (τ-bench / τ²-bench results, Inspect AI logs,
    OpenTelemetry GenAI spans), store it as a run and print its report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    import trialrun.importers  # noqa: F401 - registers the built-in formats
    from trialrun.errors import PluginNotFound
    from trialrun.importers import ImportFormatError, import_files
    from trialrun.registry import resolve

    gates = gates_from_options(gate)
    try:
        resolve("importer", fmt)
    except PluginNotFound as e:
        _err(str(e))
        raise typer.Exit(2) from None
    store = _store(db)
    console = _console()
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   console=console, disable=not progress, transient=True)
    try:
        with bar:
            reading = bar.add_task("reading files", total=len(files))
            storing = bar.add_task("storing episodes", total=None)

            def on_file(_path: Path, n: int) -> None:
                bar.advance(reading)
                bar.update(storing, total=(bar.tasks[storing].total or 0) + n)

            run_id, n = import_files(store, fmt, files, scenario, on_file=on_file,
                                     on_episode=lambda _: bar.advance(storing))
    except ImportFormatError as e:
        _err(str(e))
        raise typer.Exit(2) from None
    code = report_and_judge(store, run_id, json_out, html_out, console, gates, junit)
    console.print(f"imported {n} episode(s) from {len(files)} file(s) as run {run_id} · store "
                  f"{store.safe_url} · `trialrun show {run_id}`", markup=False, highlight=False)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Mount `diff`, `regress` and `import` on the main app (once)."""
    have = {c.name for c in app.registered_commands}
    for name, fn in (("diff", diff), ("regress", regress), ("import", import_cmd)):
        if name not in have:
            app.command(name)(fn)
