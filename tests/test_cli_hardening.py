"""The command line under mistakes (issue 14): nothing a typo does loses data or ends a long
run in a traceback, ids are matched literally, and two identical runs report alike."""

from __future__ import annotations

import json

import pytest

from tests.helpers import RETAIL, run_scenarios
from tests.test_cli import trialrun
from trialrun.errors import NotFound
from trialrun.store import Store


def test_an_unwritable_report_path_stops_the_run_before_it_starts(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    for flag in ("--json", "--html", "--junit"):
        out = trialrun("run", str(RETAIL / "order_status.yaml"), "--no-progress", "--db", db,
                       flag, str(tmp_path / "missing" / "report.out"), cwd=tmp_path)
        assert out.returncode == 2 and "no directory" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert Store(db).runs() == []  # nothing ran
    assert not (tmp_path / "missing").exists()  # and no folder was made behind our back


def test_a_bad_fail_under_is_refused(tmp_path):
    out = trialrun("run", "retail", "--fail-under", "nan", "--db",
                   f"sqlite:///{tmp_path / 'r.db'}", cwd=tmp_path)
    assert out.returncode == 2 and "from 0 to 1" in out.stderr


def test_a_typo_in_a_run_id_truncates_no_export(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    keep = tmp_path / "feedback.jsonl"
    keep.write_text("yesterday's export\n")
    out = trialrun("export", "feedback", "nosuchrun", "-o", str(keep), "--db", db, cwd=tmp_path)
    assert out.returncode == 2 and "no run" in out.stderr
    assert keep.read_text() == "yesterday's export\n"


def test_run_ids_are_prefixes_taken_literally_and_ambiguity_is_named(store):
    runs = [run_scenarios(store, [RETAIL / "order_status.yaml"], seeds=1).run_id
            for _ in range(3)]
    for wildcard in ("%", "_", "%%"):
        with pytest.raises(NotFound, match="no run"):
            store.get_run(wildcard)
    with pytest.raises(NotFound, match="ambiguous") as e:
        store.get_run("")
    assert all(r in str(e.value) for r in runs)


def test_two_identical_runs_report_alike(tmp_path):
    reports = []
    for i in range(2):
        db = f"sqlite:///{tmp_path / f'r{i}.db'}"
        out = trialrun("run", str(RETAIL / "known_error_rates.yaml"), "--seeds", "40",
                       "--no-progress", "--db", db, "--json", str(tmp_path / f"{i}.json"),
                       cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        data = json.loads((tmp_path / f"{i}.json").read_text())
        for volatile in ("run_id", "wall_s", "latency", "cost_latency"):
            data.pop(volatile, None)
        reports.append(data)
    a, b = reports
    assert a["reliability"] == b["reliability"]  # the Markov chain's edges included
    assert a["nodes"] == b["nodes"] and a["success"] == b["success"]
