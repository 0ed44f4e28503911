"""The `trialrun` command line. Heavy modules are imported inside commands so --help is fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from trialrun.cli_ci import GateOption, JunitOption
from trialrun.cli_judge import register as register_judge_commands
from trialrun.cli_options import DEFAULT_DB, DbOption
from trialrun.defaults import MAX_SEEDS, MAX_TRIALS

app = typer.Typer(
    name="trialrun",
    help="Evaluate AI agents and long-running workflows in sandboxed, simulated worlds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _console():
    from rich.console import Console

    return Console()


def _err(msg: str) -> None:
    """One line on stderr. `msg` may hold untrusted text (file contents, model output): it is
    printed as plain text, never interpreted as markup or emoji codes."""
    from rich.console import Console
    from rich.text import Text

    from trialrun.secrets import mask

    Console(stderr=True, soft_wrap=True, emoji=False, highlight=False).print(
        Text.assemble(("error: ", "red"), mask(msg)))  # no password or key, whatever the text


def _resolve_run(store, run_id: str) -> str:
    """A run id or a unique prefix of one; a clear error and exit 2 otherwise."""
    try:
        return store.get_run(run_id).id
    except KeyError as e:
        _err(str(e.args[0]))
        raise typer.Exit(2) from None


def _writable(*paths: Path | None) -> None:
    """Check output files can be written before anything runs: a long run must not end in
    a traceback over a typo'd folder. Directories are not created behind the user's back."""
    import os

    from trialrun.errors import BadInput

    for p in paths:
        if p is None:
            continue
        parent = p.parent if str(p.parent) else Path(".")
        if p.is_dir():
            raise BadInput(f"cannot write {p}: it is a directory")
        if not parent.is_dir():
            raise BadInput(f"cannot write {p}: no directory {parent} (create it first)")
        if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
            raise BadInput(f"cannot write {p}: permission denied")


def _load(targets: list[str]):
    """Load the scenarios; print their warnings (they do not stop a run), or every problem
    of every file, in line order, and exit 2."""
    from trialrun.scenarios.loader import ScenarioError, in_line_order, load_targets

    try:
        loaded = load_targets(targets)
    except ScenarioError as e:
        by_file: dict[str, list] = {}
        for issue in [*e.issues, *e.warnings]:
            by_file.setdefault(issue.file, []).append(issue)
        for issues in by_file.values():
            for issue in in_line_order(issues):
                if issue.severity == "warning":
                    typer.echo(str(issue), err=True)
                else:
                    _err(str(issue))
        raise typer.Exit(2) from None
    for ls in loaded:
        for issue in ls.warnings:
            typer.echo(str(issue), err=True)
    return loaded


@app.command()
def run(
    targets: Annotated[list[str] | None, typer.Argument(
        help="scenario files, folders, or built-in suites (retail, vending, calendar, "
             "workflow, codebase)")] = None,
    db: DbOption = DEFAULT_DB,
    concurrency: Annotated[int, typer.Option("-j", "--concurrency", min=1)] = 8,
    resume: Annotated[str | None, typer.Option(help="finish an interrupted run")] = None,
    trials: Annotated[int | None, typer.Option(min=1, max=MAX_TRIALS, help="override trials")
                      ] = None,
    seeds: Annotated[int | None, typer.Option(min=1, max=MAX_SEEDS,
                                              help="override seeds: 0..N-1")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="run only the first N episodes")] = None,
    sandbox: Annotated[str | None, typer.Option(
        help="where sandboxed worlds run: docker (isolated containers, for CI) or local "
             "(a temp dir, for development; not a security boundary)")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="write the report as JSON")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="write the HTML report")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    fail_under: Annotated[float | None, typer.Option(
        help="exit 1 if the success rate is below this (the gate success>=X)")] = None,
    gate: GateOption = None,
    junit: JunitOption = None,
    agent: Annotated[list[str] | None, typer.Option(
        "--agent", help="run every scenario with this agent instead (repeat to compare "
        "agents on the same tasks, seeds and trials): a name like scripted:retail, or a "
        "mapping like '{type: openai, name: small, params: {model: m}}' (an agent of the "
        "scenario's own type keeps the scenario's params under its own)")] = None,
    bar: Annotated[float | None, typer.Option(
        help="with several agents: the success an agent must reach to ship; the cheapest "
             "that does is marked")] = None,
    bar_on_lower_bound: Annotated[bool, typer.Option(
        help="the lower end of the success CI must reach --bar")] = False,
    replay_from: Annotated[str | None, typer.Option(
        help="serve model calls from this run's recording: no requests to the endpoint, "
             "the same answers (a call not in the recording is an infrastructure error)")
    ] = None,
    live_on_miss: Annotated[bool, typer.Option(
        help="with --replay-from: send calls the recording lacks to the endpoint")] = False,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="worker processes running episodes (this process alone "
        "writes the store); default: one per core for runs of 2,000+ episodes of in-process "
        "worlds, else 1. -j stays the total in flight")] = None,
    executor: Annotated[str, typer.Option(
        help="where episodes run: local (this machine) or ray (a Ray cluster; "
             "pip install 'trialrun[ray]')")] = "local",
    address: Annotated[str | None, typer.Option(
        help="with --executor ray: the cluster to join (HOST:PORT, or ray://HOST:10001); "
             "default RAY_ADDRESS, else a Ray started on this machine for the run")] = None,
) -> None:
    """Run scenarios and print the report."""
    if not targets and not resume:
        _err("name what to run (e.g. `trialrun run retail`) or --resume RUN_ID")
        raise typer.Exit(2)
    from trialrun.cli_ci import gates_from_options, report_and_judge
    from trialrun.runner import RunOptions
    from trialrun.store import Store

    gates = gates_from_options(gate, fail_under)  # a bad gate: exit 2 before running
    _writable(json_out, html_out, junit)  # an unwritable report: exit 2 before running
    if sandbox not in (None, "docker", "local"):
        _err(f"--sandbox {sandbox!r}: expected docker or local")
        raise typer.Exit(2)
    if address and executor != "ray":
        _err("--address names a Ray cluster: use it with --executor ray")
        raise typer.Exit(2)
    loaded = [] if resume else _load(targets)
    if agent and not resume:
        from trialrun.variants import agent_variants, parse_agent

        try:
            loaded = agent_variants(loaded, [parse_agent(a) for a in agent])
        except ValueError as e:
            _err(str(e))
            raise typer.Exit(2) from None
    store = Store(db)
    opts = RunOptions(concurrency=concurrency, limit=limit, trials=trials, seeds=seeds,
                      sandbox=sandbox, executor=executor, address=address,
                      workers=workers)
    console = _console()
    if replay_from:
        from trialrun.agents.tape import Tape, use_tape

        tape = Tape.from_run(store, _resolve_run(store, replay_from), live_on_miss=live_on_miss)
        with use_tape(tape):
            summary = _execute(store, loaded, targets or [], resume, opts, progress, console)
    else:
        summary = _execute(store, loaded, targets or [], resume, opts, progress, console)
    code = report_and_judge(store, summary.run_id, json_out, html_out, console, gates, junit,
                            bar, bar_on_lower_bound)
    console.print(f"[dim]{summary.ran} episode(s) in {summary.wall_s:.1f}s · "
                  f"store {store.safe_url} · `trialrun show {summary.run_id}`[/]")
    if code:
        raise typer.Exit(code)


def _execute(store, loaded, targets: list[str], resume: str | None, opts, progress: bool,
             console):
    """Run with a progress bar; on Ctrl-C say how to resume."""
    import anyio
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from trialrun.runner import run_episodes

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                   TimeRemainingColumn(), console=console, disable=not progress)
    task_id = bar.add_task("episodes", total=None, status="")
    counts = {"ok": 0, "fail": 0, "err": 0}

    started: dict[str, str] = {}

    def on_start(run_id: str, planned: int, done: int) -> None:
        started["run"] = run_id
        bar.update(task_id, total=planned, completed=done, description=f"run {run_id}")

    def on_episode(r) -> None:
        key = "err" if r.end_reason.value == "error" else ("ok" if r.success else "fail")
        counts[key] += 1
        bar.update(task_id, advance=1, status=f"[green]{counts['ok']} ok[/] "
                   f"[red]{counts['fail']} failed[/] [yellow]{counts['err']} errors[/]")

    async def go():
        return await run_episodes(store, loaded, targets=targets, resume=resume, options=opts,
                                  on_start=on_start, on_episode=on_episode)

    try:
        with bar:
            summary = anyio.run(go)
    except Exception as e:
        from trialrun.store_errors import fault_of_process

        fault = fault_of_process(e)
        if fault is None or "run" not in started:
            raise
        from trialrun.errors import RunBusy, StoreError

        if isinstance(fault, RunBusy):
            raise fault from None
        raise StoreError(f"{fault}. Finished episodes are stored: once this is fixed, go on "
                         f"with `trialrun run --resume {started['run']}`") from None
    except KeyboardInterrupt:
        if "run" in started:
            _err("interrupted; finished episodes are stored. Resume with "
                 f"`trialrun run --resume {started['run']}`.")
        else:
            _err("interrupted before the run started: nothing was stored")
        raise typer.Exit(130) from None
    if summary.skipped:
        console.print(f"resumed run {summary.run_id}: {summary.skipped} episode(s) were already "
                      f"done, {summary.ran} run now")
    return summary


@app.command()
def validate(files: Annotated[list[str], typer.Argument(help="scenario files or folders")]) -> None:
    """Check scenario files: every problem as file:line:column: field: message.

    Warnings read `field: warning: message` and do not fail; each valid file gets one `ok`
    line; exit 2 if any file has an error."""
    from trialrun.scenarios.loader import check_targets

    try:
        reports = check_targets(files)
    except Exception as e:  # noqa: BLE001 - validate never prints a traceback
        _err(f"could not validate: {type(e).__name__}: {e}")
        raise typer.Exit(2) from None
    for report in reports:
        for issue in report.issues:
            if issue.severity == "warning":
                typer.echo(str(issue), err=True)
            else:
                _err(str(issue))
        if report.ok:
            n = len(report.loaded.tasks)
            typer.echo(f"ok  {report.path}  ({report.loaded.name}: {n} task{'s' * (n != 1)})")
    if not all(r.ok for r in reports):
        raise typer.Exit(2)


@app.command()
def schema() -> None:
    """Print the scenario JSON Schema (for editor autocompletion)."""
    from trialrun.scenarios.schema import Scenario

    typer.echo(json.dumps(Scenario.model_json_schema(), indent=2))


@app.command()
def runs(db: DbOption = DEFAULT_DB, limit: int = 20) -> None:
    """List recent runs."""
    from rich.table import Table
    from rich.text import Text

    from trialrun.run_lock import shown_status
    from trialrun.store import Store

    store = Store(db)
    t = Table()
    for col in ("run", "created", "status", "episodes", "success", "errors", "targets"):
        t.add_column(col)
    for r, agg in store.runs(limit):
        n = agg["episodes"] - agg["errors"] - agg["paused"]  # scored episodes only
        rate = f"{100 * agg['successes'] / n:.1f}%" if n else "–"
        t.add_row(r.id, r.created_at, shown_status(r, store.lease_s),
                  f"{agg['episodes']}/{r.planned}", rate, str(agg["errors"]),
                  Text(" ".join(json.loads(r.targets))))
    _console().print(t)


@app.command()
def show(
    ident: Annotated[str, typer.Argument(help="a run id or an episode id")],
    db: DbOption = DEFAULT_DB,
    failed: Annotated[bool, typer.Option(help="list only failed episodes of a run")] = False,
) -> None:
    """Show a run (its episodes) or one episode (its trajectory, step by step)."""
    from rich.table import Table
    from rich.text import Text

    from trialrun.report import render_episode, render_fork
    from trialrun.store import Store

    store = Store(db)
    console = _console()
    if "-" in ident:
        try:
            ep = store.load_episode(ident)
            if ep.parent is not None:  # a fork: beside its parent, from the fork's step
                render_fork(store.load_episode(ep.parent), ep, console)
            else:
                render_episode(ep, console)
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
        # Names come from scenario files and agents: plain text, never markup.
        t.add_row(e.id, Text(e.scenario), Text(e.task), str(e.seed), str(e.trial), e.end_reason,
                  mark, str(e.n_steps), Text(e.first_error_node or ""))
    console.print(t)


@app.command()
def report(
    run_id: str,
    db: DbOption = DEFAULT_DB,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
    html_out: Annotated[Path | None, typer.Option("--html")] = None,
    bar: Annotated[float | None, typer.Option(
        help="with several agents: the success an agent must reach to ship")] = None,
    bar_on_lower_bound: Annotated[bool, typer.Option(
        help="the lower end of the success CI must reach --bar")] = False,
    gate: GateOption = None,
    junit: JunitOption = None,
) -> None:
    """Print (and optionally write) the report of a stored run; --gate and --junit as `run`."""
    from trialrun.cli_ci import gates_from_options, report_and_judge
    from trialrun.store import Store

    gates = gates_from_options(gate)
    _writable(json_out, html_out, junit)
    store = Store(db)
    run_id = _resolve_run(store, run_id)
    code = report_and_judge(store, run_id, json_out, html_out, _console(), gates, junit, bar,
                            bar_on_lower_bound)
    if code:
        raise typer.Exit(code)


@app.command("compare-policies")
def compare_policies(
    targets: Annotated[list[str], typer.Argument(help="scenario files, folders or suites")],
    policy: Annotated[list[str] | None, typer.Option(
        "--policy", "-p", help="never, always, before_irreversible, every_n:N, "
        "below_confidence:T, budget:N, nodes:a+b (repeat; default: a spread of six)")] = None,
    db: DbOption = DEFAULT_DB,
    seeds: Annotated[int | None, typer.Option(min=1, max=MAX_SEEDS)] = None,
    trials: Annotated[int | None, typer.Option(min=1, max=MAX_TRIALS)] = None,
    concurrency: Annotated[int, typer.Option("-j", "--concurrency", min=1)] = 8,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
    html_out: Annotated[Path | None, typer.Option("--html")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Run the same scenarios and seeds under several checkpoint policies: success, human
    reviews, human minutes and the success-vs-human-cost frontier."""
    from trialrun.runner import RunOptions
    from trialrun.store import Store
    from trialrun.variants import DEFAULT_POLICIES, policy_variants

    _writable(json_out, html_out)
    try:
        loaded = policy_variants(_load(targets), policy or DEFAULT_POLICIES)
    except ValueError as e:
        _err(str(e))
        raise typer.Exit(2) from None
    store = Store(db)
    console = _console()
    opts = RunOptions(concurrency=concurrency, trials=trials, seeds=seeds)
    summary = _execute(store, loaded, targets, None, opts, progress, console)
    from trialrun.cli_ci import report_and_judge

    report_and_judge(store, summary.run_id, json_out, html_out, console)


@app.command()
def place(
    run_id: Annotated[str, typer.Argument(help="a run to measure node accuracies from "
                                                "(best: one with checkpoints: never)")],
    budget: Annotated[int, typer.Option(min=0, help="how many nodes a human may review")] = 1,
    db: DbOption = DEFAULT_DB,
    verify: Annotated[bool, typer.Option(help="run the placement and compare")] = False,
    seeds: Annotated[int | None, typer.Option(min=1, help="seeds for --verify")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Place checkpoints on the workflow from measured per-node accuracies, predict the
    success they buy, and (with --verify) run that placement to check the prediction."""
    from rich.table import Table

    from trialrun.analysis.data import load_run
    from trialrun.analysis.policies import place_checkpoints
    from trialrun.runner import RunOptions, scenarios_of_run
    from trialrun.store import Store

    store = Store(db)
    run_id = _resolve_run(store, run_id)
    from trialrun.humans import SimulatedOptions

    loaded = scenarios_of_run(store, run_id)
    human = loaded[0].human_options
    if not isinstance(human, SimulatedOptions):
        human = SimulatedOptions(seconds_per_review=human.seconds_per_review)
        _console().print(f"the scenario's human is {loaded[0].scenario.checkpoints.human.type}"
                         f"; placing for a simulated reviewer with recall {human.recall}")
    data = load_run(store, run_id)
    irreversible = {data.nodes[c] for c in set(data.s_node[data.s_irrev].tolist())}
    try:
        plan = place_checkpoints(data, budget, human.recall, human.specificity,
                                 human.seconds_per_review, irreversible)
    except ValueError as e:
        _err(str(e))
        raise typer.Exit(2) from None
    console = _console()
    t = Table(title=f"checkpoint placement from run {run_id} (recall {human.recall}, "
              f"specificity {human.specificity:.2f})", title_justify="left")
    for col in ("node", "accuracy", "with review", "visits/ep", "reviews/ep", "chosen"):
        t.add_column(col)
    for c in plan.candidates:
        t.add_row(c.node, f"{c.accuracy:.3f}", f"{c.with_review:.3f}",
                  f"{c.visits_per_episode:.2f}", f"{c.reviews_per_episode:.2f}",
                  ("forced (irreversible)" if c.forced else "yes") if c.node in plan.nodes
                  else "")
    console.print(t)
    reviewed = ", ".join(plan.nodes) or "nothing"
    console.print(f"baseline success {100 * plan.baseline_success:.1f}% → predicted "
                  f"{100 * plan.predicted_success:.1f}% reviewing {reviewed} "
                  f"({plan.expected_reviews_per_episode:.2f} reviews, "
                  f"{plan.expected_human_minutes_per_episode:.1f} human min per episode)")
    for b, nodes, succ, rev in plan.frontier:
        console.print(f"  budget {b}: {', '.join(nodes) or '–'} → {100 * succ:.1f}% "
                      f"({rev:.2f} reviews/ep)", markup=False, emoji=False)
    if not verify:
        return
    from trialrun.variants import policy_variants

    variants = policy_variants(loaded, ["nodes:" + "+".join(plan.nodes)])
    summary = _execute(store, variants, [f"place {run_id}"], None,
                       RunOptions(seeds=seeds), progress, console)
    from trialrun.analysis.summary import summarize

    s = summarize(load_run(store, summary.run_id), deep=False)
    inside = s.success.lo <= plan.predicted_success <= s.success.hi
    console.print(f"verify run {summary.run_id}: observed {100 * s.success.rate:.1f}% "
                  f"[{100 * s.success.lo:.1f}, {100 * s.success.hi:.1f}] vs predicted "
                  f"{100 * plan.predicted_success:.1f}%: "
                  + ("[green]inside the CI[/]" if inside else "[red]outside the CI[/]"))


export_app = typer.Typer(help="Export data from a run.", no_args_is_help=True)
app.add_typer(export_app, name="export")
register_judge_commands(app, export_app)  # grade, calibrate, pairwise, export golden


@export_app.command("feedback")
def export_feedback_cmd(
    run_id: str,
    db: DbOption = DEFAULT_DB,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="JSONL file (default "
                                             "stdout)")] = None,
) -> None:
    """Every approve/deny and ask_human answer with its context, as JSONL for fine-tuning or
    reward-model training."""
    from trialrun.feedback import export_feedback
    from trialrun.store import Store

    store = Store(db)
    run_id = _resolve_run(store, run_id)  # before the file is opened: a typo truncates nothing
    if out is None:
        export_feedback(store, run_id, sys.stdout)
        return
    _writable(out)
    with out.open("w") as f:
        n = export_feedback(store, run_id, f)
    _console().print(f"wrote {n} human judgement(s) to {out}")


@app.command()
def attribute(
    run_id: str,
    db: DbOption = DEFAULT_DB,
    limit: Annotated[int | None, typer.Option(min=1, help="at most N failed episodes")] = None,
) -> None:
    """Find each failed episode's decisive error by counterfactual replay: the earliest step
    whose correction (the world's reference decision) turns the failure into a success."""
    import anyio
    from rich.progress import Progress

    from trialrun.replay.counterfactual import attribute_run
    from trialrun.store import Store

    store = Store(db)
    run_id = _resolve_run(store, run_id)
    n_failed = sum(1 for e in store.episodes(run_id) if e.success is False)
    console = _console()
    with Progress(console=console) as bar:
        t = bar.add_task("counterfactual replays", total=min(n_failed, limit or n_failed))
        atts = anyio.run(lambda: attribute_run(store, run_id, limit,
                                               lambda _: bar.advance(t)))
    from collections import Counter

    same = sum(a.decisive_step == a.first_error_step for a in atts if a.decisive_step is not None)
    found = [a for a in atts if a.decisive_step is not None]
    console.print(f"{len(atts)} failed episode(s): decisive error found in {len(found)}; "
                  f"it is the first error in {same} of them")
    for node, c in Counter(a.decisive_node for a in found).most_common():
        console.print(f"  decisive at {node}: {c}", markup=False, emoji=False)


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
        console.print(f"  step {d.index} {d.what}: recorded {d.recorded!r} replayed "
                      f"{d.replayed!r}", markup=False, emoji=False)
    raise typer.Exit(1)


@app.command()
def fork(
    ident: Annotated[str, typer.Argument(help="an episode id, or a run id with --failed")],
    at: Annotated[str, typer.Option(help="the step the changed agent starts at: a number, "
                                    "first-error or decisive")] = "first-error",
    agent: Annotated[str | None, typer.Option(
        "--agent", help="the changed agent: a name or a mapping like '{type: openai, params: "
        "{model: m}}' (an agent of the scenario's own type keeps the scenario's params under "
        "its own); default: the same agent")] = None,
    failed: Annotated[bool, typer.Option(help="fork every failed episode of the run")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the results")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Replay a stored episode up to a step, then let a changed agent go on from there: is
    the failure fixed? Forks are stored as a run, each linked to its parent."""
    import anyio
    from rich.progress import Progress

    from trialrun.analysis.summary import LABELS, MEANINGS, Proportion
    from trialrun.errors import BadInput
    from trialrun.replay.fork import ForkResult, fork_episodes
    from trialrun.report import render_fork
    from trialrun.store import Store
    from trialrun.variants import parse_agent

    _writable(json_out)
    if at not in ("first-error", "decisive") and not at.isdigit():
        raise BadInput(f"--at {at!r}: expected a step number, first-error or decisive")
    try:
        spec = parse_agent(agent) if agent else None
    except ValueError as e:
        raise BadInput(str(e)) from None
    store = Store(db)
    if "-" in ident:
        ids = [store.get_episode(ident).id]
    elif not failed:
        raise BadInput(f"{ident} is a run: add --failed to fork its failed episodes")
    else:
        ids = [e.id for e in store.episodes(store.get_run(ident).id) if e.success is False]
        if not ids:
            typer.echo(f"run {ident} has no failed episode to fork")
            return
    console = _console()
    with Progress(console=console, transient=True, disable=len(ids) == 1) as bar:
        task = bar.add_task("forking", total=len(ids))

        def done(_: ForkResult) -> None:
            bar.advance(task)

        fork_run, results = anyio.run(lambda: fork_episodes(
            store, ids, int(at) if at.isdigit() else at, spec, on_fork=done))
    if len(results) == 1:
        r = results[0]
        render_fork(store.load_episode(r.parent_id), store.load_episode(r.episode_id), console)
    # A fork that hit an infrastructure error has no outcome: it counts for nothing.
    failed_parents = [r for r in results if r.parent_success is False and r.error is None]
    rescued = Proportion.of(sum(r.rescued for r in failed_parents), len(failed_parents))
    if rescued.n:
        console.print(f"{LABELS['rescued']}: {rescued.k} of {rescued.n} ({rescued.rate:.0%}, "
                      f"95% CI {rescued.lo:.0%}–{rescued.hi:.0%}): {MEANINGS['rescued']}",
                      markup=False)
    diverged = [r.parent_id for r in results if not r.prefix_identical]
    if diverged:
        console.print(f"warning: the replayed prefix differs from the record in "
                      f"{len(diverged)} fork(s) (the world is not deterministic under its "
                      f"seed, or the code changed): {', '.join(diverged[:5])}", markup=False)
    console.print(f"fork run {fork_run}; see a fork with: trialrun show EPISODE_ID",
                  markup=False)
    if json_out:
        json_out.write_text(json.dumps({
            "fork_run": fork_run, "rescued": rescued.model_dump(),
            "forks": [r.model_dump() | {"rescued": r.rescued} for r in results]}, indent=2))
    errored = [r for r in results if r.error is not None]
    if errored:  # docs/ci.md: exit 3 is infrastructure
        _err(f"{len(errored)} fork(s) hit an infrastructure error after retries and are not "
             f"scored (first: {errored[0].parent_id}: {errored[0].error.splitlines()[0]})")
        raise typer.Exit(3)


review_app = typer.Typer(help="The review queue: decisions waiting for a real reviewer "
                          "(human: {type: reviewer}).", no_args_is_help=True)
app.add_typer(review_app, name="review")


@review_app.command("list")
def review_list(
    run_id: Annotated[str | None, typer.Argument(help="only this run's items")] = None,
    all_items: Annotated[bool, typer.Option("--all", help="answered items too")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Items waiting for an answer (oldest first): the proposed action and why it is asked."""
    from rich.table import Table
    from rich.text import Text

    from trialrun.store import Store
    from trialrun.trajectory import Decision

    store = Store(db)
    items = store.reviews(store.get_run(run_id).id if run_id else None,
                          None if all_items else "pending")
    if not items:
        typer.echo("no review items" if all_items else "nothing waits for review")
        return
    t = Table()
    for col in ("item", "episode", "step", "proposed action", "why", "status"):
        t.add_column(col)
    for it in items:
        action = Decision.model_validate_json(it.decision).label()
        status = it.status if it.status == "pending" else \
            f"{it.status}: {'approved' if it.approved else 'denied'} by {it.reviewer}"
        # Actions and reasons come from agents and scenarios: plain text, never markup.
        t.add_row(it.id, Text(it.episode_key), str(it.step), Text(action[:80]), Text(it.reason),
                  Text(status))
    _console().print(t)


@review_app.command("stats")
def review_stats(
    run_id: Annotated[str | None, typer.Argument(help="only this run's items")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """How the reviewers did: answers, approvals, median queue wait, and agreement with the
    world's ground truth (Wilson 95% CI)."""
    from rich.table import Table
    from rich.text import Text

    from trialrun.analysis.reviewers import MEANINGS, agreement_text, reviewer_stats
    from trialrun.store import Store

    store = Store(db)
    rows = reviewer_stats(store, store.get_run(run_id).id if run_id else None)
    if not rows:
        typer.echo("no answered review items")
        return
    t = Table()
    for col in ("reviewer", "answers", "approved", "expired", "queue wait (median)",
                "agreement with ground truth"):
        t.add_column(col)
    for r in rows:
        wait = f"{r.queue_wait_s:.0f} s" if r.queue_wait_s is not None else "–"
        agree = (f"{r.agreement:.0%} [{r.agreement_lo:.0%}, {r.agreement_hi:.0%}] of "
                 f"{r.judged}" if r.agreement is not None else "–")
        t.add_row(Text(r.reviewer), str(r.answers), str(r.approvals), str(r.expired), wait,
                  agree)
    console = _console()
    console.print(t)
    console.print(f"agreement: {MEANINGS['agreement']}", markup=False)
    console.print(agreement_text(store, store.get_run(run_id).id if run_id else None),
                  markup=False)


def _answer(item: str, approved: bool, comment: str, by: str, db: str,
            action: str | None = None, tool: str | None = None, args: str | None = None) -> None:
    from trialrun.errors import NotFound
    from trialrun.store import Store, get_review
    from trialrun.web.takeover import deny_choice_for

    store = Store(db)
    found = get_review(store, item)
    if found is None:
        raise NotFound(f"no review item {item!r} in {store.safe_url}")
    chosen, takeover = ("", None) if approved else deny_choice_for(store, found, action, tool,
                                                                   args)
    it = store.answer_review(item, approved, by, comment, action=chosen, takeover=takeover)
    run = store.get_run(it.run_id)
    typer.echo(f"{'approved' if approved else 'denied'} {it.id}; go on with: trialrun run "
               f"--resume {run.id}" + ("" if db == DEFAULT_DB else f" --db {store.safe_url}"))


@review_app.command("approve")
def review_approve(
    item: Annotated[str, typer.Argument(help="a review item id (trialrun review list)")],
    comment: Annotated[str, typer.Option(help="why, for the record")] = "",
    by: Annotated[str, typer.Option(help="who answers", envvar="USER")] = "reviewer",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Approve a waiting decision: it runs when the episode goes on."""
    _answer(item, True, comment, by, db)


@review_app.command("deny")
def review_deny(
    item: Annotated[str, typer.Argument(help="a review item id (trialrun review list)")],
    comment: Annotated[str, typer.Option(help="why, for the record")] = "",
    by: Annotated[str, typer.Option(help="who answers", envvar="USER")] = "reviewer",
    action: Annotated[str | None, typer.Option(
        help="what happens instead, as the scenario's on_deny allows: retry, takeover or "
             "abort (default: its on_deny)")] = None,
    tool: Annotated[str | None, typer.Option(
        help="take over with this tool instead (checked against its schema)")] = None,
    args: Annotated[str | None, typer.Option(
        help="take over: the tool's arguments, a JSON object")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Deny a waiting decision: the scenario's on_deny says what happens instead, or
    --action; --tool and --args take over with a corrected action."""
    _answer(item, False, comment, by, db, action, tool, args)


@app.command("check-world")
def check_world(
    world: Annotated[str, typer.Argument(
        help="a registered world (retail, vending, calendar, workflow, codebase) or an import "
             "path pkg.module:Class")],
    seed: Annotated[int, typer.Option(help="the seed of every run")] = 0,
    scenario: Annotated[str | None, typer.Option(
        help="take the world's options and tasks from this scenario file (or a built-in one, "
             "e.g. retail/refund_in_window); needed for worlds without generate_tasks")] = None,
    task: Annotated[str | None, typer.Option(
        help="the id of the task to check (default: the first)")] = None,
    sandbox: Annotated[str | None, typer.Option(
        help="where sandboxed worlds run: docker or local")] = None,
    steps: Annotated[int, typer.Option(min=1, help="decisions per run")] = 24,
    strict: Annotated[bool, typer.Option(help="exit 1 on warnings too")] = False,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="write the report as JSON")] = None,
) -> None:
    """Check a world against the World contract (for world authors): same seed, same run; no
    wall clock, no global RNG; snapshot/restore; tool schemas; ground truth. Exit 1 if a
    check fails."""
    _writable(json_out)
    from trialrun.check_world import check_world as run_checks

    if sandbox not in (None, "docker", "local"):
        _err(f"--sandbox {sandbox!r}: expected docker or local")
        raise typer.Exit(2)
    report = run_checks(world, seed=seed, scenario=scenario, task=task, sandbox=sandbox,
                        steps=steps)
    typer.echo(report.text())
    if json_out:
        json_out.write_text(report.model_dump_json(indent=2))
    if not report.ok or (strict and report.warnings):
        raise typer.Exit(1)


def _mount_ci() -> None:
    """Commands that live in their own modules (each imports only typer at the top):
    diff, regress and import (cli_ci), serve-world (cli_serve), serve (web)."""
    from trialrun.cli_ci import register
    from trialrun.cli_serve import serve_world
    from trialrun.web.cli import serve

    register(app)
    app.command("serve-world")(serve_world)
    app.command("serve")(serve)


_mount_ci()


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


def _own_error_in(e: BaseException) -> Exception | None:
    """The first error trialrun raised on purpose inside an exception group, if any."""
    from trialrun.errors import TrialrunError

    if isinstance(e, TrialrunError):
        return e
    for sub in getattr(e, "exceptions", ()) if isinstance(e, BaseExceptionGroup) else ():
        found = _own_error_in(sub)
        if found is not None:
            return found
    return None


def main() -> None:
    """The entry point: every error trialrun raises on purpose becomes one line and exit 2,
    in this one place."""
    from trialrun.errors import InfraError, TrialrunError

    _mount_optional()
    try:
        app()
    except InfraError as e:  # docs/ci.md: 3 is infrastructure, 2 bad input
        _err(str(e))
        sys.exit(3)
    except TrialrunError as e:
        _err(str(e))
        sys.exit(2)
    except Exception as e:
        own = _own_error_in(e)  # raised inside a task group: its own line, unwrapped
        if own is not None:
            _err(str(own))
            sys.exit(3 if isinstance(own, InfraError) else 2)
        # A store fault from deep in a command (an episode's commit, a task group's member):
        # one line saying what is wrong with the store, never a driver's traceback.
        from trialrun.store_errors import fault_of_process

        fault = fault_of_process(e)
        if fault is None:  # a bug: its traceback, with any password or key masked
            import traceback

            from trialrun.secrets import mask

            sys.stderr.write(mask("".join(traceback.format_exception(e))))
            sys.exit(1)
        _err(str(fault))
        sys.exit(2)


if __name__ == "__main__":
    main()
