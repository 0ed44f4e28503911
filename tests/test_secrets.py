"""Secrets never printed (issue 14): the database password and the model API key appear in
no output of any command — the run line, `runs`, `show`, reports (terminal, JSON, HTML,
JUnit), the review queue, feedback exports, errors of a store that refuses the password or
does not exist — nor in what the store keeps. Run against a real PostgreSQL with a password
(scripts/setup-postgres.sh) and an OpenAI-compatible agent on loopback (tests/fake_openai.py)
with a key in the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.fake_openai import FakeOpenAI
from tests.helpers import RETAIL
from tests.test_openai_agent import HAPPY, NODE_MAP
from tests.test_store_postgres import pg, server_url  # noqa: F401 - fixtures
from trialrun.secrets import mask, mask_url

KEY = "sk-test-Zq8rW3nP0vK7yLm2"


def test_mask_hides_passwords_and_keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert mask_url("postgresql+psycopg://u:p%40ss@h:5/db") == "postgresql+psycopg://u:***@h:5/db"
    said = mask(f"postgresql://u:p@ss@h/db password=hunter2 Bearer {KEY} ?api_key=abc123 "
                f"key {KEY}")
    for secret in ("p@ss", "hunter2", KEY, "abc123"):
        assert secret not in said
    assert mask("tokens: 12, max_tokens=40, sqlite:///x.db") == \
        "tokens: 12, max_tokens=40, sqlite:///x.db"  # nothing else is touched


def _scenario(tmp_path: Path, fake: FakeOpenAI, reviewer: bool) -> Path:
    doc = yaml.safe_load((RETAIL / "refund_in_window.yaml").read_text())
    doc["agent"] = {"type": "openai", "params": {
        "base_url": fake.base_url, "model": "m", "node_map": NODE_MAP, "backoff_s": 0.001,
        "max_backoff_s": 0.005, "timeout_s": 2.0}}
    doc["seeds"], doc["trials"] = 3, 1
    if reviewer:
        doc["checkpoints"] = {"policy": "before_irreversible", "human": {"type": "reviewer"}}
    path = tmp_path / ("review.yaml" if reviewer else "scenario.yaml")
    path.write_text(yaml.safe_dump(doc))
    return path


def test_no_command_prints_the_password_or_the_key(pg, tmp_path):  # noqa: F811
    password = make_url(pg).password
    assert password and len(password) >= 8
    env = {**os.environ, "OPENAI_API_KEY": KEY, "TRIALRUN_DB": pg}
    outputs: list[str] = []

    def tr(*args: str, ok: tuple[int, ...] = (0, 1)) -> str:
        out = subprocess.run([sys.executable, "-m", "trialrun.cli", *args], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=300)
        outputs.append(f"{out.stdout}\n{out.stderr}")
        assert out.returncode in ok, mask(f"$ {' '.join(args)}\n{outputs[-1]}")
        return out.stdout + out.stderr

    with FakeOpenAI() as fake:
        fake.script("m", HAPPY)
        fake.inject("m", "500", ("400", "bad request"))  # errors that name the endpoint
        tr("run", str(_scenario(tmp_path, fake, False)), "--db", pg, "--no-progress",
           "--json", "r.json", "--html", "r.html", "--junit", "j.xml")
        run_id = _first(pg, "SELECT id FROM run ORDER BY created_at DESC, id")
        tr("runs", "--db", pg)
        tr("runs")  # the URL from TRIALRUN_DB
        shown = tr("show", run_id, "--db", pg)
        episode = next(w for w in shown.split() if w.startswith(f"{run_id}-"))
        tr("show", episode, "--db", pg)
        tr("report", run_id, "--db", pg, "--json", "r2.json")
        tr("export", "feedback", run_id, "--db", pg, "-o", "f.jsonl")
        tr("replay", episode, "--db", pg)
        tr("show", "nosuchrun", "--db", pg, ok=(2,))
        tr("run", "--resume", "nosuchrun", "--db", pg, ok=(2,))
        # The review queue's hint names the store to resume in.
        tr("run", str(_scenario(tmp_path, fake, True)), "--db", pg, "--no-progress")
        tr("review", "list", "--db", pg)
        item = _first(pg, "SELECT id FROM review WHERE status = 'pending' ORDER BY id")
        said = tr("review", "approve", item, "--db", pg)
        assert "--db postgresql+psycopg://trialrun:***@" in said.replace("\n", "")
    # Stores that refuse: a wrong password, a database that does not exist, no server.
    u = make_url(pg)
    wrong = u.set(password="Wr0ngPassw0rd-x").render_as_string(hide_password=False)
    tr("runs", "--db", wrong, ok=(2,))
    tr("runs", "--db", u.set(database="nosuchdb").render_as_string(hide_password=False),
       ok=(2,))
    tr("runs", "--db", u.set(port=9).render_as_string(hide_password=False), ok=(2,))
    files = [p.read_text(errors="replace") for p in tmp_path.iterdir() if p.is_file()
             and p.suffix in (".json", ".html", ".xml", ".jsonl")]
    assert len(files) == 5
    everything = "\n".join(outputs + files + [_store_text(pg)])
    assert "Traceback" not in "\n".join(outputs)
    # Named, not shown: a failure here must not print the secret either.
    secrets = {"password": password, "wrong password": "Wr0ngPassw0rd-x", "API key": KEY}
    assert [name for name, value in secrets.items() if value in everything] == []
    assert "***@" in everything  # the URL was printed, masked


def _first(url: str, query: str) -> str:
    engine = create_engine(url)
    with engine.connect() as c:
        value = c.execute(text(query)).scalar()
    engine.dispose()
    assert value
    return value


def _store_text(url: str) -> str:
    """Every value the store keeps, as text."""
    engine = create_engine(url)
    with engine.connect() as c:
        rows = [str(r) for t in ("run", "episode", "step", "review")
                for r in c.execute(text(f"SELECT * FROM {t}"))]
    engine.dispose()
    assert rows
    return "\n".join(rows)


@pytest.mark.parametrize("args", [["runs"], ["show", "abc"], ["report", "abc"]])
def test_a_sqlite_url_with_a_password_like_query_is_masked_in_errors(tmp_path, args):
    out = subprocess.run([sys.executable, "-m", "trialrun.cli", *args, "--db",
                          "postgresql://u:Sup3rSecret99@127.0.0.1:9/x"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Sup3rSecret99" not in out.stdout + out.stderr
    assert "u:***@127.0.0.1:9/x" in out.stderr
