"""Stores that fail in one line and never lose a run (issue 14): a missing folder, random
bytes, a corrupted file, a read-only disk or immutable file, a full disk. Each is one line
on stderr with exit 2; a store in a read-only place still reads (runs, show, report); a run
stopped by a full disk keeps its finished episodes and resumes once there is room.

The read-only and full disks are real: small tmpfs mounts (root can mount here; the tests
skip where it cannot), and `chattr +i` for an immutable file (root ignores permission bits,
not the immutable flag)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import trialrun


def _mount(where: Path, *options: str) -> None:
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs",
                          str(where)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")


@pytest.fixture
def disk(tmp_path):
    """A mount point for a small tmpfs; unmounted after the test, whatever happens."""
    where = tmp_path / "disk"
    where.mkdir()
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "sqlalche" not in out.stderr, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def _run(store: Path, *more: str, cwd: Path) -> subprocess.CompletedProcess:
    return trialrun("run", "retail/refund_in_window", "--db", f"sqlite:///{store}",
                    "--no-progress", *more, cwd=cwd)


def _stored(store: Path) -> tuple[str, list[str]]:
    """The store's one run id and its episodes' keys (read with the sqlite3 module)."""
    c = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        [(run_id,)] = c.execute("SELECT id FROM run").fetchall()
        return run_id, [k for (k,) in c.execute("SELECT key FROM episode")]
    finally:
        c.close()  # an open file keeps the mount busy


def test_a_missing_folder(tmp_path):
    line = _one_line_error(trialrun("runs", "--db", f"sqlite:///{tmp_path}/nope/s.db",
                                    cwd=tmp_path))
    assert f"no directory {tmp_path}/nope (create it first)" in line
    assert not (tmp_path / "nope").exists()  # nothing made behind the user's back


def test_random_bytes_are_not_a_store(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(bytes(range(256)) * 40)
    line = _one_line_error(trialrun("runs", "--db", f"sqlite:///{junk}", cwd=tmp_path))
    assert "is not a trialrun store" in line and "move this file aside" in line
    assert junk.read_bytes() == bytes(range(256)) * 40  # left as it was


def test_a_corrupted_store(tmp_path):
    store = tmp_path / "s.db"
    assert _run(store, "--seeds", "20", cwd=tmp_path).returncode == 0
    run_id, _ = _stored(store)
    with store.open("r+b") as f:  # damage the pages after the schema
        f.seek(4096 * 2)
        f.write(b"\xa5" * 4096 * 6)
    line = _one_line_error(trialrun("report", run_id, "--db", f"sqlite:///{store}",
                                    cwd=tmp_path))
    assert "is corrupted" in line and ".recover" in line


def test_a_read_only_disk_reads_and_refuses_writes(tmp_path, disk):
    _mount(disk, "size=8m")
    store = disk / "s.db"
    assert _run(store, "--seeds", "4", cwd=tmp_path).returncode == 0
    run_id, keys = _stored(store)
    before = store.read_bytes()
    assert subprocess.run(["mount", "-o", "remount,ro", str(disk)]).returncode == 0
    db = f"sqlite:///{store}"
    listed = trialrun("runs", "--db", db, cwd=tmp_path)
    assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr
    shown = trialrun("show", run_id, "--db", db, cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout.count(f"{run_id}-") == len(keys)
    report = trialrun("report", run_id, "--db", db, "--json", str(tmp_path / "r.json"),
                      cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert json.loads((tmp_path / "r.json").read_text())["episodes"] == len(keys)
    line = _one_line_error(_run(store, cwd=tmp_path))
    assert "is read-only" in line and "Reading works" in line
    assert store.read_bytes() == before


def test_an_immutable_store_reads_and_refuses_writes(tmp_path):
    store = tmp_path / "s.db"
    assert _run(store, "--seeds", "3", cwd=tmp_path).returncode == 0
    run_id, keys = _stored(store)
    if subprocess.run(["chattr", "+i", str(store)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here")
    try:
        shown = trialrun("show", run_id, "--db", f"sqlite:///{store}", cwd=tmp_path)
        assert shown.returncode == 0 and shown.stdout.count(f"{run_id}-") == len(keys)
        line = _one_line_error(trialrun("run", "--resume", run_id, "--db", f"sqlite:///{store}",
                                        "--no-progress", cwd=tmp_path))
        assert "is read-only" in line
    finally:
        subprocess.run(["chattr", "-i", str(store)])
    assert _stored(store) == (run_id, keys)


def test_a_full_disk_loses_nothing_and_the_run_resumes(tmp_path, disk):
    _mount(disk, "size=600k")
    store = disk / "s.db"
    out = _run(store, "--seeds", "400", "--trials", "2", cwd=tmp_path)
    line = _one_line_error(out)
    assert "the disk is full" in line and "cannot rollback" not in line
    run_id, stored = _stored(store)
    assert f"trialrun run --resume {run_id}" in line
    assert 0 < len(stored) < 800
    # Room again: the run goes on, every planned episode stored once.
    assert subprocess.run(["mount", "-o", "remount,size=64m", str(disk)]).returncode == 0
    resumed = trialrun("run", "--resume", run_id, "--db", f"sqlite:///{store}", "--no-progress",
                       cwd=tmp_path)
    assert resumed.returncode in (0, 1), resumed.stderr
    _, keys = _stored(store)
    assert len(keys) == len(set(keys)) == 800 and set(stored) <= set(keys)


def test_a_store_from_a_newer_trialrun_is_refused(tmp_path):
    store = tmp_path / "s.db"
    assert _run(store, "--seeds", "1", cwd=tmp_path).returncode == 0
    c = sqlite3.connect(store)
    c.execute("UPDATE trialrun_schema SET version = 999")
    c.commit()
    c.close()
    line = _one_line_error(trialrun("runs", "--db", f"sqlite:///{store}", cwd=tmp_path))
    assert "newer trialrun (schema 999" in line and "upgrade trialrun" in line


@pytest.mark.parametrize(("url", "says"), [
    ("nosuchdb://u:hunter2@h/db", "no database driver for 'nosuchdb'"),
    ("not a url hunter2", "--db is not a database URL")])
def test_a_malformed_url(tmp_path, url, says):
    line = _one_line_error(trialrun("runs", "--db", url, cwd=tmp_path))
    assert says in line and "hunter2" not in line


def test_an_unreachable_server(tmp_path):
    line = _one_line_error(trialrun("runs", "--db", "postgresql://u:hunter2@127.0.0.1:9/db",
                                    cwd=tmp_path))
    assert "the store postgresql://u:***@127.0.0.1:9/db failed" in line


def test_an_old_store_in_a_read_only_place_says_how_to_upgrade_it(tmp_path):
    from tests.store_v0_1 import old_store

    new, old = tmp_path / "new.db", tmp_path / "old.db"
    assert _run(new, "--seeds", "2", cwd=tmp_path).returncode == 0
    run_id, keys = _stored(new)
    old_store(f"sqlite:///{old}", f"sqlite:///{new}", run_id)
    if subprocess.run(["chattr", "+i", str(old)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here")
    try:
        line = _one_line_error(trialrun("runs", "--db", f"sqlite:///{old}", cwd=tmp_path))
        assert "written by an older trialrun (schema 0" in line and "read-only here" in line
    finally:
        subprocess.run(["chattr", "-i", str(old)])
    listed = trialrun("runs", "--db", f"sqlite:///{old}", cwd=tmp_path)  # writable: upgraded
    assert listed.returncode == 0 and run_id in listed.stdout
