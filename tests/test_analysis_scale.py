"""Whole runs read as columns (`Store.run_arrays`, `load_run`): the same arrays whichever
way the store reads them, in key order whatever the episode ids, NULLs kept apart from
values, and text that would break the fast path read the slow way. Speed is measured in
bench/bench_analysis.py, never here."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import RETAIL, run_scenarios
from trialrun.analysis.data import load_run
from trialrun.analysis.summary import summarize
from trialrun.store import Store

EPISODE_COLS = ["id", "scenario", "task", "seed", "trial", "agent", "policy", "success",
                "wall_ms", "first_error_step", "first_error_node", "ambiguous", "end_note"]
STEP_COLS = ["idx", "node", "kind", "passed", "approved", "confidence", "sim_time", "wall_us",
             "tool"]


def same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, list) or x.dtype.kind == "O":
            assert list(x) == list(y), k
        else:
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), k


def generic(store: Store, run_id: str, *cols: list[str]) -> tuple[dict, dict]:
    """`run_arrays` through the path every other database takes (rows fetched): the fast
    path switched off, as when it declines."""
    orig = store._sqlite_arrays
    store._sqlite_arrays = lambda *a: None  # type: ignore[method-assign]
    try:
        return store.run_arrays(run_id, *cols)
    finally:
        store._sqlite_arrays = orig  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('scale') / 'runs.db'}")
    run = run_scenarios(store, [RETAIL / "known_error_rates.yaml",
                                RETAIL / "ambiguous_refund.yaml"], seeds=30, trials=2)
    return store, run.run_id


def test_the_fast_path_reads_what_the_rows_hold(stored):
    store, run_id = stored
    fast = store.run_arrays(run_id, EPISODE_COLS, STEP_COLS)
    slow = generic(store, run_id, EPISODE_COLS, STEP_COLS)
    same(fast[0], slow[0])
    same(fast[1], slow[1])
    e, s = fast
    assert len(e["id"]) == 120 and len(s["idx"]) == int(
        sqlite3.connect(store.engine.url.database).execute(
            "SELECT count(*) FROM step").fetchone()[0])
    # NULLs stay apart: no confidence (finishing) and no tool are NULL, not 0 or ""
    assert np.isnan(s["confidence"]).any() and not np.isnan(s["confidence"]).all()
    assert None in set(s["tool"]) and len(set(s["tool"]) - {None}) > 1
    assert (s["approved"] == -1).any() and set(s["passed"]) <= {-1, 0, 1}
    assert (s["passed"] == 0).any()
    assert (e["first_error_step"] == Store.NULL_INT).any() and None in set(e["first_error_node"])
    # key order, and steps by episode then index
    keys = list(zip(e["scenario"], e["task"], e["seed"], e["trial"], strict=True))
    assert keys == sorted(keys)
    order = np.lexsort((s["idx"], s["episode"]))
    assert np.array_equal(order, np.arange(len(order)))
    # each step belongs to the episode the row says
    rows = dict(sqlite3.connect(store.engine.url.database).execute(
        "SELECT id, n_steps FROM episode").fetchall())
    counts = np.bincount(s["episode"], minlength=len(e["id"]))
    assert [rows[i] for i in e["id"]] == counts.tolist()


def test_codes_name_the_distinct_values(stored):
    store, run_id = stored
    e, s = store.run_arrays(run_id, ["agent"], ["node"], codes=frozenset(["node"]))
    plain = store.run_arrays(run_id, ["agent"], ["node"])[1]["node"]
    assert s["node"].dtype == np.int32
    assert [s["node.values"][c] for c in s["node"]] == list(plain)


def test_text_holding_the_separator_is_read_the_slow_way(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    run = run_scenarios(store, [RETAIL / "refund_in_window.yaml"], seeds=4)
    with sqlite3.connect(tmp_path / "runs.db") as db:
        db.execute("UPDATE step SET node = 'res\x1eolve' WHERE node = 'resolve'")
    e, s = store.run_arrays(run.run_id, ["id"], ["node"])
    assert "res\x1eolve" in set(s["node"])
    same((e, s)[1], generic(store, run.run_id, ["id"], ["node"])[1])


def test_the_analysis_does_not_depend_on_the_ids_or_the_storage_order(tmp_path):
    """The same episodes stored under other ids, in reverse: the same arrays and summary."""
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    run = run_scenarios(store, [RETAIL / "known_error_rates.yaml"], seeds=40, trials=2)
    before = load_run(store, run.run_id)
    db = sqlite3.connect(tmp_path / "runs.db")
    cols = [r[1] for r in db.execute("PRAGMA table_info(episode)")]
    rows = db.execute(f"SELECT {', '.join(cols)} FROM episode ORDER BY rowid DESC").fetchall()
    at = cols.index("id")
    with db:
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute("DELETE FROM episode")
        for row in rows:
            new = f"{run.run_id}-{os.urandom(8).hex()}"
            db.execute("UPDATE step SET episode_id = ? WHERE episode_id = ?", (new, row[at]))
            db.execute(f"INSERT INTO episode ({', '.join(cols)}) VALUES "
                       f"({', '.join('?' * len(cols))})", (*row[:at], new, *row[at + 1:]))
    after = load_run(store, run.run_id)
    for name in ("scenario", "task", "seed", "trial", "success", "first_error_step",
                 "s_ep", "s_idx", "s_node", "s_passed", "s_sim", "s_kind"):
        x, y = getattr(before, name), getattr(after, name)
        assert list(x) == list(y) if x.dtype == object else np.array_equal(
            x, y, equal_nan=True), name
    assert summarize(before).model_dump_json() == summarize(after).model_dump_json()


URL_FILE = Path(os.environ.get("TRIALRUN_PG_DIR", "/tmp/trialrun-pg")) / "url"


@pytest.mark.skipif(not URL_FILE.exists(), reason="no PostgreSQL server "
                    "(scripts/setup-postgres.sh)")
def test_postgresql_reads_the_same_arrays(stored):
    """The generic path on a real PostgreSQL: a run copied there reads as on SQLite."""
    import uuid

    from sqlalchemy import create_engine, text

    from tests.helpers import run_scenarios as run_again

    server = URL_FILE.read_text().strip()
    name = f"trialrun_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        pg = Store(server.rsplit("/", 1)[0] + f"/{name}")
        run = run_again(pg, [RETAIL / "known_error_rates.yaml"], seeds=20, trials=2)
        lite = Store(f"sqlite:///{Path(stored[0].engine.url.database).parent / 'pg.db'}")
        other = run_again(lite, [RETAIL / "known_error_rates.yaml"], seeds=20, trials=2)
        a = pg.run_arrays(run.run_id, EPISODE_COLS[1:], STEP_COLS)
        b = lite.run_arrays(other.run_id, EPISODE_COLS[1:], STEP_COLS)
        for part in (0, 1):  # wall times are measured, the rest is the same
            for k in ("wall_ms", "wall_us"):
                a[part].pop(k, None)
                b[part].pop(k, None)
            same(a[part], b[part])
        pg.engine.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
