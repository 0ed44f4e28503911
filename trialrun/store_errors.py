"""Store faults as one line: what is wrong with the store and what to do about it.

A database error reaches the command line from anywhere a run writes (an episode's commit in
a worker, the run's status at the end) and often wrapped: in a task group's exception group,
or behind a second error (a ROLLBACK after SQLite already rolled back a full disk's
transaction says "cannot rollback", hiding "database or disk is full"). `store_fault` walks
all of it, picks the error that says what is wrong, and words it for the user.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from trialrun.errors import StoreError
from trialrun.secrets import mask

# SQLite result codes, most telling first: the one that names the cause wins.
_SQLITE_RANK = ("SQLITE_FULL", "SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_READONLY",
                "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_IOERR", "SQLITE_BUSY", "SQLITE_LOCKED")
_BY_TEXT = {  # messages of drivers or versions that give no result code
    "database or disk is full": "SQLITE_FULL", "file is not a database": "SQLITE_NOTADB",
    "database disk image is malformed": "SQLITE_CORRUPT",
    "readonly database": "SQLITE_READONLY", "unable to open database file": "SQLITE_CANTOPEN",
    "disk i/o error": "SQLITE_IOERR", "database is locked": "SQLITE_BUSY",
}


def _leaves(exc: BaseException, seen: set[int] | None = None) -> Iterator[BaseException]:
    """Every exception in `exc`: group members, causes and contexts, and SQLAlchemy's
    wrapped driver error."""
    seen = set() if seen is None else seen
    if id(exc) in seen:
        return
    seen.add(id(exc))
    yield exc
    for sub in getattr(exc, "exceptions", ()) or ():
        yield from _leaves(sub, seen)
    for nxt in (getattr(exc, "orig", None), exc.__cause__, exc.__context__):
        if isinstance(nxt, BaseException):
            yield from _leaves(nxt, seen)


def _sqlite_code(e: BaseException) -> str | None:
    if not isinstance(e, sqlite3.Error):
        return None
    base = "_".join((getattr(e, "sqlite_errorname", "") or "").split("_")[:2])  # no _WRITE
    if base in _SQLITE_RANK:
        return base
    text = str(e).lower()
    return next((code for needle, code in _BY_TEXT.items() if needle in text), None)


def _is_db_error(e: BaseException) -> bool:
    if isinstance(e, sqlite3.Error):
        return True
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return False
    if isinstance(e, SQLAlchemyError):
        return True
    mod = type(e).__module__ or ""
    return mod.startswith(("psycopg", "psycopg2", "pymysql", "asyncpg"))


_opened: list[tuple[str, str]] = []  # (url, masked url) of the stores this process opened


def remember(url: str, safe_url: str) -> None:
    """Note a store this process opened: a fault that reaches the command line from deep in
    a run is worded with its path (the driver's error does not carry it)."""
    if (url, safe_url) not in _opened:
        _opened.append((url, safe_url))


def fault_of_process(exc: BaseException) -> StoreError | None:
    """`store_fault` for the store this process opened last (None: not a store fault)."""
    url, safe = _opened[-1] if _opened else ("", "the store")
    return store_fault(exc, url, safe)


def bad_url(url: str, exc: BaseException) -> str:
    """The line for a --db that SQLAlchemy cannot use. An unparsable one is not echoed: what
    part of it is a password cannot be known."""
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
    except Exception:  # noqa: BLE001
        return ("--db is not a database URL: expected e.g. sqlite:///trialrun.db or "
                "postgresql+psycopg://user@host/db")
    if type(exc).__name__ == "NoSuchModuleError" or isinstance(exc, ImportError):
        return (f"--db {u.render_as_string(hide_password=True)}: no database driver for "
                f"{u.drivername!r} is installed (PostgreSQL: pip install 'trialrun[postgres]')")
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return (f"--db {u.render_as_string(hide_password=True)} is not a usable database URL: "
            f"{mask(first)}")


def fault_code(exc: BaseException) -> str | None:
    """The most telling SQLite result code in `exc` (e.g. SQLITE_READONLY), or None."""
    codes = [c for e in _leaves(exc) if (c := _sqlite_code(e)) is not None]
    return min(codes, key=_SQLITE_RANK.index) if codes else None


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (None: another database, or in memory)."""
    return _sqlite_path(url)


def _sqlite_path(url: str) -> Path | None:
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
    except Exception:  # noqa: BLE001
        return None
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    db = u.database
    if db.startswith("file:"):  # a URI: file:PATH?mode=ro
        db = db[5:].split("?", 1)[0]
    return Path(db)


def describe(code: str, url: str, safe_url: str) -> str:
    """The line for an SQLite fault: what is wrong with the store and what to do."""
    path = _sqlite_path(url)
    where = str(path) if path is not None else safe_url
    folder = path.parent if path is not None and str(path.parent) else Path(".")
    if code == "SQLITE_FULL":
        return (f"the store {where} cannot grow: the disk is full (database or disk is full). "
                f"Free space on {folder}")
    if code == "SQLITE_NOTADB":
        return (f"{where} is not a trialrun store: it is not an SQLite database (file is not a "
                "database). Point --db at the store, or move this file aside")
    if code == "SQLITE_CORRUPT":
        return (f"the store {where} is corrupted (database disk image is malformed). Restore "
                f"it from a backup, or salvage it with `sqlite3 {where} .recover`")
    if code == "SQLITE_READONLY":
        return (f"the store {where} is read-only (attempt to write a readonly database). "
                "Reading works (runs, show, report); to run, make it writable or copy it "
                "somewhere writable")
    if code in ("SQLITE_CANTOPEN", "SQLITE_PERM"):
        if path is not None and not folder.is_dir():
            return f"cannot open the store {where}: no directory {folder} (create it first)"
        if path is not None and path.is_dir():
            return f"cannot open the store {where}: it is a directory"
        if path is not None and not path.exists():
            return (f"cannot create the store {where}: {folder} is not writable. "
                    "Choose a writable place with --db")
        return (f"cannot open the store {where}: permission denied or a read-only location "
                "(unable to open database file). Check the file's and its folder's "
                "permissions")
    if code == "SQLITE_IOERR":
        return f"the store {where} could not be read or written (disk I/O error): check the disk"
    if code in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return (f"the store {where} stayed locked by another process (database is locked). "
                "Try again when it is done")
    return f"the store {where} failed: {code}"


def store_fault(exc: BaseException, url: str, safe_url: str | None = None) -> StoreError | None:
    """The one-line StoreError for a database fault anywhere in `exc` (None: `exc` holds no
    database error, so it is not the store's)."""
    if isinstance(exc, StoreError):
        return exc
    safe_url = safe_url or mask(url)
    leaves = list(_leaves(exc))
    mine = next((e for e in leaves if isinstance(e, StoreError)), None)
    if mine is not None:
        return mine
    coded = [(c, e) for e in leaves if (c := _sqlite_code(e)) is not None]
    if coded:
        code, _ = min(coded, key=lambda ce: _SQLITE_RANK.index(ce[0]))
        return StoreError(mask(describe(code, url, safe_url)))
    db_errors = [e for e in leaves if _is_db_error(e)]
    if not db_errors:
        return None
    driver = next((e for e in db_errors if not _is_sqlalchemy_wrapper(e)), db_errors[0])
    first = (str(driver).strip().splitlines() or [type(driver).__name__])[0]
    hint = next((h for needle, h in _SERVER_HINTS if needle in first.lower()), "")
    return StoreError(mask(f"the store {safe_url} failed: {first}{hint}"))


_SERVER_HINTS = (  # what to do about a database server's usual refusals
    ("password authentication failed", ". Check the user and password in --db"),
    ("does not exist", ". Create it first (e.g. createdb), or fix the name in --db"),
    ("connection refused", ". Is the server running and listening there?"),
    ("could not translate host name", ". Check the host in --db"),
    ("failed to resolve host", ". Check the host in --db"),
    ("timeout expired", ". The server did not answer in time: check the host and port"),
)


def _is_sqlalchemy_wrapper(e: BaseException) -> bool:
    return type(e).__module__.startswith("sqlalchemy") and getattr(e, "orig", None) is not None


def sqlite_wal_exists(path: Path) -> bool:
    """A write-ahead log with content: reading the store read-only must see it."""
    wal = Path(f"{path}-wal")
    return wal.exists() and os.path.getsize(wal) > 0
