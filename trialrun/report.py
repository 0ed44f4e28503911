"""The terminal report: what a run says about the agent, decision by decision.

Names and text that come from scenarios, worlds and agents (node names, tool output, an
agent's words) are untrusted: they reach the terminal as `Text`, never as markup, so
`[/bold]` or `:100:` in them is printed as it stands.
"""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from trialrun.analysis.agents import agent_note, agent_rows
from trialrun.analysis.reliability import HorizonFits, hazard_words
from trialrun.analysis.summary import LABELS, MEANINGS, Proportion, RunSummary
from trialrun.trajectory import Trust


def _p(p: Proportion, digits: int = 1) -> str:
    if p.rate is None:
        return "–"
    return (f"{100 * p.rate:.{digits}f}% [{100 * p.lo:.{digits}f}, {100 * p.hi:.{digits}f}]"
            f" ({p.k}/{p.n})")


def _f(x: float | None, fmt: str = ".1f") -> str:
    return "–" if x is None else format(x, fmt)


def _plain(x: object) -> Text:
    """Untrusted text as it stands: no markup, no emoji codes."""
    return Text(str(x))


def _compact(title: str, caption: str | None = None) -> Table:
    # No outer box and tight padding: the tables fit an 80-column terminal (CI logs).
    return Table(title=title, title_justify="left", caption=caption, caption_justify="left",
                 box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))


def render_summary(s: RunSummary, console: Console | None = None) -> None:
    console = console or Console()
    head = Table.grid(padding=(0, 2))
    head.add_column(no_wrap=True)
    head.add_column()
    head.add_row("run", s.run_id)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.end_reasons.items()))
    head.add_row("episodes", f"{s.episodes}  ({reasons})")
    head.add_row(LABELS["success"], Text(_p(s.success), style="bold"))
    meanings = ["success"]
    if s.errors:
        head.add_row("infra errors", Text(f"{s.errors} episode(s) not scored (see trialrun show)",
                                          style="yellow"))
    if s.predicted_success is not None:
        head.add_row(LABELS["predicted_success"], f"{100 * s.predicted_success:.1f}%")
        meanings.append("predicted_success")
        for key in ("recovered", "failed_without_graded_error"):
            if getattr(s, key):
                head.add_row(LABELS[key], str(getattr(s, key)))
                meanings.append(key)
    notes = Text("\n".join(f"{LABELS[k]}: {MEANINGS[k]}" for k in meanings), style="dim")
    console.print(Panel(Group(head, Text(""), notes), title="trialrun report"))

    if len(s.by_scenario) > 1:
        t = _compact("success by scenario")
        t.add_column("scenario")
        t.add_column("success (Wilson 95% CI)", no_wrap=True)
        t.add_column("errors", justify="right")
        for line in s.by_scenario:
            t.add_row(_plain(line.scenario), _p(line.success), str(line.errors))
        console.print(t)

    if s.trials and max(x.k for x in s.trials) > 1:
        t = _compact("repeated trials (unbiased estimators)")
        for col in ("k", "pass@k", "pass^k", "tasks"):
            t.add_column(col, justify="right")
        for x in s.trials:
            t.add_row(str(x.k), f"{x.pass_at_k:.3f}", f"{x.pass_hat_k:.3f}", str(x.tasks))
        console.print(t)

    if s.nodes:
        # The marginal accuracy (errors upstream included) is in --json and --html; the
        # terminal keeps to what fits 80 columns.
        keys = ("accuracy_per_episode", "accuracy", "visits_per_episode", "first_errors")
        t = _compact("per-node accuracy (given a clean prefix, Wilson 95% CI)", "\n".join(
            f"{LABELS[k]}: {MEANINGS[k]}" for k in keys))
        # Whole percents here (the JSON has every digit), and columns as wide as their
        # figures with headers wrapping instead: the table fits an 80-column terminal.
        per_ep = [_p(n.accuracy_per_episode, 0).rsplit(" (", 1)[0] for n in s.nodes]
        per_call = [_p(n.accuracy, 0).rsplit(" (", 1)[0] for n in s.nodes]
        widths = {"accuracy_per_episode": max(map(len, per_ep)),
                  "accuracy": max(map(len, per_call)), "visits_per_episode": 9,
                  "first_errors": 6}
        t.add_column("node", no_wrap=True)
        for k in keys:
            t.add_column(LABELS[k], justify="left" if k.startswith("accuracy") else "right",
                         min_width=widths[k], max_width=max(widths[k], 8))
        worst = min((n.accuracy_per_episode.rate for n in s.nodes
                     if n.accuracy_per_episode.rate is not None), default=None)
        for n, ep, call in zip(s.nodes, per_ep, per_call, strict=True):
            rate = n.accuracy_per_episode.rate
            style = "red" if rate is not None and rate == worst and worst < 1 else ""
            t.add_row(_plain(n.node), Text(ep, style=style), call,
                      f"{n.visits_per_episode:.2f}", str(n.first_errors))
        console.print(t)

    failed = s.success.n - s.success.k
    with_error = sum(s.first_error_nodes.values())
    if failed or with_error:
        lines = [f"{node}: {c} episode(s) ({100 * c / with_error:.0f}% of the {with_error} "
                 "with a graded error)" for node, c in s.first_error_nodes.items()]
        if s.failed_without_graded_error:
            lines.append(f"{LABELS['failed_without_graded_error']}: "
                         f"{s.failed_without_graded_error}")
        if s.user_fault_failures:
            lines.append(f"caused by the simulated user, not the agent: {s.user_fault_failures}")
        de = s.decisive_errors
        if de is not None:
            lines.append(f"decisive error (counterfactual replay of {de.attributed} failures): "
                         + ", ".join(f"{k} {v}" for k, v in de.by_node.items())
                         + f"; the first error was the decisive one in {de.first_is_decisive}"
                         f" of {de.found}")
        console.print(Panel(_plain("\n".join(lines)), title="where episodes first went wrong "
                            f"({LABELS['first_errors']}: {MEANINGS['first_errors']})",
                            expand=False))

    e = s.escalation
    esc = Table.grid(padding=(0, 2))
    esc.add_column(no_wrap=True)
    esc.add_column()
    esc.add_row("asked for help", f"{e.asks} ({e.asks_needed} where help was needed)")
    esc.add_row(LABELS["steps_needing_help"], str(e.steps_needing_help))
    esc.add_row("needed help, did not ask", str(e.needed_not_asked))
    esc.add_row("checkpoint reviews", f"{e.reviews} ({e.denials} denied; {e.wrong_approved} "
                f"wrong decisions approved, {e.right_denied} right ones denied)")
    esc.add_row("human time", f"{e.human_seconds / 60:.1f} min")
    note = Text(f"{LABELS['steps_needing_help']}: {MEANINGS['steps_needing_help']}",
                style="dim")
    console.print(Panel(Group(esc, Text(""), note), title="escalation and checkpoints"))

    if s.reliability is not None:
        render_reliability(s, console)
    if s.policies:
        render_policies(s, console)
    if s.judges is not None:
        render_judges(s, console)
    if s.agents is not None:
        headers, rows = agent_rows(s.agents)
        # The columns that decide; --json and --html have all of them (latency, asks, p).
        keep = [0, 2, 3, 7, 4, 9]
        t = _compact("agents side by side", agent_note(s.agents))
        for i in keep:
            t.add_column(headers[i], justify="right" if i == 4 else "left",
                         no_wrap=i in (0, 2, 9), min_width=10 if i == 7 else None)
        for row in rows:
            t.add_row(*(_plain(row[i]) for i in keep))
        console.print(t)

    t = _compact("cost and latency")
    for col in ("measure", "P50", "P90", "P99"):
        t.add_column(col, justify="right" if col != "measure" else "left")
    for name, p in s.latency.items():
        t.add_row(name, _f(p.p50, ".2f"), _f(p.p90, ".2f"), _f(p.p99, ".2f"))
    console.print(t)


def render_episode(ep, console: Console | None = None) -> None:
    """A trajectory, step by step. Everything the agent or the world wrote is plain text."""
    console = console or Console()
    k = ep.key
    verdict = {True: ("success", "green"), False: ("failure", "red"),
               None: ("not scored", "yellow")}[ep.success]
    console.print(Text.assemble((str(k), "bold"), f"  agent {ep.agent}  ", verdict,
                                f"  ended: {ep.end_reason.value} ({ep.end_note})  "
                                f"sim {ep.sim_time:.0f}s  wall {ep.wall_ms:.1f} ms"))
    if ep.error:
        console.print(Panel(_plain(ep.error), title="infrastructure error", style="yellow"))
    t = Table(show_lines=False)
    for col in ("#", "node", "decision", "result", "human", "grade"):
        t.add_column(col)
    for st in ep.steps:
        res = Text("")
        if st.result is not None:
            res = Text("ok") if st.result.ok else Text(str(st.result.error), style="red")
            if st.result.ok and st.result.output is not None:
                res = Text(str(st.result.output)[:60])
        human = Text("")
        if st.checkpoint and st.checkpoint.reviewed:
            human = Text("approved") if st.checkpoint.approved else \
                Text(f"denied → {st.checkpoint.action}", style="red")
        if st.decision.kind == "ask_human":
            human = Text.assemble(("asked", "cyan"),
                                  " (needed)" if st.help_needed else " (not needed)")
        failed = [g for g in st.grades if not g.passed and g.trust == Trust.trusted]
        grade = Text("✓", style="green") if st.passed else (
            Text("✗ " + "; ".join(g.reason for g in failed), style="red")
            if st.passed is False else Text(""))
        for g in st.grades:  # judges' (noisy) grades: apart, never in the verdict
            if g.trust == Trust.noisy:
                if grade.plain:
                    grade.append("\n")
                grade.append(f"judge {g.grader}: {g.reason[:120]}", style="magenta")
        t.add_row(str(st.index), _plain(st.node), _plain(st.decision.label()[:70]), res, human,
                  grade)
    console.print(t)
    if ep.outcome_grades:
        console.print(Group(*[Text(f"{'✓' if g.passed else '✗'} "
                                   f"{'judge ' if g.trust == Trust.noisy else ''}{g.grader}: "
                                   f"{g.reason}", style="magenta" if g.trust == Trust.noisy
                                   else "green" if g.passed else "red")
                              for g in ep.outcome_grades]))


def render_reliability(s: RunSummary, console: Console) -> None:
    r = s.reliability
    lines = []
    sc = r.shared_cause
    if sc is not None:
        lines.append(f"{LABELS['shared_cause']}: {sc.meaning}")
        if sc.co_error_ratio.estimate is not None:
            lines.append(f"  ({LABELS['co_error_ratio']}: {MEANINGS['co_error_ratio']}; 95% CI "
                         f"resampling {sc.resampled}s, {sc.n_boot} draws, seed {sc.seed} from "
                         "the data)")
    if r.blame:
        lines.append("share of blame (−ln success, per episode, clean prefix): " + ", ".join(
            f"{k} {100 * v:.0f}%" for k, v in r.blame.items()))
    if r.propagation and r.propagation.strongest:
        lines.extend("propagation: " + x for x in r.propagation.strongest)
    if r.markov is not None:
        lines.append(f"workflow as a Markov chain from {r.markov.start}: P(success) "
                     f"{100 * r.markov.p_success:.1f}%, {r.markov.total_steps:.1f} expected steps")
    for h in (r.horizon_steps, r.horizon_time):
        if h is not None:
            lines.append(horizon_line(h))
    if r.trials is not None:
        t = r.trials
        lines.append(f"repeated trials (k={t.k}, 95% CI over tasks): pass@k "
                     f"{t.pass_at_k.estimate:.3f} [{t.pass_at_k.lo:.3f}, {t.pass_at_k.hi:.3f}], "
                     f"pass^k {t.pass_hat_k.estimate:.3f} [{t.pass_hat_k.lo:.3f}, "
                     f"{t.pass_hat_k.hi:.3f}], worst-of-k {t.worst_of_k:.3f}, best-of-k "
                     f"{t.best_of_k:.3f}")
    if lines:
        console.print(Panel(_plain("\n".join(lines)), title="compounding errors", expand=False))
    e = r.escalation
    if e.tp + e.fp + e.fn:
        def f(x: float | None) -> str:
            return "–" if x is None else f"{x:.2f}"

        body = [e.verdict,
                f"precision {f(e.precision)}  recall {f(e.recall)}  Ask-F1 {f(e.f1)}  "
                f"over-escalation {f(e.over_escalation)}  under-escalation "
                f"{f(e.under_escalation)}",
                f"cost (ask {e.cost_per_ask:g}, unasked error {e.cost_per_error:g}): agent "
                f"{e.cost_agent:g}, never-ask {e.cost_never_ask:g}, always-ask "
                f"{e.cost_always_ask:g}, oracle {e.cost_oracle:g}; regret {f(e.regret)}"]
        if e.aurc is not None:
            body.append(f"confidence: AURC {e.aurc:.3f}, excess {e.e_aurc:.3f} "
                        "(0 = confidence ranks right decisions first perfectly)")
        console.print(Panel(_plain("\n".join(body)), title="escalation: does it ask at the "
                            "right moments?", expand=False))


def _horizon(x: float | None, h: HorizonFits) -> str:
    if x is None:
        return "–"
    beyond = h.data_end is not None and x > h.data_end
    return f"{x:.1f}" + (" (extrapolated)" if beyond else "")


def horizon_line(h: HorizonFits) -> str:
    """One horizon fit in words; a horizon past the longest episode says it is extrapolated."""
    if h.exponential_t50 is None:
        return f"horizon ({h.unit}): {h.note}"
    txt = (f"horizon ({h.unit}, to the first error; data up to {_f(h.data_end)}): constant "
           f"hazard T50 {_horizon(h.exponential_t50, h)}, T80 {_horizon(h.exponential_t80, h)}")
    if h.weibull_k is not None:
        txt += (f"; Weibull {hazard_words(h)}; T50 {_horizon(h.weibull_t50, h)}, "
                f"T80 {_horizon(h.weibull_t80, h)}")
    elif h.note:
        txt += f"; {h.note}"
    return txt


def render_policies(s: RunSummary, console: Console) -> None:
    t = _compact("checkpoint policies (same seeds)")
    for col in ("policy", "success (95% CI)", "reviews/ep", "human min/ep", "aborted",
                "frontier"):
        t.add_column(col)
    for p in s.policies:
        succ = "–" if p.success is None else (f"{100 * p.success:.1f}% [{100 * p.success_lo:.1f}"
                                              f", {100 * p.success_hi:.1f}]")
        t.add_row(_plain(p.policy), succ, f"{p.reviews_per_episode:.2f}",
                  f"{p.human_minutes_per_episode:.2f}", str(p.aborted),
                  "★" if p.on_frontier else "")
    console.print(t)


def render_fork(parent, fork, console: Console | None = None) -> None:
    """A fork beside its parent from the fork's step: the shared prefix in one line, then
    each side's steps. Everything the agent or the world wrote is plain text."""
    console = console or Console()
    k = fork.fork_at or 0
    console.print(Text.assemble(
        (f"fork of {fork.parent} at step {k}", "bold"),
        f"  ({k} step(s) replayed from the record)  parent: ",
        _verdict(parent.success), "  fork: ", _verdict(fork.success)))
    t = Table(show_lines=False)
    t.add_column("#")
    t.add_column(f"parent ({_plain(parent.agent)})")
    t.add_column(f"fork ({_plain(fork.agent)})")
    for i in range(k, max(len(parent.steps), len(fork.steps))):
        t.add_row(str(i), *(_side(ep.steps[i]) if i < len(ep.steps) else Text("")
                            for ep in (parent, fork)))
    console.print(t)
    for ep, who in ((parent, "parent"), (fork, "fork")):
        console.print(Text(f"{who}: ended {ep.end_reason.value} ({ep.end_note})"))


def _verdict(success: bool | None) -> Text:
    return {True: Text("success", style="green"), False: Text("failure", style="red"),
            None: Text("not scored", style="yellow")}[success]


def _side(st) -> Text:
    mark = {True: ("✓ ", "green"), False: ("✗ ", "red"), None: ("  ", "")}[st.passed]
    return Text.assemble(mark, f"{st.node}: {st.decision.label()[:60]}")


# --- LLM judges (issue 10) -----------------------------------------------------------------
BELIEVE_WORDS = {"ppi": "the PPI-corrected rate", "rogan_gladen": "the Rogan–Gladen-corrected "
                 "rate", "raw": "the raw rate, with care", "none": "neither rate as a measure"}


def _rate(x, digits: int = 1) -> str:
    """A corrected rate: estimate [CI]."""
    return (f"{100 * x.estimate:.{digits}f}% [{100 * x.lo:.{digits}f}, {100 * x.hi:.{digits}f}]"
            + (f" ({x.n_labelled} of {x.n} labelled)" if x.n_labelled else ""))


def judge_calibration_text(c) -> str:
    kappa = "–" if c.kappa is None else f"{c.kappa:.2f}" + (
        f" [{c.kappa_lo:.2f}, {c.kappa_hi:.2f}]" if c.kappa_lo is not None else "")
    return (f"{c.examples} golden examples ({c.golden}, {c.created_at}): "
            f"{LABELS['judge_agreement']} {_p(c.agreement, 0)}, {LABELS['cohens_kappa']} "
            f"{kappa}, {LABELS['judge_sensitivity']} {_p(c.sensitivity, 0)}, "
            f"{LABELS['judge_specificity']} {_p(c.specificity, 0)}")


def render_judges(s: RunSummary, console: Console) -> None:
    """Judge-graded (noisy) rates, apart from the trusted grades: raw beside corrected, which
    to believe and why, the judge's reliability and its warnings."""
    r = s.judges
    body: list = []
    if r.judged_success:
        body.append(Text(f"{LABELS['judged_success']}: {r.judged_success} episode(s) — the "
                         "success rate above is partly judge-graded (noisy); read the "
                         "corrected rate below", style="yellow"))
    for line in r.lines:
        where = f"at {', '.join(line.nodes)}" if line.scope == "node" else "outcomes"
        how = "re-graded" if line.source == "regrade" else "graded as the run ran"
        head = f"{line.grader} ({where}; {how}" + (f"; model {line.model}" if line.model
                                                   else "") + (
            f"; majority of {line.samples} samples" if line.samples > 1 else "") + ")"
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column()
        grid.add_row(LABELS["judge_pass_rate"], _p(line.raw))
        for key in ("rogan_gladen", "ppi"):
            x = getattr(line, key)
            if x is not None:
                mark = "  ← believe this" if line.believe == key else ""
                grid.add_row(LABELS[key], Text(_rate(x) + mark,
                                               style="bold" if mark else ""))
        if line.humans_only is not None:
            grid.add_row(LABELS["humans_only"], _p(line.humans_only))
        if line.not_judged:
            grid.add_row(LABELS["not_judged"], str(line.not_judged))
        if line.calibration is not None:
            grid.add_row("calibration", _plain(judge_calibration_text(line.calibration)))
        if line.self_agreement is not None:
            grid.add_row(LABELS["judge_self_agreement"],
                         f"{100 * line.self_agreement:.0f}% (Krippendorff's α "
                         f"{_f(line.self_alpha, '.2f')})")
        grid.add_row("believe", _plain(f"{BELIEVE_WORDS[line.believe]} — {line.why}"))
        body += [Text(head, style="bold"), grid]
        body += [Text(f"! {w}", style="yellow") for w in line.warnings]
        body.append(Text(""))
    keys = ["judge_pass_rate", "rogan_gladen", "ppi", "judge_self_agreement"]
    body.append(Text("\n".join(f"{LABELS[k]}: {MEANINGS[k]}" for k in keys), style="dim"))
    console.print(Panel(Group(*body), title="LLM judges (noisy grades, apart from the trusted "
                        "ones)"))


def render_calibration(cal, console: Console | None = None, show_wrong: int = 10) -> None:
    """A judge's calibration on a golden set: the confusion matrix, agreement, κ, Se, Sp,
    self-agreement, and the examples it got wrong."""
    console = console or Console()
    t = _compact(f"judge {cal.judge} on {cal.golden} ({cal.examples} labelled examples)")
    t.add_column("")
    t.add_column("person: pass", justify="right")
    t.add_column("person: fail", justify="right")
    t.add_row("judge: pass", str(cal.tp), str(cal.fp))
    t.add_row("judge: fail", str(cal.fn), str(cal.tn))
    console.print(t)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    kappa = "–" if cal.kappa is None else f"{cal.kappa:.3f}" + (
        f" [{cal.kappa_lo:.3f}, {cal.kappa_hi:.3f}]" if cal.kappa_lo is not None else "")
    grid.add_row(LABELS["judge_agreement"], _p(cal.agreement))
    grid.add_row(LABELS["cohens_kappa"], kappa)
    grid.add_row(LABELS["judge_sensitivity"], _p(cal.sensitivity))
    grid.add_row(LABELS["judge_specificity"], _p(cal.specificity))
    if cal.self_agreement is not None:
        grid.add_row(LABELS["judge_self_agreement"],
                     f"{100 * cal.self_agreement:.0f}% (Krippendorff's α "
                     f"{_f(cal.self_alpha, '.2f')}, {cal.samples} samples)")
    if cal.unlabelled:
        grid.add_row("unlabelled (skipped)", str(cal.unlabelled))
    if cal.run_items:
        grid.add_row("labels of a run's items", f"{cal.run_items} (used for PPI in its report)")
    keys = ["judge_agreement", "cohens_kappa", "judge_sensitivity", "judge_specificity"]
    notes = Text("\n".join(f"{LABELS[k]}: {MEANINGS[k]}" for k in keys), style="dim")
    console.print(Panel(Group(grid, Text(""), notes), title=f"calibration (fingerprint "
                        f"{cal.fingerprint})"))
    for w in cal.warnings:
        console.print(Text(f"! {w}", style="yellow"))
    if cal.wrong and show_wrong:
        w = _compact(f"examples the judge got wrong ({len(cal.wrong)}; first "
                     f"{min(show_wrong, len(cal.wrong))})")
        for col in ("where", "person", "judge", "why (person / judge)"):
            w.add_column(col)
        for x in cal.wrong[:show_wrong]:
            w.add_row(_plain(x.where), _plain(x.human), _plain(x.judge),
                      _plain(f"{x.explanation or '–'} / {x.reasoning[:200] or '–'}"))
        console.print(w)


def render_pairwise(p, console: Console | None = None) -> None:
    """A pairwise comparison: wins, ties and the judge's position bias."""
    console = console or Console()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row("pairs", f"{p.pairs} ({p.judged} judged in both orders, {p.not_judged} not)")
    grid.add_row(f"A wins ({p.a})", Text(str(p.a_wins)))
    grid.add_row(f"B wins ({p.b})", Text(str(p.b_wins)))
    grid.add_row("ties", f"{p.ties} ({p.position_flips} of them because the orders disagreed)")
    grid.add_row(LABELS["a_preference"], _f(p.a_preference, ".3f"))
    grid.add_row(LABELS["position_bias"], _p(p.position_bias))
    grid.add_row(LABELS["first_position"], _p(p.first_position))
    keys = ["a_preference", "position_bias", "first_position"]
    notes = Text("\n".join(f"{LABELS[k]}: {MEANINGS[k]}" for k in keys), style="dim")
    console.print(Panel(Group(grid, Text(""), notes), title=f"pairwise judge {p.judge}: "
                        f"A = {p.a}, B = {p.b}"))
