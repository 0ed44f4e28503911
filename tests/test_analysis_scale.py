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
        db.execute("UPDATE episode SET step_arrays = NULL")  # as stored before packing
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


def unpack(db_path: Path | str, where: str = "1") -> int:
    """Episodes made as stored before `episode.step_arrays` existed (or by an importer):
    their packed steps removed. How many."""
    with sqlite3.connect(db_path) as db:
        return db.execute(f"UPDATE episode SET step_arrays = NULL WHERE {where}").rowcount


def report_json(store: Store, run_id: str) -> str:
    return summarize(load_run(store, run_id)).model_dump_json()


def loaded_alike(a, b) -> None:
    for name, x in vars(a).items():
        y = getattr(b, name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, name
            assert list(x) == list(y) if x.dtype == object else np.array_equal(
                x, y, equal_nan=True), name
        elif name != "_codes":
            assert x == y, name


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A run with every kind of step (errors, checkpoints, asks, unconfident finishes)."""
    path = tmp_path_factory.mktemp("packed") / "runs.db"
    store = Store(f"sqlite:///{path}")
    run = run_scenarios(store, [RETAIL / "known_error_rates.yaml",
                                RETAIL / "ambiguous_refund.yaml",
                                RETAIL / "clear_always_ask.yaml"], seeds=20, trials=2)
    return path, run.run_id


def copy_store(src: Path, dst: Path) -> Store:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return Store(f"sqlite:///{dst}")


def test_episode_ids_ascend_within_a_process_and_a_forked_child_draws_its_own():
    """Ascending ids keep inserts at the end of the id indexes (random ids made them cost
    twice as much at 60,000 episodes); a child forked mid-run must not repeat its parent's."""
    from trialrun.store import _episode_ids

    ids = [_episode_ids.next() for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(write, _episode_ids.next().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    mine = _episode_ids.next()
    assert child[:12] != mine[:12] and child not in ids and mine > ids[-1]


def test_packed_steps_analyse_exactly_as_the_step_table(packed, tmp_path):
    """The same run with its steps packed, unpacked, half and half, and read from the step
    table regardless: the same loaded arrays and the same summary, byte for byte."""
    path, run_id = packed
    store = Store(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        n, with_packed = db.execute(
            "SELECT count(*), count(step_arrays) FROM episode").fetchone()
    assert n == with_packed == 120  # every episode saved packs its steps
    reference = load_run(store, run_id)
    want = summarize(reference).model_dump_json()
    store._READ_PACKED = False  # the step table alone
    loaded_alike(load_run(store, run_id), reference)
    assert report_json(store, run_id) == want
    old = copy_store(path, tmp_path / "old.db")
    assert unpack(tmp_path / "old.db") == 120
    loaded_alike(load_run(old, run_id), reference)
    assert report_json(old, run_id) == want
    mixed = copy_store(path, tmp_path / "mixed.db")
    assert 0 < unpack(tmp_path / "mixed.db", "rowid % 3 = 0") < 120
    mixed._ARRAY_CHUNK = 7  # chunks of packed and unpacked episodes, and of either alone
    with sqlite3.connect(tmp_path / "mixed.db") as db:
        db.execute("UPDATE episode SET step_arrays = NULL WHERE rowid BETWEEN 8 AND 21")
    loaded_alike(load_run(mixed, run_id), reference)
    assert report_json(mixed, run_id) == want
    # the generic path (any other database) mixes them alike
    e, s = generic(mixed, run_id, ["id"], list(data_step_cols()))
    e2, s2 = store.run_arrays(run_id, ["id"], list(data_step_cols()))
    same(e, e2)
    same(s, s2)


def data_step_cols() -> list[str]:
    from trialrun.analysis.data import _STEP_COLS

    return _STEP_COLS


def test_packed_steps_of_another_version_are_read_from_the_step_table(packed, tmp_path):
    """A store written by a later trialrun (another layout version): those episodes' steps
    come from the step table, the source of truth, not from bytes misread."""
    path, run_id = packed
    want = report_json(Store(f"sqlite:///{path}"), run_id)
    store = copy_store(path, tmp_path / "later.db")
    with sqlite3.connect(tmp_path / "later.db") as db:
        db.execute("UPDATE episode SET step_arrays = x'ff' || substr(step_arrays, 2) "
                   "WHERE rowid % 2 = 0")
        db.execute("UPDATE episode SET step_arrays = x'' WHERE rowid % 5 = 0")
    assert report_json(store, run_id) == want


def test_a_store_from_before_packing_gains_the_column_and_reads_the_same(packed, tmp_path):
    path, run_id = packed
    want = report_json(Store(f"sqlite:///{path}"), run_id)
    copy_store(path, tmp_path / "v0.db").engine.dispose()
    with sqlite3.connect(tmp_path / "v0.db") as db:
        db.execute("ALTER TABLE episode DROP COLUMN step_arrays")
    store = Store(f"sqlite:///{tmp_path / 'v0.db'}")  # opening adds the column (NULL)
    assert report_json(store, run_id) == want
    # new episodes saved into it are packed, the old ones read from the step table
    more = run_scenarios(store, [RETAIL / "refund_in_window.yaml"], seeds=3)
    with sqlite3.connect(tmp_path / "v0.db") as db:
        n, packed_n = db.execute("SELECT count(*), count(step_arrays) FROM episode "
                                 "WHERE run_id = ?", (more.run_id,)).fetchone()
        assert n == packed_n > 0
        assert db.execute("SELECT count(step_arrays) FROM episode WHERE run_id = ?",
                          (run_id,)).fetchone()[0] == 0
    store._READ_PACKED = False
    plain = report_json(store, more.run_id)
    store._READ_PACKED = True
    assert report_json(store, more.run_id) == plain


def test_steps_that_do_not_fit_the_packing_are_left_to_the_step_table():
    from trialrun.store import _STEP_COLS, PACK_VERSION, pack_steps

    def step(**kw):
        x = dict(episode_id="e", idx=0, node="resolve", kind="tool", tool=None, passed=None,
                 help_needed=False, irreversible=True, reviewed=False, approved=None,
                 confidence=None, sim_time=1.5, wall_us=7, digest="", decision="{}",
                 result=None, checkpoint=None, grades="[]")
        return tuple({**x, **kw}[c] for c in _STEP_COLS)

    blob = pack_steps([step(), step(idx=1, node="reply", passed=True, confidence=0.25)])
    assert blob is not None and blob[0] == PACK_VERSION
    assert pack_steps([step(node="a\x1fb")]) is None  # a separator in a name
    assert pack_steps([step(kind="a\x1eb")]) is None
    assert pack_steps([step(idx=2**40)]) is None  # out of the record's range
    assert pack_steps([]) is not None  # an episode without steps packs (to nothing)


def test_steps_in_runs_are_ordered_as_a_sort_would():
    """The run-gathering order of steps (`_by_runs`) is the stable (episode, index) sort,
    and declines when an episode's steps are split or out of order."""
    from trialrun.store import _by_runs

    rng = np.random.default_rng(1)
    for _ in range(50):
        lengths = rng.integers(0, 6, 40)
        eps = rng.permutation(40)
        pos = np.repeat(eps, lengths)
        idx = np.concatenate([np.sort(rng.integers(0, 4, k)) for k in lengths])
        if not len(pos):
            continue
        got = _by_runs(pos, idx)
        want = np.lexsort((idx, pos))
        assert np.array_equal(np.arange(len(pos)) if got is None else got, want)
    assert _by_runs(np.array([0, 1, 0]), np.array([0, 0, 1])) is False  # split episode
    assert _by_runs(np.array([1, 1, 0]), np.array([1, 0, 0])) is False  # out of order
    assert _by_runs(np.array([0, 0, 1]), np.array([0, 1, 0])) is None  # already sorted


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
        # packed steps (saved on PostgreSQL too) read as on SQLite, and as the step table
        a = pg.run_arrays(run.run_id, ["seed"], data_step_cols())[1]
        b = lite.run_arrays(other.run_id, ["seed"], data_step_cols())[1]
        a.pop("wall_us"), b.pop("wall_us")
        same(a, b)
        with pg.engine.begin() as c:
            n, packed_n = c.execute(text("SELECT count(*), count(step_arrays) FROM episode "
                                         "WHERE run_id = :r"), {"r": run.run_id}).one()
        assert n == packed_n == 40
        want = report_json(pg, run.run_id)
        pg._READ_PACKED = False
        assert report_json(pg, run.run_id) == want
        pg._READ_PACKED = True
        with pg.engine.begin() as c:  # old rows, and rows of a later layout, among them
            c.execute(text("UPDATE episode SET step_arrays = NULL WHERE seed % 3 = 0"))
            c.execute(text("UPDATE episode SET step_arrays = '\\xff'::bytea "
                           "WHERE seed % 3 = 1"))
            c.execute(text("UPDATE episode SET step_arrays = ''::bytea WHERE seed % 5 = 0"))
        assert report_json(pg, run.run_id) == want
        pg.engine.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
