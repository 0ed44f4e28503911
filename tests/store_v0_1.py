"""The store schema of trialrun 0.1, before schema versions (copied from its store.py): the
tables an existing user's store has. `old_store` builds one and fills it with the rows of a
run made by today's trialrun, so a migration test can compare the two reports.

`seed_type=Integer` gives the PostgreSQL store of before 64-bit seeds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    column,
    create_engine,
    select,
    table,
)


def metadata(seed_type: Any = BigInteger, step_index: bool = True) -> MetaData:
    md = MetaData()
    Table("run", md, Column("id", String, primary_key=True),
          Column("created_at", String, nullable=False), Column("status", String, nullable=False),
          Column("targets", String, nullable=False), Column("scenarios", String, nullable=False),
          Column("planned", Integer, nullable=False), Column("options", String, nullable=False))
    Table("episode", md, Column("id", String, primary_key=True),
          Column("run_id", String, ForeignKey("run.id"), index=True, nullable=False),
          Column("key", String, nullable=False), Column("scenario", String, nullable=False),
          Column("task", String, nullable=False), Column("seed", seed_type, nullable=False),
          Column("trial", Integer, nullable=False), Column("agent", String, nullable=False),
          Column("policy", String), Column("end_reason", String, nullable=False),
          Column("end_note", String, nullable=False), Column("success", Boolean),
          Column("score", Float), Column("n_steps", Integer, nullable=False),
          Column("sim_time", Float, nullable=False), Column("wall_ms", Float, nullable=False),
          Column("cost", Float, nullable=False), Column("tokens", Integer, nullable=False),
          Column("reviews", Integer, nullable=False), Column("asks", Integer, nullable=False),
          Column("human_seconds", Float, nullable=False), Column("first_error_step", Integer),
          Column("first_error_node", String), Column("ambiguous", Boolean, nullable=False),
          Column("user_fault", Boolean, nullable=False), Column("error", String),
          Column("attempts", Integer, nullable=False),
          Column("final_digest", String, nullable=False),
          Column("outcome_grades", String, nullable=False),
          Column("metrics", String, nullable=False), Column("parent_id", String),
          Column("fork_at", Integer), UniqueConstraint("run_id", "key"))
    step = Table(
        "step", md, Column("id", Integer, primary_key=True),
        Column("episode_id", String, nullable=False), Column("idx", Integer, nullable=False),
        Column("node", String, nullable=False), Column("kind", String, nullable=False),
        Column("tool", String), Column("passed", Boolean),
        Column("help_needed", Boolean, nullable=False),
        Column("irreversible", Boolean, nullable=False),
        Column("reviewed", Boolean, nullable=False), Column("approved", Boolean),
        Column("confidence", Float), Column("sim_time", Float, nullable=False),
        Column("wall_us", Integer, nullable=False), Column("digest", String, nullable=False),
        Column("decision", String, nullable=False), Column("result", String),
        Column("checkpoint", String), Column("grades", String, nullable=False))
    if step_index:
        Index("ix_step_episode_idx", step.c.episode_id, step.c.idx)
    return md


def old_store(url: str, source_url: str, run_id: str, **schema: Any) -> None:
    """An 0.1 store at `url` holding run `run_id` copied from the store at `source_url`."""
    md = metadata(**schema)
    src, dst = create_engine(source_url), create_engine(url)
    md.create_all(dst)
    with src.connect() as s, dst.begin() as d:
        for old in md.sorted_tables:
            # Step ids are the database's (copied, they would leave PostgreSQL's sequence
            # behind, as no real store's is).
            cols = [c.name for c in old.columns if not (old.name == "step" and c.name == "id")]
            live = table(old.name, *[column(c) for c in cols])  # today's table, old columns
            q = select(*live.c)
            if old.name in ("run", "episode"):  # only this run (steps: the store has one)
                q = q.where((live.c.id if old.name == "run" else live.c.run_id) == run_id)
            rows = [dict(zip(cols, r, strict=True)) for r in s.execute(q)]
            if rows:
                d.execute(old.insert(), rows)
    src.dispose()
    dst.dispose()
