"""Two identical runs give the same report, byte for byte: JSON, terminal and HTML (plots
included), every section.

Episode ids are random, so the two stores hold the same episodes under different ids, stored
in a different order (episodes finish concurrently). What legitimately differs is replaced:
the run id and the run's creation time by placeholders in the output, the measured wall-clock
times (episode milliseconds, harness microseconds per step) by the same stand-ins in both
stores.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable

import anyio
import pytest
from rich.console import Console

from tests.helpers import RETAIL
from trialrun.analysis.data import load_run
from trialrun.analysis.summary import summarize
from trialrun.calibration import attach_judges
from trialrun.html_report import render_html
from trialrun.report import render_summary
from trialrun.runner import RunOptions, run_episodes
from trialrun.scenarios.loader import load_scenario
from trialrun.store import Store
from trialrun.variants import agent_variants, policy_variants


def agents_plan() -> list:
    """Two agents on the same episodes (the agent comparison) that err at several nodes
    (compounding, propagation, horizon, Markov chain, first errors, trials)."""
    errs = load_scenario(RETAIL / "known_error_rates.yaml")
    return agent_variants([errs], [
        {"type": "scripted:retail", "name": "clean",
         "params": {"error_rates": {"reply": 0.05}}},
        {"type": "scripted:retail", "name": "sloppy",
         "params": {"error_rates": {"lookup_order": 0.1, "resolve": 0.3, "reply": 0.1}}}])


def policies_plan() -> list:
    """Two checkpoint policies on the same episodes (the policy table and its plot), and
    asks for help (escalation, risk-coverage)."""
    return [*policy_variants([load_scenario(RETAIL / "known_error_rates.yaml")],
                             ["never", "every_n:2"]),
            load_scenario(RETAIL / "clear_always_ask.yaml")]


def reports(tmp_path, name: str, plan: Callable[[], list]) -> dict[str, str]:
    store = Store(f"sqlite:///{tmp_path / name}")
    run = anyio.run(lambda: run_episodes(store, plan(), options=RunOptions(
        seeds=25, trials=3, concurrency=16)))
    created = store.get_run(run.run_id).created_at
    # Wall-clock times are measurements of each run and legitimately differ: both stores get
    # the same stand-ins, so the latency lines are compared too.
    with sqlite3.connect(tmp_path / name) as db:
        db.execute("UPDATE episode SET wall_ms = 1.5 * n_steps + seed % 7")
        db.execute("UPDATE step SET wall_us = 10 * idx + 3")
        db.execute("UPDATE episode SET step_arrays = NULL")  # derived from the step table
    s = attach_judges(summarize(load_run(store, run.run_id)), store, run.run_id)
    console = Console(file=io.StringIO(), width=120, color_system=None)
    render_summary(s, console)
    out = {"json": s.model_dump_json(indent=2), "terminal": console.file.getvalue(),
           "html": render_html(s, created_at=created)}
    return {k: v.replace(run.run_id, "RUN-ID").replace(created, "CREATED-AT")
            for k, v in out.items()}


@pytest.mark.parametrize("plan", [agents_plan, policies_plan])
def test_two_identical_runs_report_alike_byte_for_byte(tmp_path, plan):
    a, b = reports(tmp_path, "a.db", plan), reports(tmp_path, "b.db", plan)
    # the runs hold what the report should show, so every section is compared
    data = json.loads(a["json"])
    r = data["reliability"]
    assert data["trials"] and data["first_error_nodes"] and data["by_scenario"]
    for part in ("shared_cause", "propagation", "markov", "horizon_steps", "trials", "blame"):
        assert r[part], part
    figures = ["workflow", "propagation", "horizon-steps", "node-accuracy", "compounding"]
    if plan is agents_plan:
        assert data["agents"] and len(data["agents"]["rows"]) == 2
    else:
        assert len(data["policies"]) == 2
        assert r["escalation"]["risk_coverage"] and r["escalation"]["tp"] + r["escalation"]["fp"]
        figures += ["policies", "risk-coverage", "escalation"]
    for fig in figures:
        assert f'id="fig-{fig}"' in a["html"], fig
    for kind in ("json", "terminal", "html"):
        if a[kind] != b[kind]:
            la, lb = a[kind].splitlines(), b[kind].splitlines()
            first = next((i for i, (x, y) in enumerate(zip(la, lb, strict=False)) if x != y),
                         min(len(la), len(lb)))
            raise AssertionError(f"{kind} reports differ at line {first + 1}:\n"
                                 f"  {la[first][:300] if first < len(la) else '<end>'}\n"
                                 f"  {lb[first][:300] if first < len(lb) else '<end>'}")
