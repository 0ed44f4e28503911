"""`trialrun diff`: two runs compared pair by pair. A planted regression at one node is found
at that node and nowhere else, with a paired test that rejects; two runs of one agent on
different seeds show no significant change."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import RETAIL, run_source
from trialrun.analysis.data import load_run
from trialrun.analysis.diff import diff_runs, holm, paired_ratio_delta

BASE = (RETAIL / "known_error_rates.yaml").read_text()


def _variant(resolve: float, seeds: str = "200") -> str:
    text = BASE.replace("params: {error_rates: {lookup_order: 0.05, resolve: 0.10}}",
                        f"params: {{error_rates: {{lookup_order: 0.05, resolve: {resolve}}}}}")
    assert text != BASE
    return text.replace("seeds: 20", f"seeds: {seeds}")


def test_a_planted_regression_at_one_node_is_found_there_and_the_paired_test_rejects(store):
    a = run_source(store, _variant(0.05)).run_id
    b = run_source(store, _variant(0.30)).run_id
    r = diff_runs(load_run(store, a), load_run(store, b))
    assert r.pairs == 200 and r.paired_by_task == 0 and r.only_a == r.only_b == 0
    # The same seeds draw the same numbers: B errs wherever A erred, and 25% more often.
    s = r.success
    assert s.newly_passing == 0 and s.newly_failing > 0
    assert s.mcnemar_p < 1e-6 and s.significant and s.delta < 0
    assert s.lo <= s.delta <= s.hi < 0
    nodes = {n.node: n for n in r.nodes}
    resolve = nodes["resolve"]
    assert resolve.significant and resolve.newly_wrong > 0 and resolve.newly_right == 0
    assert resolve.lo <= -0.25 <= resolve.hi  # the planted truth: 0.95 → 0.70
    assert [n.node for n in r.nodes if n.significant] == ["resolve"]
    assert nodes["lookup_order"].delta == 0 and nodes["lookup_order"].mcnemar_p == 1
    assert r.regressed
    # Newly failing cases name the episode to look at and where it first went wrong.
    case = r.newly_failing[0]
    assert case.failed_episode == case.episode_b and case.first_error_node == "resolve"
    assert len(r.newly_failing) == s.newly_failing
    assert any("resolve regressed" in f for f in r.findings)


def test_two_runs_on_different_seeds_show_no_significant_change(store):
    a = run_source(store, _variant(0.10)).run_id
    b = run_source(store, _variant(0.10, "[" + ", ".join(map(str, range(200, 400))) + "]"))
    r = diff_runs(load_run(store, a), load_run(store, b.run_id))
    # No seed in common: the episodes of each task are paired in order.
    assert r.pairs == 200 and r.paired_by_task == 200
    assert not r.success.significant and r.success.lo <= 0 <= r.success.hi
    assert not any(n.significant for n in r.nodes) and not r.regressed
    assert "No significant change in success" in r.findings[0]


def test_a_run_against_itself_changes_nothing(store):
    a = run_source(store, _variant(0.10, "30")).run_id
    d = load_run(store, a)
    r = diff_runs(d, d)
    assert r.success.delta == 0 and r.success.mcnemar_p == 1 and r.success.lo == 0 == r.success.hi
    assert all(x.delta == 0 for x in r.per_episode.values() if x.delta is not None)
    assert not r.newly_failing and not r.newly_passing


def test_paired_ratio_delta_recovers_a_known_difference():
    # 40 clusters of 5 pairs; A succeeds 3 of 5 in every cluster, B 4 of 5: +20 points.
    clusters = np.repeat([f"t{i}" for i in range(40)], 5)
    a = np.tile([1, 1, 1, 0, 0], 40)
    b = np.tile([1, 1, 1, 1, 0], 40)
    ones = np.ones(200)
    d = paired_ratio_delta(clusters, np.column_stack([ones, a, ones, b]))
    assert d.a == pytest.approx(0.6) and d.b == pytest.approx(0.8)
    assert d.delta == pytest.approx(0.2) and d.lo == d.hi == pytest.approx(0.2)


def test_holm_adjusts_step_down():
    # p = (0.01, 0.04, 0.03) with m = 3: 0.03, then max(0.03, 2·0.03) = 0.06, then 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_diff_command_terminal_json_html(tmp_path, store):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    from trialrun.store import Store

    s = Store(db)
    a = run_source(s, _variant(0.05, "60")).run_id
    b = run_source(s, _variant(0.40, "60")).run_id
    out = subprocess.run([sys.executable, "-m", "trialrun.cli",
                          "diff", a, b, "--db", db, "--json", str(tmp_path / "d.json"),
                          "--html", str(tmp_path / "d.html")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "newly failing" in out.stdout and "resolve" in out.stdout
    assert "trialrun show" in out.stdout
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["run_a"] == a and data["success"]["significant"]
    html = (tmp_path / "d.html").read_text()
    assert "resolve" in html and "<script" not in html
    bad = subprocess.run([sys.executable, "-m", "trialrun.cli",
                          "diff", a, "nope", "--db", db], capture_output=True, text=True,
                         cwd=tmp_path)
    assert bad.returncode == 2 and "no run 'nope'" in bad.stderr and "Traceback" not in bad.stderr
