"""Schema migrations: a store records its schema version, and opening an older store runs the
ordered steps it lacks, each in its own transaction, then records the new version. No step
drops a run: a step changes types, adds what is missing or rewrites values, and is safe to
run again (a step interrupted half-way is redone on the next open).

Two kinds of change need no step: a new table (created on open) and a new column (added on
open with its default, `add_missing_columns`), so code that only adds never bumps the version.
Anything else (a type, an index on an existing table, a value rewritten) is a step here.

Version 0 is a store from before versions were recorded (trialrun 0.1). A store whose
version is newer than this code's is refused in one line, never half-read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Integer, MetaData, Table, inspect, text
from sqlalchemy.engine import Connection, Engine

from trialrun.errors import StoreError

_VERSION_TABLE = "trialrun_schema"
_PG_LOCK = 0x7472_6961  # pg_advisory_lock key: one migrating process at a time ("tria")


@dataclass(frozen=True)
class Step:
    version: int  # the version a store has once this step ran
    what: str
    apply: Callable[[Connection], None]


def _seeds_64_bit(c: Connection) -> None:
    """Seeds are any 64-bit integer: a PostgreSQL store made before had INTEGER (32-bit)
    seeds and failed on seeds past 2^31 (SQLite's INTEGER is 64-bit already)."""
    if c.dialect.name != "postgresql":
        return
    kind = c.execute(text(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = 'episode' AND column_name = 'seed'")).scalar()
    if kind == "integer":
        c.execute(text("ALTER TABLE episode ALTER COLUMN seed TYPE BIGINT"))


def _declared_indexes(c: Connection) -> None:
    """Indexes the models declare on tables an older store already had (creating the tables
    creates their indexes; an existing table gains none by itself)."""
    from sqlmodel import SQLModel

    insp = inspect(c)
    for table in SQLModel.metadata.sorted_tables:
        if not insp.has_table(table.name):
            continue
        have = {ix["name"] for ix in insp.get_indexes(table.name)}
        for ix in table.indexes:
            if ix.name not in have:
                ix.create(c)


def _policy_labels(c: Connection) -> None:
    """Episodes stored before checkpoint policies were labelled carry no label: `never`."""
    if inspect(c).has_table("episode"):
        c.execute(text("UPDATE episode SET policy = 'never' WHERE policy IS NULL OR "
                       "policy = ''"))


STEPS: tuple[Step, ...] = (
    Step(1, "seeds are 64-bit integers", _seeds_64_bit),
    Step(2, "every declared index exists", _declared_indexes),
    Step(3, "every episode has a checkpoint-policy label", _policy_labels),
)
SCHEMA_VERSION = STEPS[-1].version


def _version_table(metadata: MetaData | None = None) -> Table:
    return Table(_VERSION_TABLE, metadata or MetaData(),
                 Column("version", Integer, nullable=False))


def stored_version(c: Connection) -> int | None:
    """The store's schema version: None for an empty database (no store yet), 0 for a store
    from before versions were recorded."""
    insp = inspect(c)
    if not insp.has_table("run"):
        return None
    if not insp.has_table(_VERSION_TABLE):
        return 0
    return c.execute(text(f"SELECT max(version) FROM {_VERSION_TABLE}")).scalar() or 0


def _set_version(c: Connection, version: int) -> None:
    _version_table().create(c, checkfirst=True)
    c.execute(text(f"DELETE FROM {_VERSION_TABLE}"))
    c.execute(text(f"INSERT INTO {_VERSION_TABLE} (version) VALUES (:v)"), {"v": version})


def check_readable(c: Connection, where: str) -> None:
    """A store opened read-only cannot be upgraded: refuse one this code cannot read."""
    version = stored_version(c)
    if version is None:
        raise StoreError(f"{where} holds no trialrun store (and it is read-only)")
    if version > SCHEMA_VERSION:
        raise _newer(version, where)
    missing = _missing_columns(c)
    if version == SCHEMA_VERSION and not missing:
        return
    lacks = f"schema {version}, this one reads {SCHEMA_VERSION}" if version < SCHEMA_VERSION \
        else f"it lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
    raise StoreError(f"the store {where} was written by an older trialrun ({lacks}) and is "
                     "read-only here: open it once where it is writable to upgrade it, or "
                     "read it with the older trialrun")


def _missing_columns(c: Connection) -> list[str]:
    """Columns the models have and the store lacks (added on open, when it can be written)."""
    from sqlmodel import SQLModel

    insp = inspect(c)
    missing = []
    for table in SQLModel.metadata.sorted_tables:
        if insp.has_table(table.name):
            have = {col["name"] for col in insp.get_columns(table.name)}
            missing += [f"{table.name}.{col.name}" for col in table.columns
                        if col.name not in have]
    return missing


def _newer(version: int, where: str) -> StoreError:
    return StoreError(f"the store {where} was written by a newer trialrun (schema {version}; "
                      f"this one knows up to {SCHEMA_VERSION}): upgrade trialrun to read it")


def upgrade(engine: Engine, metadata: MetaData, where: str) -> int | None:
    """Bring the store to SCHEMA_VERSION (a new store is made at it) and return the version
    it had (None: there was no store). One process at a time on PostgreSQL (an advisory
    lock); steps are idempotent, so a race between two SQLite processes redoes one."""
    with engine.connect() as c:
        if c.dialect.name == "postgresql":
            c.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
            c.commit()
        try:
            before = stored_version(c)
            c.commit()
            if before is not None and before > SCHEMA_VERSION:
                raise _newer(before, where)
            if before == SCHEMA_VERSION:  # the common case: only additive changes to check
                metadata.create_all(c)
                add_missing_columns(c, metadata)
                c.commit()
                return before
            metadata.create_all(c)
            add_missing_columns(c, metadata)
            c.commit()
            for step in STEPS:
                if before is not None and step.version <= before:
                    continue
                if before is not None:  # a new store is made at the current schema
                    step.apply(c)
                _set_version(c, step.version)
                c.commit()
            return before
        finally:
            if c.dialect.name == "postgresql":
                c.rollback()
                c.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
                c.commit()


def add_missing_columns(c: Connection, metadata: MetaData) -> None:
    """Additive migration: a store written by an older trialrun gains the new columns (as
    NULL/default), so old runs stay readable."""
    insp = inspect(c)
    for table in metadata.sorted_tables:
        if not insp.has_table(table.name):
            continue
        have = {col["name"] for col in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            ddl = col.type.compile(dialect=c.dialect)
            default = ""
            if col.default is not None and getattr(col.default, "is_scalar", False):
                value: Any = col.default.arg
                # TRUE/FALSE: PostgreSQL refuses an integer default for a boolean column.
                literal = str(value).upper() if isinstance(value, bool) else repr(value)
                default = f" DEFAULT {literal}"
            c.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {ddl}{default}'))
