"""Schema migrations (issue 13): a store written by trialrun 0.1 (no schema version) is
upgraded step by step when opened, loses no run, and its runs report exactly as before; a
new store is made at the current version; a newer store is refused; the steps are safe to
run again. On SQLite here, and on a real PostgreSQL in test_store_postgres.py."""

from __future__ import annotations

import json
import sqlite3

import pytest
from sqlalchemy import create_engine, inspect

from tests.helpers import RETAIL, run_source
from tests.store_v0_1 import old_store
from tests.test_cli import trialrun
from trialrun.errors import StoreError
from trialrun.migrations import SCHEMA_VERSION, STEPS, stored_version, upgrade
from trialrun.store import Store


def _version(url: str) -> int | None:
    engine = create_engine(url)
    with engine.connect() as c:
        v = stored_version(c)
    engine.dispose()
    return v


def _report(run_id: str, url: str, tmp_path, name: str) -> dict:
    out = trialrun("report", run_id, "--db", url, "--json", str(tmp_path / name), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return json.loads((tmp_path / name).read_text())


def upgraded_run_reports_the_same(new_url: str, old_url: str, tmp_path, **schema) -> Store:
    """A run made today, copied into a 0.1 store at `old_url`: opening it upgrades it to the
    current version, and its report is the one the run had."""
    src = Store(new_url)
    run = run_source(src, (RETAIL / "known_error_rates.yaml").read_text(), seeds=12)
    before = _report(run.run_id, new_url, tmp_path, "before.json")
    old_store(old_url, new_url, run.run_id, **schema)
    assert _version(old_url) == 0  # a store from before versions
    store = Store(old_url)
    assert _version(old_url) == SCHEMA_VERSION
    assert _report(run.run_id, old_url, tmp_path, "after.json") == before
    assert len(store.episodes(run.run_id)) == 12 and store.get_run(run.run_id).owner is None
    more = run_source(store, (RETAIL / "refund_in_window.yaml").read_text(), seeds=2)
    assert {r.id for r, _ in store.runs()} == {run.run_id, more.run_id}
    return store


def test_a_0_1_store_is_upgraded_and_reports_the_same(tmp_path):
    upgraded_run_reports_the_same(f"sqlite:///{tmp_path / 'new.db'}",
                                  f"sqlite:///{tmp_path / 'old.db'}", tmp_path)


def test_an_index_missing_from_an_old_table_is_made(tmp_path):
    upgraded_run_reports_the_same(f"sqlite:///{tmp_path / 'new.db'}",
                                  f"sqlite:///{tmp_path / 'old.db'}", tmp_path,
                                  step_index=False)
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    assert "ix_step_episode_idx" in {ix["name"] for ix in inspect(engine).get_indexes("step")}
    engine.dispose()


def test_a_new_store_starts_at_the_current_version_and_steps_run_again_safely(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store(url)
    assert _version(url) == SCHEMA_VERSION == STEPS[-1].version
    assert [s.version for s in STEPS] == list(range(1, len(STEPS) + 1))  # ordered, no gaps
    engine = create_engine(url)
    with engine.begin() as c:  # every step again, on an up-to-date store: no change, no error
        for step in STEPS:
            step.apply(c)
    from sqlmodel import SQLModel

    assert upgrade(engine, SQLModel.metadata, url) == SCHEMA_VERSION
    engine.dispose()


def test_an_interrupted_upgrade_is_finished_on_the_next_open(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    src = Store(url)
    run = run_source(src, (RETAIL / "refund_in_window.yaml").read_text(), seeds=2)
    c = sqlite3.connect(tmp_path / "s.db")
    c.execute("UPDATE trialrun_schema SET version = 1")  # killed after step 1
    c.execute("UPDATE episode SET policy = ''")  # what step 3 repairs
    c.commit()
    c.close()
    store = Store(url)
    assert _version(url) == SCHEMA_VERSION
    assert {e.policy for e in store.episodes(run.run_id)} == {"never"}


def test_a_newer_store_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store(url)
    c = sqlite3.connect(tmp_path / "s.db")
    c.execute("UPDATE trialrun_schema SET version = ?", (SCHEMA_VERSION + 1,))
    c.commit()
    c.close()
    with pytest.raises(StoreError, match=f"newer trialrun \\(schema {SCHEMA_VERSION + 1}"):
        Store(url)
