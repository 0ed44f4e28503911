"""The store on a real PostgreSQL server (scripts/setup-postgres.sh; `.ci/run` starts one):
runs, reports, resume, the review queue and 64-bit seeds behave as on SQLite; two runs write
at once; the password never reaches the output."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import anyio
import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.helpers import RETAIL, run_source
from tests.test_cli import trialrun
from trialrun.runner import RunOptions, run_episodes
from trialrun.scenarios.loader import load_scenario
from trialrun.store import Store

URL_FILE = Path(os.environ.get("TRIALRUN_PG_DIR", "/tmp/trialrun-pg")) / "url"


@pytest.fixture(scope="module")
def server_url() -> str:
    if not URL_FILE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("no PostgreSQL on CI: .ci/run must start scripts/setup-postgres.sh")
        pytest.skip("no PostgreSQL server (run scripts/setup-postgres.sh)")
    return URL_FILE.read_text().strip()


@pytest.fixture
def pg(server_url: str):
    """A fresh database per test, dropped after it."""
    name = f"trialrun_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_run_is_stored_reported_and_resumed_as_on_sqlite(pg, tmp_path):
    store = Store(pg)
    summary = run_source(store, (RETAIL / "known_error_rates.yaml").read_text(), seeds=30)
    sqlite = Store(f"sqlite:///{tmp_path / 's.db'}")
    same = run_source(sqlite, (RETAIL / "known_error_rates.yaml").read_text(), seeds=30)
    # Same seeds, same episodes, whatever the store.
    key = lambda r: (str(r.key), r.success, r.final_digest)  # noqa: E731
    assert sorted(map(key, summary.results)) == sorted(map(key, same.results))
    [(run, agg)] = store.runs()
    assert agg["episodes"] == 30 and agg["successes"] == sum(r.success for r in same.results)
    episodes = store.episodes(run.id)
    back = store.load_episode(episodes[0].id)
    assert back.steps and back.key.scenario == summary.results[0].key.scenario
    out = trialrun("report", run.id, "--db", pg, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "success" in out.stdout
    assert pg.split(":")[2].split("@")[0] not in out.stdout + out.stderr  # no password


def test_seeds_beyond_32_bits_and_the_review_queue(pg):
    doc = yaml.safe_load((RETAIL / "cancel_pending.yaml").read_text())
    doc["agent"] = {"type": "scripted:retail"}
    doc["seeds"], doc["trials"] = [2**40 + 7], 1
    doc["checkpoints"] = {"policy": "before_irreversible", "human": {"type": "reviewer"}}
    store = Store(pg)
    first = run_source(store, yaml.safe_dump(doc))
    assert first.paused == 1 and store.get_run(first.run_id).status == "waiting for review"
    [item] = store.reviews(first.run_id, "pending")
    store.answer_review(item.id, True, "ana")
    with pytest.raises(Exception, match="already answered"):
        store.answer_review(item.id, False, "eve")
    done = anyio.run(lambda: run_episodes(store, [], resume=first.run_id,
                                          options=RunOptions(), keep_results=True))
    [result] = done.results
    assert result.success and result.key.seed == 2**40 + 7
    assert store.episodes(first.run_id)[0].seed == 2**40 + 7


def test_two_runs_write_to_one_database_at_once(pg):
    loaded = [load_scenario(RETAIL / "refund_in_window.yaml")]
    stores = [Store(pg), Store(pg)]

    async def both():
        async with anyio.create_task_group() as tg:
            for st in stores:
                tg.start_soon(lambda st=st: run_episodes(st, loaded,
                                                         options=RunOptions(seeds=40)))

    anyio.run(both)
    runs = stores[0].runs()
    assert len(runs) == 2 and all(agg["episodes"] == run.planned == 80 for run, agg in runs)


def test_an_older_store_gains_new_columns(pg):
    engine = create_engine(pg)
    with engine.begin() as c:  # a store from before forks and reviewers
        c.execute(text("CREATE TABLE run (id VARCHAR PRIMARY KEY, created_at VARCHAR NOT NULL, "
                       "status VARCHAR NOT NULL, targets VARCHAR NOT NULL, scenarios VARCHAR "
                       "NOT NULL, planned INTEGER NOT NULL, options VARCHAR NOT NULL)"))
        c.execute(text("INSERT INTO run VALUES ('old', '2026-01-01', 'complete', '[]', '{}', 0, "
                       "'{}')"))
    engine.dispose()
    store = Store(pg)
    assert store.get_run("old").status == "complete"
    run_source(store, (RETAIL / "refund_in_window.yaml").read_text(), seeds=2)


def test_a_0_1_store_with_32_bit_seeds_is_upgraded_and_reports_the_same(pg, tmp_path):
    """Migration, not only new columns: the seed column's type changes in place."""
    from sqlalchemy import Integer

    from tests.test_migrations import upgraded_run_reports_the_same

    store = upgraded_run_reports_the_same(f"sqlite:///{tmp_path / 'new.db'}", pg, tmp_path,
                                          seed_type=Integer)
    with store.engine.connect() as c:
        assert c.execute(text("SELECT data_type FROM information_schema.columns WHERE "
                              "table_name = 'episode' AND column_name = 'seed'")
                         ).scalar() == "bigint"
    doc = yaml.safe_load((RETAIL / "refund_in_window.yaml").read_text())
    doc["seeds"], doc["trials"] = [2**40 + 3], 1
    big = run_source(store, yaml.safe_dump(doc))
    assert [e.seed for e in store.episodes(big.run_id)] == [2**40 + 3]


def test_processes_opening_one_new_database_at_once_make_it_once(pg):
    """The schema is made and versioned under an advisory lock: no duplicate-type race."""
    import subprocess
    import sys

    code = "import sys; from trialrun.store import Store; Store(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, pg], stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    from trialrun.migrations import SCHEMA_VERSION

    with create_engine(pg).connect() as c:
        assert c.execute(text("SELECT version FROM trialrun_schema")).scalars().all() == [
            SCHEMA_VERSION]


def test_the_run_lock_on_postgres(pg):
    from trialrun.errors import RunBusy

    store = Store(pg)
    run = run_source(store, (RETAIL / "refund_in_window.yaml").read_text(), seeds=1)
    other = Store(pg)
    with store.lock_run(run.run_id):
        with pytest.raises(RunBusy, match=f"run {run.run_id} is busy: process {os.getpid()}"):
            other.lock_run(run.run_id).acquire()
    with other.lock_run(run.run_id):
        pass


def test_grouped_commits_store_every_episode_once_and_a_bad_one_alone_fails(pg):
    """Inside `batched()`, PostgreSQL inserts a group in one transaction, as SQLite does (one
    per episode held it to a few hundred a second); a key stored twice fails the run, and
    the rest of its group is stored, none twice."""
    from trialrun.plan import RunPlan
    from trialrun.scenarios.loader import load_scenario_source
    from trialrun.trajectory import EndReason, EpisodeResult

    store = Store(pg)
    run_id = store.create_run([], {}, 3, {})
    text_ = (RETAIL / "known_error_rates.yaml").read_text().replace("seeds: 20", "seeds: 3")
    keys = list(RunPlan.build([load_scenario_source(text_, "r.yaml")]).keys())
    results = [EpisodeResult(key=k, agent="a", end_reason=EndReason.finished, success=True)
               for k in keys]
    with pytest.raises(Exception, match="duplicate key"), store.batched(max_delay_s=60):
        store.save_episode(run_id, results[0])
        store.save_episode(run_id, results[1])
        # the first went at once (after a quiet spell); the second waits for its group
        assert len(store.episodes(run_id)) == 1
        store.save_episode(run_id, results[0])  # the same key again
        store.save_episode(run_id, results[2])
    assert sorted(e.key for e in store.episodes(run_id)) == sorted(str(k) for k in keys)
    store.engine.dispose()
