"""The store: runs, episodes, steps and grades in SQL (SQLite by default, any SQLAlchemy URL).

The store is the only place episodes meet the analysis. An episode is committed in one
transaction when it ends, so a killed run loses at most the episodes in flight, and the
unique (run, key) constraint guarantees no planned episode is stored twice.
"""

from __future__ import annotations

import itertools
import json
import os
import struct
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Index, LargeBinary, UniqueConstraint, event, insert, text
from sqlmodel import Field, Session, SQLModel, create_engine, delete, select, update

from trialrun.defaults import DEFAULT_DB
from trialrun.errors import NotFound
from trialrun.trajectory import EndReason, EpisodeKey, EpisodeResult, Grade, Step


class RunRow(SQLModel, table=True):
    __tablename__ = "run"

    id: str = Field(primary_key=True)
    created_at: str
    status: str = "running"  # running | complete | interrupted
    targets: str = "[]"  # JSON list of what the user asked to run
    scenarios: str = "{}"  # JSON {name: YAML source as loaded}, for resume and exact replay
    planned: int = 0
    options: str = "{}"  # JSON: concurrency, retries...
    # The run lock (Store.lock_run): who runs it now ("pid@host/nonce") and when it last said
    # so (epoch seconds); a lease that lapses frees the run.
    owner: str | None = None
    heartbeat: float | None = None


class EpisodeRow(SQLModel, table=True):
    __tablename__ = "episode"
    __table_args__ = (UniqueConstraint("run_id", "key"),)

    id: str = Field(primary_key=True)
    run_id: str = Field(index=True, foreign_key="run.id")
    key: str
    scenario: str
    task: str
    seed: int = Field(sa_type=BigInteger)  # seeds are any 64-bit integer
    trial: int
    agent: str
    policy: str = "never"  # the checkpoint policy's label, e.g. "every_n:3"
    end_reason: str
    end_note: str = ""
    success: bool | None = None
    score: float | None = None
    n_steps: int = 0
    sim_time: float = 0.0
    wall_ms: float = 0.0
    cost: float = 0.0
    tokens: int = 0
    reviews: int = 0
    asks: int = 0
    human_seconds: float = 0.0
    first_error_step: int | None = None
    first_error_node: str | None = None
    ambiguous: bool = False
    user_fault: bool = False
    error: str | None = None
    attempts: int = 1
    final_digest: str = ""
    outcome_grades: str = "[]"
    metrics: str = "{}"
    parent_id: str | None = None  # a fork: the episode it was forked from
    fork_at: int | None = None  # a fork: the first step its own agent decided
    # A derived index, not a record: the step columns the analysis reads, packed when the
    # episode is saved (`pack_steps`). The step table stays the source of truth (show, replay
    # and the web read it); NULL (older rows, importers) means "read the step table".
    step_arrays: bytes | None = Field(default=None, sa_type=LargeBinary)


class StepRow(SQLModel, table=True):
    __tablename__ = "step"
    __table_args__ = (Index("ix_step_episode_idx", "episode_id", "idx"),)

    id: int | None = Field(default=None, primary_key=True)
    episode_id: str
    idx: int
    node: str
    kind: str
    tool: str | None = None
    passed: bool | None = None  # trusted node verdict; None when nothing graded the step
    help_needed: bool = False
    irreversible: bool = False
    reviewed: bool = False
    approved: bool | None = None
    confidence: float | None = None
    sim_time: float = 0.0
    wall_us: int = 0
    digest: str = ""
    decision: str  # JSON, verbatim
    result: str | None = None  # JSON
    checkpoint: str | None = None  # JSON
    grades: str = "[]"  # JSON


class AttributionRow(SQLModel, table=True):
    """Decisive-error attribution of a failed episode by counterfactual replay."""

    __tablename__ = "attribution"

    episode_id: str = Field(primary_key=True)
    run_id: str = Field(index=True)
    first_error_step: int | None = None
    first_error_node: str | None = None
    decisive_step: int | None = None
    decisive_node: str | None = None
    tried: int = 0


# --- LLM judges (issue 10): their cached answers, re-grades, calibrations, golden labels ---
class JudgeCallRow(SQLModel, table=True):
    """A judge model's response by replay key (`request_key`): the judge cache."""

    __tablename__ = "judge_call"

    key: str = Field(primary_key=True)
    model: str = ""
    response: str = "{}"  # JSON: the endpoint's response body
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0
    created_at: str = ""


class JudgeGradingRow(SQLModel, table=True):
    """A judge that re-graded a stored run (`trialrun grade`): its options and fingerprint."""

    __tablename__ = "judge_grading"

    run_id: str = Field(primary_key=True)
    grader: str = Field(primary_key=True)  # the judge's label
    fingerprint: str
    spec: str = "{}"  # JSON: type, name, node and the judge's options (no key: never one)
    created_at: str = ""


class JudgeGradeRow(SQLModel, table=True):
    """One re-grade of a stored step (`step_idx`) or outcome (`step_idx` -1)."""

    __tablename__ = "judge_grade"
    __table_args__ = (UniqueConstraint("run_id", "grader", "episode_id", "step_idx"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    grader: str
    episode_id: str
    step_idx: int = -1
    node: str | None = None
    passed: bool = False
    judged: bool = True  # False: the judge gave no readable verdict
    score: float = 0.0
    votes: int = 0
    samples: int = 0
    reason: str = ""


class CalibrationRow(SQLModel, table=True):
    """A judge measured against a golden set (`trialrun calibrate`)."""

    __tablename__ = "calibration"

    id: int | None = Field(default=None, primary_key=True)
    judge: str = Field(index=True)  # the judge's name
    fingerprint: str = Field(index=True)
    created_at: str = ""
    result: str = "{}"  # JSON: trialrun.calibration.Calibration


class GoldenLabelRow(SQLModel, table=True):
    """A person's label of one item of a stored run (`<episode id>:<step>|outcome`) for one
    judge's criterion, from a golden set: the labelled subset of a run for PPI."""

    __tablename__ = "golden_label"

    criterion: str = Field(primary_key=True)  # the judge's name
    item: str = Field(primary_key=True)
    passed: bool
    source: str = ""  # the golden file


class ReviewRow(SQLModel, table=True):
    """A decision waiting for a real reviewer (`human: {type: reviewer}`), and the answer."""

    __tablename__ = "review"
    __table_args__ = (UniqueConstraint("run_id", "episode_key", "step"),)

    id: str = Field(primary_key=True)
    run_id: str = Field(index=True, foreign_key="run.id")
    episode_key: str
    step: int
    created_at: str
    decision: str  # the Decision, JSON
    reason: str = ""  # why the policy asked
    status: str = "pending"  # pending | answered | expired
    approved: bool | None = None
    comment: str = ""
    reviewer: str = ""  # who answered
    answered_at: str | None = None
    deadline_s: float | None = None  # wall seconds from created_at; then the fallback answers
    # A deny's choice among what the scenario's on_deny allows ("": the scenario's on_deny),
    # and for "takeover" the person's corrected action (a Decision, JSON).
    action: str = ""
    takeover: str | None = None

    @property
    def overdue(self) -> bool:
        """Pending past its deadline: the scenario's fallback answers it, not a person."""
        return self.status == "pending" and self.deadline_s is not None and (
            datetime.now(UTC) - datetime.fromisoformat(self.created_at)
        ).total_seconds() > self.deadline_s


def _now(precise: bool = False) -> str:
    """A UTC timestamp; `precise` to the microsecond (review deadlines are below a second)."""
    return datetime.now(UTC).isoformat(timespec="microseconds" if precise else "seconds")


def _dump(model: Any) -> str | None:
    """`model.model_dump_json(exclude_none=True)` (None for None), without the wrapper's
    keyword handling: half the cost of serialising a small model, three times a step."""
    return None if model is None else \
        model.__pydantic_serializer__.to_json(model, exclude_none=True).decode()


class Store:
    def __init__(self, url: str = DEFAULT_DB) -> None:
        """Open (or make) the store and upgrade its schema. Every fault is one StoreError
        line: a missing folder, random bytes, a corrupted or newer store. A store in a
        read-only place (or an immutable file) opens read-only: runs, show and report work,
        and a write says the store is read-only."""
        from trialrun.errors import StoreError
        from trialrun.migrations import upgrade
        from trialrun.secrets import mask_url
        from trialrun.store_errors import bad_url as _bad_url
        from trialrun.store_errors import fault_code, remember, sqlite_file, store_fault

        self.url = url
        # The URL as it may be printed: a database password never reaches a terminal or log.
        self.safe_url = mask_url(url)
        remember(url, self.safe_url)
        self.read_only = False
        # Episode inserts, grouped inside `batched()`: straight through sqlite3 for an SQLite
        # file, else through SQLAlchemy Core (PostgreSQL; an in-memory SQLite, ungrouped: each
        # thread would see a database of its own, and a timed commit runs in another thread).
        self._writer: _GroupedWriter = _EngineWriter(self, groups=not url.startswith("sqlite"))
        try:
            self.engine = create_engine(url)
        except Exception as e:  # noqa: BLE001 - a malformed URL or a driver not installed
            raise StoreError(_bad_url(url, e)) from None
        path = sqlite_file(url)  # None: not a file (PostgreSQL, :memory:)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            upgrade(self.engine, SQLModel.metadata, self.safe_url)
            if path is not None:
                self._writer = _SqliteWriter(self.engine.url.database)
        except StoreError:
            self.engine.dispose()
            raise
        except Exception as e:  # noqa: BLE001 - every database fault is one line
            self.engine.dispose()
            if path is None or not path.is_file() or fault_code(e) not in (
                    "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM"):
                raise (store_fault(e, url, self.safe_url) or e) from None
            self._open_read_only(path, e)

    # --- runs ------------------------------------------------------------------------
    def create_run(self, targets: list[str], scenarios: dict[str, str], planned: int,
                   options: dict[str, Any]) -> str:
        run_id = uuid.uuid4().hex[:10]
        with Session(self.engine) as s:
            s.add(RunRow(id=run_id, created_at=_now(), targets=json.dumps(targets),
                         scenarios=json.dumps(scenarios), planned=planned,
                         options=json.dumps(options)))
            s.commit()
        return run_id

    def get_run(self, run_id: str) -> RunRow:
        with Session(self.engine) as s:
            run = s.get(RunRow, run_id)
            if run is None:
                # A prefix, taken literally (`%` and `_` are not wildcards).
                matches = s.exec(select(RunRow).where(RunRow.id.startswith(
                    run_id, autoescape=True)).limit(6)).all()
                if len(matches) == 1:
                    return matches[0]
                if matches:
                    names = ", ".join(m.id for m in matches[:5])
                    raise NotFound(f"run id {run_id!r} is ambiguous: it starts "
                                   f"{'more than 5 runs' if len(matches) > 5 else names}; "
                                   "give more characters")
                raise NotFound(f"no run {run_id!r} in {self.safe_url}")
            return run

    def set_status(self, run_id: str, status: str) -> None:
        with Session(self.engine) as s:
            run = s.get(RunRow, run_id)
            run.status = status
            s.add(run)
            s.commit()

    # --- opening read-only, and the run lock (issue 14) ---------------------------------
    def _open_read_only(self, path: Any, why: BaseException) -> None:
        """Open an SQLite store that cannot be written here (a read-only folder or disk, an
        immutable file): `mode=ro`, or `immutable=1` when no write-ahead log holds data (a
        read-only folder cannot hold the WAL's shared-memory file)."""
        import sqlite3
        from urllib.parse import quote

        from sqlalchemy.pool import QueuePool

        from trialrun.errors import StoreError
        from trialrun.migrations import check_readable
        from trialrun.store_errors import sqlite_wal_exists, store_fault

        last: BaseException = why
        modes = ["mode=ro"] + ([] if sqlite_wal_exists(path) else ["immutable=1"])
        for mode in modes:
            uri = f"file:{quote(str(path.resolve()))}?{mode}"
            engine = create_engine("sqlite://", poolclass=QueuePool, creator=lambda u=uri:
                                   sqlite3.connect(u, uri=True, check_same_thread=False))
            try:
                with engine.connect() as c:
                    check_readable(c, self.safe_url)
            except StoreError:
                engine.dispose()
                raise
            except Exception as e:  # noqa: BLE001 - try the next mode, then say why
                engine.dispose()
                last = e
                continue
            self.engine, self.read_only = engine, True
            return
        raise (store_fault(last, self.url, self.safe_url) or last) from None

    lease_s: float = 60.0  # a lock not renewed for this long is free (its process is gone)

    def lock_run(self, run_id: str) -> Any:
        """Hold the run while this process runs it: a context manager. A second process (or
        a second `--resume` here) gets RunBusy naming who holds it. The lock is a lease in
        the run's row (one conditional UPDATE, portable to PostgreSQL), renewed every
        `lease_s / 4` s; a holder that died frees it at once on the same host (its pid is
        gone), or when the lease lapses elsewhere."""
        from trialrun.run_lock import RunLock

        return RunLock(self, run_id)

    def runs(self, limit: int = 50) -> list[tuple[RunRow, dict[str, Any]]]:
        with Session(self.engine) as s:
            rows = s.exec(select(RunRow).order_by(RunRow.created_at.desc()).limit(limit)).all()
            out = []
            for r in rows:
                out.append((r, _agg(s, r.id)))
            return out

    # --- episodes --------------------------------------------------------------------
    def done_keys(self, run_id: str) -> set[str]:
        """Keys of episodes that ended for a scorable reason (errors are run again)."""
        with Session(self.engine) as s:
            rows = s.exec(select(EpisodeRow.key).where(
                EpisodeRow.run_id == run_id, EpisodeRow.end_reason != EndReason.error.value))
            return set(rows.all())

    def drop_errors(self, run_id: str) -> int:
        with Session(self.engine) as s:
            ids = s.exec(select(EpisodeRow.id).where(
                EpisodeRow.run_id == run_id,
                EpisodeRow.end_reason == EndReason.error.value)).all()
            if ids:
                s.exec(delete(StepRow).where(StepRow.episode_id.in_(ids)))
                s.exec(delete(EpisodeRow).where(EpisodeRow.id.in_(ids)))
                s.commit()
            return len(ids)

    # --- the review queue: decisions waiting for a real reviewer ----------------------
    def review_item(self, run_id: str, key: str, step: int) -> ReviewRow | None:
        with Session(self.engine) as s:
            return s.exec(select(ReviewRow).where(
                ReviewRow.run_id == run_id, ReviewRow.episode_key == key,
                ReviewRow.step == step)).first()

    def add_review(self, run_id: str, key: str, step: int, decision: str, reason: str,
                   deadline_s: float | None) -> ReviewRow:
        """The pending item for this step (created once: a resumed episode finds it)."""
        item = self.review_item(run_id, key, step)
        if item is not None:
            return item
        item = ReviewRow(id=f"{run_id}-r{uuid.uuid4().hex[:10]}", run_id=run_id,
                         episode_key=key, step=step, decision=decision,
                         created_at=_now(precise=True),
                         reason=reason, deadline_s=deadline_s)
        with Session(self.engine) as s:
            s.add(item)
            s.commit()
            s.refresh(item)
            return item

    def reviews(self, run_id: str | None = None, status: str | None = None
                ) -> list[ReviewRow]:
        with Session(self.engine) as s:
            q = select(ReviewRow)
            if run_id is not None:
                q = q.where(ReviewRow.run_id == run_id)
            if status is not None:
                q = q.where(ReviewRow.status == status)
            return list(s.exec(q.order_by(ReviewRow.created_at)).all())

    def answer_review(self, item_id: str, approved: bool, reviewer: str, comment: str = "",
                      status: str = "answered", action: str = "",
                      takeover: str | None = None) -> ReviewRow:
        """Record an answer, with a deny's chosen `action` and `takeover` (a person's own
        decision, JSON); an item already answered keeps its first answer, whole (a second
        answer must not silently turn a deny into an approve, nor lend it its action). One
        conditional UPDATE, so two reviewers in two processes cannot both win."""
        with Session(self.engine) as s:
            done = s.execute(update(ReviewRow).where(
                ReviewRow.id == item_id, ReviewRow.status == "pending").values(
                approved=approved, reviewer=reviewer, comment=comment, status=status,
                action=action, takeover=takeover, answered_at=_now(precise=True))).rowcount
            s.commit()
            item = s.get(ReviewRow, item_id)
            if item is None:
                raise NotFound(f"no review item {item_id!r} in {self.safe_url}")
            if not done:
                raise NotFound(f"review item {item_id} was already {item.status} "
                               f"({'approved' if item.approved else 'denied'} by "
                               f"{item.reviewer or 'the fallback'})")
            return item

    def count_paused(self, run_id: str) -> int:
        with Session(self.engine) as s:
            return len(s.exec(select(EpisodeRow.id).where(
                EpisodeRow.run_id == run_id,
                EpisodeRow.end_reason == EndReason.paused.value)).all())

    def paused_ready(self, run_id: str) -> dict[str, EpisodeResult]:
        """The run's paused episodes whose review has been answered (or has expired), by
        key: the prefix each goes on from. They stay stored until the resumed episode
        replaces them (`drop_paused`), so a resume killed half-way loses nothing."""
        with Session(self.engine) as s:
            rows = s.exec(select(EpisodeRow.id, EpisodeRow.key, EpisodeRow.n_steps).where(
                EpisodeRow.run_id == run_id,
                EpisodeRow.end_reason == EndReason.paused.value)).all()
        ready: dict[str, EpisodeResult] = {}
        for ep_id, key, n_steps in rows:
            item = self.review_item(run_id, key, n_steps - 1)
            waiting = item is not None and item.status == "pending" and not item.overdue
            if not waiting:  # answered, or past its deadline: the fallback answers it
                ready[key] = self.load_episode(ep_id)
        return ready

    def drop_paused(self, run_id: str, key: str) -> None:
        """Remove a paused episode's record: its resumed episode is about to replace it."""
        with Session(self.engine) as s:
            ids = s.exec(select(EpisodeRow.id).where(
                EpisodeRow.run_id == run_id, EpisodeRow.key == key,
                EpisodeRow.end_reason == EndReason.paused.value)).all()
            if ids:
                s.exec(delete(StepRow).where(StepRow.episode_id.in_(ids)))
                s.exec(delete(EpisodeRow).where(EpisodeRow.id.in_(ids)))
                s.commit()

    def save_episode(self, run_id: str, r: EpisodeResult) -> str:
        """Store one finished episode (rows prepared where it ran are taken as they are).
        Inside `batched()`, commits are grouped (see `_GroupedWriter`)."""
        # (read directly: `r._rows` goes through pydantic's slow `__getattr__`, ~4 µs)
        rows = (r.__pydantic_private__ or {}).get("_rows")
        ep_id, row, steps = rows if rows is not None else episode_rows(run_id, r)
        self._writer.save(row, steps)
        return ep_id

    @contextmanager
    def batched(self, max_delay_s: float = 0.1) -> Iterator[None]:
        """Group episode commits while a run stores many episodes a second: an episode is
        committed at most `max_delay_s` after an earlier one (at once after a quiet spell),
        and everything on leaving. A kill loses at most the episodes of the last
        `max_delay_s`; they are not stored, so `--resume` runs them (once)."""
        writer = self._writer
        if not writer.groups:
            yield
            return
        writer.max_delay_s = max_delay_s
        try:
            yield
        finally:
            writer.max_delay_s = 0.0
            error, writer.error = writer.error, None
            writer.flush()
            if error is not None:
                raise error

    def flush(self, later: bool = False) -> None:
        """Commit the episodes `batched()` holds (before reading or changing them).
        `later`: from a timer thread; a failure is raised by the next `save_episode`."""
        self._writer.flush(later)

    def save_attribution(self, run_id: str, att: dict[str, Any]) -> None:
        with Session(self.engine) as s:
            s.merge(AttributionRow(run_id=run_id, **att))
            s.commit()

    def attributions(self, run_id: str) -> list[AttributionRow]:
        with Session(self.engine) as s:
            return list(s.exec(select(AttributionRow).where(AttributionRow.run_id == run_id)))

    def episodes(self, run_id: str) -> list[EpisodeRow]:
        with Session(self.engine) as s:
            return list(s.exec(select(EpisodeRow).where(EpisodeRow.run_id == run_id)
                               .order_by(EpisodeRow.scenario, EpisodeRow.task,
                                         EpisodeRow.seed, EpisodeRow.trial)).all())

    def get_episode(self, episode_id: str) -> EpisodeRow:
        with Session(self.engine) as s:
            row = s.get(EpisodeRow, episode_id)
            if row is None:
                raise NotFound(f"no episode {episode_id!r} in {self.safe_url}")
            return row

    def load_episode(self, episode_id: str) -> EpisodeResult:
        """The full record of one episode, as the loop produced it."""
        row = self.get_episode(episode_id)
        with Session(self.engine) as s:
            steps = s.exec(select(StepRow).where(StepRow.episode_id == episode_id)
                           .order_by(StepRow.idx)).all()
        return EpisodeResult(
            key=EpisodeKey(scenario=row.scenario, task=row.task, seed=row.seed, trial=row.trial),
            agent=row.agent, end_reason=EndReason(row.end_reason), end_note=row.end_note,
            success=row.success, score=row.score, steps=[_step_from_row(x) for x in steps],
            outcome_grades=[Grade.model_validate(g) for g in json.loads(row.outcome_grades)],
            metrics=json.loads(row.metrics), sim_time=row.sim_time, wall_ms=row.wall_ms,
            cost=row.cost, tokens=row.tokens, error=row.error, attempts=row.attempts,
            ambiguous=row.ambiguous, user_fault=row.user_fault, final_digest=row.final_digest,
            policy=row.policy or "never", parent=row.parent_id, fork_at=row.fork_at)

    # --- columnar reads for the analysis -------------------------------------------------
    def episode_columns(self, run_id: str, columns: list[str]) -> dict[str, list[Any]]:
        """The named columns of a run's episodes, in key order (scenario, task, seed, trial:
        the same for two identical runs, unlike the random ids): one query, raw driver rows,
        no ORM objects. The analysis reads whole runs with `run_arrays`."""
        return self._columns(EpisodeRow, columns, run_id, "episode x",
                             "x.run_id = :r ORDER BY x.scenario, x.task, x.seed, x.trial")

    def step_columns(self, run_id: str, columns: list[str]) -> dict[str, list[Any]]:
        """The named columns of a run's steps, in their episodes' key order, then by step
        index."""
        return self._columns(StepRow, columns, run_id,
                             "step x JOIN episode e ON e.id = x.episode_id",
                             "e.run_id = :r ORDER BY e.scenario, e.task, e.seed, e.trial, "
                             "x.idx")

    def _columns(self, table: Any, columns: list[str], run_id: str, source: str,
                 where: str) -> dict[str, list[Any]]:
        # Column names are checked against the table: they are pasted into the SQL.
        known = set(table.__table__.columns.keys())
        bad = [c for c in columns if c not in known]
        if bad:
            raise ValueError(f"no column(s) {', '.join(bad)} in {table.__tablename__}")
        query = f"SELECT {', '.join(f'x.{c}' for c in columns)} FROM {source} WHERE {where}"
        with self.engine.connect() as c:
            rows = c.execute(text(query), {"r": run_id}).cursor.fetchall()
        values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
        return {name: list(v) for name, v in zip(columns, values, strict=True)}

    def noisy_grade_columns(self, run_id: str) -> tuple[dict[str, list[Any]],
                                                       dict[str, list[Any]]]:
        """The rows of a run's report's judge section: its episodes not ended in an
        infrastructure error whose outcome grades hold a judge's (noisy) grade (id,
        outcome_grades), and their steps whose grades do (episode_id, idx, node, grades), in
        key order. The JSON is filtered in SQL: a run without judges reads no grade text, a
        1,000,000-episode run does not parse 6 million grade lists."""
        noisy = "LIKE '%\"noisy\"%'"
        order = "ORDER BY {0}.scenario, {0}.task, {0}.seed, {0}.trial"
        e = self._columns(EpisodeRow, ["id", "outcome_grades"], run_id, "episode x",
                          f"x.run_id = :r AND x.end_reason != 'error' AND x.outcome_grades "
                          f"{noisy} " + order.format("x"))
        s = self._columns(StepRow, ["episode_id", "idx", "node", "grades"], run_id,
                          "step x JOIN episode e ON e.id = x.episode_id",
                          f"e.run_id = :r AND e.end_reason != 'error' AND x.grades {noisy} "
                          + order.format("e") + ", x.idx")
        return e, s

    # --- whole runs as arrays, for the analysis at scale (issue 13) ---------------------------
    # A value that stands for NULL in an integer column read by `run_arrays`.
    NULL_INT = -(2**63) + 1
    _ARRAY_CHUNK = 1 << 15  # episodes (a rowid range) per SQLite query: bounds memory
    _READ_PACKED = True  # False: read every step from the step table (bench, tests)

    def run_arrays(self, run_id: str, episode_cols: list[str], step_cols: list[str],
                   codes: frozenset[str] = frozenset()) -> tuple[dict[str, Any], dict[str, Any]]:
        """A run's episodes in key order (scenario, task, seed, trial) and their steps in
        (episode, index) order, as numpy arrays, with `steps["episode"]` the position of
        each step's episode in the episode arrays. Booleans come as int8 (1, 0; -1 for
        NULL), integers as int64 (`NULL_INT` for NULL), floats as float64 (nan for NULL) and
        text as object arrays (None for NULL) — or, for the text columns named in `codes`,
        as int32 codes into the list `<column>.values` of its distinct values.

        The key order makes the analysis independent of the random episode ids, so two
        identical runs report alike. On SQLite each query aggregates a whole column of up to
        `_ARRAY_CHUNK` episodes into one text value (`group_concat`) that numpy parses: no
        Python object per row. Other databases fetch rows in chunks. Steps come from the
        episodes' packed steps (`episode.step_arrays`) where they hold the columns asked
        for, else from the step table; both give the same arrays."""
        import numpy as np

        for table, cols in ((EpisodeRow, episode_cols), (StepRow, step_cols)):
            bad = [c for c in cols if c not in table.__table__.columns]
            if bad:  # names are pasted into the SQL: only the table's own
                raise ValueError(f"no column(s) {', '.join(bad)} in {table.__tablename__}")
        key = ["scenario", "task", "seed", "trial"]
        e_cols = list(dict.fromkeys([*key, *episode_cols]))
        s_cols = list(dict.fromkeys(["idx", *step_cols]))
        run_id = self.get_run(run_id).id
        # Episodes with packed steps (`step_arrays`) are read from them when they hold every
        # column asked for; the others' steps from the step table.
        packed = self._READ_PACKED and set(s_cols) <= set(_PACKED_STEP_COLS)
        arrays = None
        if self.engine.url.get_backend_name() == "sqlite":  # reads packed steps itself
            arrays = self._sqlite_arrays(run_id, e_cols, s_cols, packed)
        if arrays is None:
            arrays = self._fetched_arrays(run_id, e_cols, s_cols, packed)
            if packed:
                arrays = arrays[0], _merge_columns(*arrays[1],
                                                   *self._packed_arrays(run_id, s_cols))
        (e, e_ref), (s, s_ref) = arrays
        # Episodes by key; text by the rank of its value, so in the strings' order.
        ranks = []
        for c in reversed(key):
            v = e[c]
            if isinstance(v, tuple):  # (codes, values)
                order = sorted(range(len(v[1])), key=v[1].__getitem__)
                rank = np.empty(len(order), dtype=np.int64)
                rank[order] = np.arange(len(order))
                v = rank[v[0]] if len(order) else v[0]
            ranks.append(v)
        order = np.lexsort(ranks) if len(e_ref) else np.zeros(0, dtype=np.int64)
        ref_sorted = e_ref[order]
        episodes: dict[str, Any] = {}
        for c in episode_cols:
            episodes.update(self._column_out(c, e.pop(c), order, c in codes))
        del e
        # Each step's episode position, then steps by (episode, index).
        by_ref = np.argsort(ref_sorted, kind="stable")
        where = np.searchsorted(ref_sorted[by_ref], s_ref)
        if len(s_ref) and (where.max(initial=0) >= len(by_ref)
                           or not np.array_equal(ref_sorted[by_ref][where], s_ref)):
            raise RuntimeError("a step's episode is missing from the episode table")
        pos = by_ref[where] if len(s_ref) else np.zeros(0, dtype=np.int64)
        del where, by_ref, s_ref
        idx = s["idx"]
        runs = _by_runs(pos, idx) if len(pos) else None
        if runs is not False:
            sort_key = runs
        elif int(idx.max()) < 2**62 // max(len(ref_sorted), 1) and idx.min() >= 0:
            k = pos * (int(idx.max()) + 1) + idx  # one integer per (episode, index)
            sort_key = (None if bool(np.all(k[1:] >= k[:-1]))
                        else np.argsort(k, kind="stable"))
            del k
        else:
            sort_key = np.lexsort((idx, pos))
        steps: dict[str, Any] = {"episode": pos if sort_key is None else pos[sort_key]}
        del pos
        for c in step_cols:  # one column at a time: the unsorted one is freed as it goes
            steps.update(self._column_out(c, s.pop(c), sort_key, c in codes))
        return episodes, steps

    def _sqlite_arrays(self, run_id: str, e_cols: list[str], s_cols: list[str],
                       packed: bool = False) -> Any:
        """`run_arrays`' reads on SQLite: per chunk of episode rowids, one query per table
        whose every column is one `group_concat` text (all aggregates of a query step
        through the same rows, so the columns stay aligned); text columns come back as
        (codes, values). None when a text value holds the separator (the generic path then
        reads the run)."""
        import numpy as np

        sep = "\x1e"
        e_kind = self._column_kinds(EpisodeRow, e_cols)
        s_kind = self._column_kinds(StepRow, s_cols)
        nullable = {c.name for t in (EpisodeRow, StepRow) for c in t.__table__.columns
                    if c.nullable}

        def expr(col: str, kind: str) -> str:
            x = f"x.{col}"
            if kind == "int":
                return f"group_concat(coalesce({x}, {self.NULL_INT}))" if col in nullable \
                    else f"group_concat({x})"  # a NULL here is a count mismatch
            if kind == "float":  # quote(): digits enough to give back the same double
                return f"group_concat(CASE WHEN {x} IS NULL THEN 'nan' ELSE quote({x}) END)"
            if col in nullable:  # a leading '+' marks a value: NULL ('') is not ""
                return f"group_concat(CASE WHEN {x} IS NULL THEN '' ELSE '+' || {x} END, " \
                       "char(30))"
            return f"group_concat({x}, char(30))"  # a NULL here is a count mismatch

        def bools(cols: list[str]) -> str:
            # All the booleans of a row in one integer, a base-3 digit each (NULL 0, false 1,
            # true 2; SQLite stores booleans as 0 and 1): one text value per row, not five.
            return "group_concat(" + " + ".join(
                f"{3**i} * coalesce(x.{c} + 1, 0)" for i, c in enumerate(cols)) + ")" \
                if cols else "''"

        def select(kinds: dict[str, str], ref: str) -> str:
            return (f"SELECT count(*), group_concat({ref}.rowid), "
                    + bools([c for c, k in kinds.items() if k == "bool"]) + ", "
                    + ", ".join(expr(c, k) for c, k in kinds.items() if k != "bool"))

        chunk = "x.rowid BETWEEN :lo AND :hi AND +x.run_id = :r"
        e_sql = (select(e_kind, "x")  # with packed steps: how many episodes have none
                 + (f", sum(NOT {_packed_sql('sqlite', 'x')})" if packed else "")
                 + f" FROM episode x WHERE {chunk}")
        # Packed steps split by SQL (see `pack_steps`): each episode's records' size, its
        # names, and all the chunk's records in one value: group_concat copies bytes as
        # they are, and CAST gives them back as a blob (a third of the time of hex(), which
        # is the fallback should a build of SQLite not keep them).
        end = "instr(x.step_arrays, x'1d')"
        records = f"substr(x.step_arrays, {end} + 1)"
        p_sql = (f"SELECT count(*), group_concat(x.rowid), "
                 f"group_concat(length(x.step_arrays) - {end}), "
                 f"group_concat(CAST(substr(x.step_arrays, 2, {end} - 2) AS TEXT), char(29)), "
                 f"CAST(group_concat({records}, '') AS BLOB) FROM episode x "
                 f"WHERE {chunk} AND {_packed_sql('sqlite', 'x')}")
        hex_sql = p_sql.replace(f"CAST(group_concat({records}, '') AS BLOB)",
                                f"group_concat(hex({records}), '')")
        dtype = _pack_dtype()
        s_sql = (select(s_kind, "e") + " FROM episode e JOIN step x ON x.episode_id = e.id "
                 "WHERE e.rowid BETWEEN :lo AND :hi AND +e.run_id = :r"
                 + (f" AND NOT {_packed_sql('sqlite')}" if packed else ""))
        texts: dict[str, dict[str, int]] = {}

        def parse(n: int, values: tuple, kinds: dict[str, str], out: dict[str, list]) -> bool:
            ref = np.fromstring(values[0], dtype=np.int64, sep=",")
            out["_ref"].append(ref)
            flags = np.fromstring(values[1] or "", dtype=np.int64, sep=",")
            for i, col in enumerate(c for c, k in kinds.items() if k == "bool"):
                out[col].append(((flags // 3**i) % 3 - 1).astype(np.int8))
            rest = [(c, k) for c, k in kinds.items() if k != "bool"]
            for (col, kind), v in zip(rest, values[2:], strict=True):
                if kind == "str":
                    parts = v.split(sep)
                    if len(parts) != n:
                        return False
                    if col == "id":  # unique: no codes, the text itself
                        out[col].append(np.array(parts, dtype=object))
                        continue
                    seen = texts.setdefault(col, {})
                    for p in dict.fromkeys(parts):  # the chunk's distinct values
                        seen.setdefault(p, len(seen))
                    out[col].append(np.fromiter(map(seen.__getitem__, parts), np.int32, n))
                else:
                    a = np.fromstring(v, dtype=np.float64 if kind == "float" else np.int64,
                                      sep=",")
                    if len(a) != n:
                        return False
                    out[col].append(a)
            return len(ref) == n and all(len(out[c][-1]) == n for c in kinds)

        def unpack(n: int, refs: str, sizes: str, names: str, body: bytes | None,
                   bounds: dict[str, Any]) -> None:
            size = np.fromstring(sizes, dtype=np.int64, sep=",")
            body = body or b""
            if len(body) != int(size.sum()):
                body = bytes.fromhex(c.execute(text(hex_sql), bounds).one()[4] or "")
            counts = _packed_counts(size, len(body))
            recs = np.frombuffer(body, dtype=dtype)
            ref = np.fromstring(refs, dtype=np.int64, sep=",")
            each = names.split("\x1d")
            if not len(ref) == len(counts) == len(each) == n:
                raise RuntimeError("corrupt packed steps (episode.step_arrays)")
            # an episode's names: one of a few distinct texts in a run
            distinct = {x: i for i, x in enumerate(dict.fromkeys(each))}
            group = np.repeat(np.fromiter(map(distinct.__getitem__, each), np.int64, n),
                              counts)
            s_out["_ref"].append(np.repeat(ref, counts))
            for col, kind in s_kind.items():
                if kind != "str":
                    s_out[col].append(recs[col].astype(
                        {"bool": np.int8, "float": np.float64}.get(kind, np.int64)))
                    continue
                seen = texts.setdefault(col, {})
                local = [_packed_names(x)[col == "kind"] for x in distinct]
                table = np.zeros((len(local), max(map(len, local), default=0) or 1), np.int32)
                for g, values in enumerate(local):
                    table[g, :len(values)] = [seen.setdefault(v, len(seen)) for v in values]
                s_out[col].append(table[group, recs[col]])

        e_out: dict[str, list] = {k: [] for k in ["_ref", *e_cols]}
        s_out: dict[str, list] = {k: [] for k in ["_ref", *s_cols]}
        # One chunk at a time, parsed before the next is read: memory stays a chunk's text.
        # (Threads would not help: SQLite's allocator takes a global lock per allocation.)
        with self.engine.connect() as c:
            lo, hi = c.execute(text("SELECT min(rowid), max(rowid) FROM episode "
                                    "WHERE run_id = :r"), {"r": run_id}).one()
            for start in range(lo or 0, (hi or -1) + 1, self._ARRAY_CHUNK):
                bounds = {"r": run_id, "lo": start, "hi": start + self._ARRAY_CHUNK - 1}
                n, *values = c.execute(text(e_sql), bounds).one()
                unpacked = values.pop() if packed else n
                if n and not parse(n, values, e_kind, e_out):
                    return None
                if unpacked:
                    n_s, *values = c.execute(text(s_sql), bounds).one()
                    if n_s and not parse(n_s, values, s_kind, s_out):
                        return None
                if packed and n and n > unpacked:
                    unpack(*c.execute(text(p_sql), bounds).one(), bounds)

        def join(out: dict[str, list], kinds: dict[str, str]) -> tuple[dict[str, Any], Any]:
            res: dict[str, Any] = {}
            for col in list(out):
                parts = out.pop(col)
                kind = kinds.get(col, "int")
                empty = {"bool": np.int8, "float": np.float64,
                         "str": object if col == "id" else np.int32}.get(kind, np.int64)
                a = np.concatenate(parts) if parts else np.zeros(0, empty)
                if kind == "str" and col == "id":
                    pass
                elif kind == "str":
                    values = list(texts.get(col, {}))
                    if col in nullable:
                        values = [p[1:] if p else None for p in values]
                    a = (a, values)
                res[col] = a
            return res, res.pop("_ref")

        return join(e_out, e_kind), join(s_out, s_kind)

    def _fetched_arrays(self, run_id: str, e_cols: list[str], s_cols: list[str],
                        packed: bool = False) -> Any:
        """`run_arrays`' reads on any database: rows fetched in chunks, column by column."""
        import numpy as np

        def convert(values: list, kind: str) -> Any:
            if kind == "bool":
                return np.array([-1 if v is None else int(bool(v)) for v in values], np.int8)
            if kind == "int":
                return np.array([self.NULL_INT if v is None else v for v in values], np.int64)
            if kind == "float":
                return np.array([np.nan if v is None else v for v in values], np.float64)
            return values

        def read(sql: str, cols: list[str], kinds: dict[str, str]) -> tuple[dict, Any]:
            parts: dict[str, list] = {c: [] for c in cols}
            with self.engine.connect() as c:
                cur = c.execution_options(stream_results=True).execute(text(sql),
                                                                       {"r": run_id})
                while rows := cur.fetchmany(50_000):
                    for col, values in zip(cols, zip(*rows, strict=True), strict=True):
                        parts[col].append(convert(list(values), kinds.get(col, "ref")))
            out: dict[str, Any] = {}
            for col, chunks in parts.items():
                kind = kinds.get(col, "ref")
                if kind in ("str", "ref"):
                    flat = [v for ch in chunks for v in ch]
                    seen = {v: i for i, v in enumerate(dict.fromkeys(flat))}
                    codes = np.fromiter(map(seen.__getitem__, flat), np.int32, len(flat))
                    out[col] = (codes, list(seen)) if kind == "str" else np.array(
                        list(seen), dtype=str)[codes] if flat else np.zeros(0, dtype=str)
                else:
                    out[col] = np.concatenate(chunks) if chunks else convert([], kind)
            return out, out.pop("_ref")

        # Episode ids stand in for the rowids: compared as text, sorted the same way.
        return (read(f"SELECT x.id, {', '.join(f'x.{c}' for c in e_cols)} FROM episode x "
                     "WHERE x.run_id = :r", ["_ref", *e_cols],
                     self._column_kinds(EpisodeRow, e_cols)),
                read(f"SELECT x.episode_id, {', '.join(f'x.{c}' for c in s_cols)} FROM step x "
                     "JOIN episode e ON e.id = x.episode_id WHERE e.run_id = :r" + (
                         f" AND NOT {_packed_sql(self.engine.url.get_backend_name())}"
                         if packed else ""),
                     ["_ref", *s_cols], self._column_kinds(StepRow, s_cols)))

    def _packed_arrays(self, run_id: str, s_cols: list[str]) -> tuple[dict[str, Any], Any]:
        """The steps of a run's episodes that have packed ones (`step_arrays`), as
        `_fetched_arrays` gives them (text as (codes, values)), with each step's episode
        id. One row, and a few Python operations, per episode: `_sqlite_arrays` has SQLite
        split them instead."""
        import numpy as np

        backend = self.engine.url.get_backend_name()
        sql = (f"SELECT e.id, e.step_arrays FROM episode e "
               f"WHERE e.run_id = :r AND {_packed_sql(backend)}")
        refs: list[Any] = []
        sizes: list[int] = []
        names: list[bytes] = []
        bodies: list[bytes] = []
        with self.engine.connect() as c:
            cur = c.execution_options(stream_results=True).execute(text(sql), {"r": run_id})
            while rows := cur.fetchmany(1 << 16):
                for ref, blob in rows:  # the only Python work per episode
                    blob = bytes(blob)
                    end = blob.index(b"\x1d")
                    refs.append(ref)
                    names.append(blob[1:end])
                    bodies.append(blob[end + 1:])
                    sizes.append(len(blob) - end - 1)
        body = b"".join(bodies)
        del bodies
        n_steps = _packed_counts(np.array(sizes, dtype=np.int64), len(body))
        recs = np.frombuffer(body, dtype=_pack_dtype())
        ref = np.repeat(np.array(refs, dtype=str), n_steps)
        out: dict[str, Any] = {}
        # Each distinct names section (a few per run) once: its codes into the run's names.
        groups: dict[bytes, int] = {}
        group = np.fromiter((groups.setdefault(x, len(groups)) for x in names), np.int64,
                            len(names))
        del names
        step_group = np.repeat(group, n_steps)
        for i, col in enumerate(("node", "kind")):
            if col not in s_cols:
                continue
            values: dict[str, int] = {}
            split = [_packed_names(x.decode())[i] for x in groups]
            table = np.zeros((len(groups), max((len(x) for x in split), default=0)),
                             dtype=np.int32)
            for g, local in enumerate(split):
                table[g, :len(local)] = [values.setdefault(v, len(values)) for v in local]
            codes = table[step_group, recs[col].astype(np.int64)] if len(recs) else \
                np.zeros(0, dtype=np.int32)
            out[col] = _used_only(codes, list(values))
        kinds = self._column_kinds(StepRow, s_cols)
        for col in s_cols:
            if col not in out:
                out[col] = recs[col].astype({"bool": np.int8, "float": np.float64}.get(
                    kinds[col], np.int64))
        return out, ref

    @staticmethod
    def _column_kinds(table: Any, cols: list[str]) -> dict[str, str]:
        """Each column's array kind for `run_arrays`: bool, int, float or str."""
        from sqlalchemy import Boolean, Float, Integer

        out = {}
        for c in cols:
            t = table.__table__.columns[c].type
            out[c] = ("bool" if isinstance(t, Boolean) else "int" if isinstance(t, Integer)
                      else "float" if isinstance(t, Float) else "str")
        return out

    @staticmethod
    def _column_out(name: str, col: Any, order: Any, as_codes: bool) -> dict[str, Any]:
        """One column of `run_arrays` in its final order (`order` None: as it is): text as
        codes and `<name>.values`, or as an object array whose equal values share a str."""
        import numpy as np

        if not isinstance(col, tuple):
            return {name: col if order is None else col[order]}
        codes, values = col
        codes = codes if order is None else codes[order]
        if as_codes:
            return {name: codes, f"{name}.values": values}
        table = np.array([*values, None], dtype=object)  # the None: never a 2-d array
        return {name: table[codes] if len(codes) else np.zeros(0, dtype=object)}

    def scenario_sources(self, run_id: str) -> dict[str, str]:
        """The YAML text of each scenario of a run, as it was loaded."""
        return json.loads(self.get_run(run_id).scenarios)

    # --- LLM judges (issue 10) ---------------------------------------------------------
    def get_judge_call(self, key: str) -> Any:
        """The cached judge response for a request key, as a ModelCall (None: not asked)."""
        from trialrun.trajectory import ModelCall

        with Session(self.engine) as s:
            row = s.get(JudgeCallRow, key)
        if row is None:
            return None
        return ModelCall(key=row.key, model=row.model, response=json.loads(row.response),
                         tokens_in=row.tokens_in, tokens_out=row.tokens_out, cost=row.cost,
                         latency_ms=row.latency_ms)

    def save_judge_call(self, call: Any) -> None:
        with Session(self.engine) as s:
            s.merge(JudgeCallRow(key=call.key, model=call.model,
                                 response=json.dumps(call.response), tokens_in=call.tokens_in,
                                 tokens_out=call.tokens_out, cost=call.cost,
                                 latency_ms=call.latency_ms, created_at=_now()))
            s.commit()

    def save_judge_grades(self, run_id: str, grader: str, fingerprint: str,
                          spec: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        """Replace a judge's re-grades of a run (one transaction)."""
        with Session(self.engine) as s:
            s.exec(delete(JudgeGradeRow).where(JudgeGradeRow.run_id == run_id,
                                               JudgeGradeRow.grader == grader))
            s.merge(JudgeGradingRow(run_id=run_id, grader=grader, fingerprint=fingerprint,
                                    spec=json.dumps(spec), created_at=_now()))
            for r in rows:
                s.add(JudgeGradeRow(run_id=run_id, grader=grader, **r))
            s.commit()

    def judge_gradings(self, run_id: str) -> list[JudgeGradingRow]:
        with Session(self.engine) as s:
            return list(s.exec(select(JudgeGradingRow).where(JudgeGradingRow.run_id == run_id)
                               .order_by(JudgeGradingRow.grader)))

    def judge_grades(self, run_id: str) -> list[JudgeGradeRow]:
        with Session(self.engine) as s:
            return list(s.exec(select(JudgeGradeRow).where(JudgeGradeRow.run_id == run_id)
                               .order_by(JudgeGradeRow.grader, JudgeGradeRow.episode_id,
                                         JudgeGradeRow.step_idx)))

    def save_calibration(self, judge: str, fingerprint: str, result: str,
                         labels: list[tuple[str, bool]], source: str) -> int:
        """Store a calibration and the golden labels of run items it used."""
        with Session(self.engine) as s:
            row = CalibrationRow(judge=judge, fingerprint=fingerprint, created_at=_now(),
                                 result=result)
            s.add(row)
            for item, passed in labels:
                s.merge(GoldenLabelRow(criterion=judge, item=item, passed=passed,
                                       source=source))
            s.commit()
            s.refresh(row)
            return int(row.id)

    def calibrations(self, judge: str | None = None,
                     fingerprint: str | None = None) -> list[CalibrationRow]:
        """Calibrations, newest first."""
        q = select(CalibrationRow)
        if judge is not None:
            q = q.where(CalibrationRow.judge == judge)
        if fingerprint is not None:
            q = q.where(CalibrationRow.fingerprint == fingerprint)
        with Session(self.engine) as s:
            return list(s.exec(q.order_by(CalibrationRow.id.desc())))

    def golden_labels(self, criterion: str, run_id: str) -> dict[str, bool]:
        """A person's labels of a run's items for one judge's criterion."""
        with Session(self.engine) as s:
            rows = s.exec(select(GoldenLabelRow).where(
                GoldenLabelRow.criterion == criterion,
                GoldenLabelRow.item.startswith(f"{run_id}-")))
            return {r.item: r.passed for r in rows}


class _EpisodeIds:
    """Episode ids' tails: a random 48-bit tag per process, then a counter. Ids that one
    process makes ascend, so inserts land at the end of the id indexes: random ids (`uuid4`)
    scatter them, and inserting cost 52 µs an episode into a new SQLite store but 87 µs
    after 60,000 episodes, against a flat 44. Two processes of a run clash only if they
    draw the same tag (for 10,000 worker processes, about 1 in 5 million). A forked child
    draws a tag of its own; the tag is drawn from the OS, never from the `random` module,
    which a user's code may seed."""

    def __init__(self) -> None:
        self.redraw()
        os.register_at_fork(after_in_child=self.redraw)

    def redraw(self) -> None:
        self.tag, self.count = os.urandom(6).hex(), itertools.count(1)

    def next(self) -> str:
        n = next(self.count)  # atomic: threads never share a number
        if n > 0xFFFFFFFF:
            self.redraw()
            return self.next()
        return f"{self.tag}{n:08x}"


_episode_ids = _EpisodeIds()


def episode_rows(run_id: str, r: EpisodeResult) -> tuple[str, tuple[Any, ...],
                                                           list[tuple[Any, ...]]]:
    """An episode's id and its rows (episode, steps) as tuples in the order of
    `_EPISODE_COLS` and `_STEP_COLS`, ready to insert: built where the episode ran, so that
    the process writing the store only inserts them. One pass over the steps (the hot path
    of a run): each step's trusted verdict is read once, for its row and the first error."""
    ep_id = f"{run_id}-{_episode_ids.next()}"
    key = r.key
    first: Step | None = None
    reviews = asks = 0
    steps = []
    for st in r.steps:
        cp, d, res = st.checkpoint, st.decision, st.result
        passed = st.passed
        if passed is False and first is None:
            first = st
        reviewed = cp is not None and cp.reviewed
        reviews += reviewed
        asks += d.kind == "ask_human"
        steps.append((  # _STEP_COLS
            ep_id, st.index, st.node, d.kind, d.tool, passed, st.help_needed,
            st.irreversible, reviewed, cp.approved if cp is not None else None, d.confidence,
            st.sim_time, st.wall_us, st.state_digest, _dump(d), _dump(res), _dump(cp),
            _grades_json(st.grades)))
    row = (  # _EPISODE_COLS
        ep_id, run_id, str(key), key.scenario, key.task, key.seed, key.trial, r.agent, r.policy,
        r.end_reason.value, r.end_note, r.success, r.score, len(steps), r.sim_time, r.wall_ms,
        r.cost, r.tokens, reviews, asks, float(r.metrics.get("human_seconds", 0.0)),
        first.index if first else None, first.node if first else None, r.ambiguous,
        r.user_fault, r.error, r.attempts, r.final_digest,
        _GRADES_MODE_JSON.dump_json(r.outcome_grades).decode(), json.dumps(r.metrics),
        r.parent, r.fork_at, pack_steps(steps))
    return ep_id, row, steps


# --- episode.step_arrays: an episode's analysis step columns in one value (issue 13) ---------
# Reading a run's steps from the step table costs SQLite ~2.5 µs a step row (6.5M rows at 1M
# episodes); one packed value per episode costs about one row. Layout: a version byte; the
# names, UTF-8: the episode's distinct node names joined by \x1f, \x1e, its distinct decision
# kinds joined by \x1f; \x1d; then one `_PACK_RECORD` (little-endian) per step, node and kind
# as codes into those names. The names come first and hold no \x1d, so SQL can split a value
# without decoding integers (`Store._sqlite_arrays`). A reader that does not know the version
# reads the step table (`_packed_sql`).
PACK_VERSION = 1
_PACKED_STEP_COLS = ("idx", "node", "kind", "passed", "help_needed", "irreversible",
                     "reviewed", "approved", "confidence", "sim_time", "wall_us")
# idx, node, kind, then passed, help_needed, irreversible, reviewed, approved (int8: 1, 0,
# -1 for NULL), confidence (nan for NULL), sim_time, wall_us.
_PACK_RECORD = struct.Struct("<iHHbbbbbddq")
_NAN = float("nan")


def pack_steps(steps: list[tuple[Any, ...]]) -> bytes | None:
    """`step_arrays` for an episode's step rows (tuples in `_STEP_COLS` order); None when
    they do not fit the format (a name holding a separator, an out-of-range value): the
    step table is read."""
    nodes: dict[str, int] = {}
    kinds: dict[str, int] = {}
    rec = _PACK_RECORD.pack
    try:
        # x: _, idx, node, kind, _, passed, help_needed, irreversible, reviewed, approved,
        # confidence, sim_time, wall_us, ...
        body = b"".join([rec(
            x[1], nodes.setdefault(x[2], len(nodes)), kinds.setdefault(x[3], len(kinds)),
            -1 if x[5] is None else x[5], x[6], x[7], x[8], -1 if x[9] is None else x[9],
            _NAN if x[10] is None else x[10], x[11], x[12]) for x in steps])
    except (struct.error, TypeError):
        return None
    names = "\x1f".join(nodes) + "\x1e" + "\x1f".join(kinds)
    if len(nodes) > 65535 or len(kinds) > 65535 or "\x1d" in names or \
            names.count("\x1e") != 1 or \
            names.count("\x1f") != max(len(nodes) - 1, 0) + max(len(kinds) - 1, 0):
        return None
    return b"%c%s\x1d%s" % (PACK_VERSION, names.encode(), body)


def _packed_names(names: str) -> tuple[list[str], list[str]]:
    """The node and kind names of a packed episode (its names part, decoded)."""
    nodes, kinds = names.split("\x1e")
    return nodes.split("\x1f") if nodes else [], kinds.split("\x1f") if kinds else []


# The columns an insert names, in order (a step's id is the database's).
_EPISODE_COLS = tuple(c.name for c in EpisodeRow.__table__.columns)
_STEP_COLS = tuple(c.name for c in StepRow.__table__.columns if c.name != "id")
# `episode_rows` and `pack_steps` build rows positionally, in these orders.
assert _EPISODE_COLS == (
    "id", "run_id", "key", "scenario", "task", "seed", "trial", "agent", "policy", "end_reason",
    "end_note", "success", "score", "n_steps", "sim_time", "wall_ms", "cost", "tokens",
    "reviews", "asks", "human_seconds", "first_error_step", "first_error_node", "ambiguous",
    "user_fault", "error", "attempts", "final_digest", "outcome_grades", "metrics",
    "parent_id", "fork_at", "step_arrays"), _EPISODE_COLS
assert _STEP_COLS == (
    "episode_id", "idx", "node", "kind", "tool", "passed", "help_needed", "irreversible",
    "reviewed", "approved", "confidence", "sim_time", "wall_us", "digest", "decision",
    "result", "checkpoint", "grades"), _STEP_COLS


def _grade_adapter() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(list[Grade])


# One Rust call per list instead of a model_dump and json.dumps per grade (the hot path).
_GRADES_MODE_JSON = _grade_adapter()
# A step's grades JSON by the grades' identity: grades are values (frozen) that graders hand
# out again and again (the world's verdict at a node), so most steps' JSON is one already
# written. Each entry holds its grades, so no id can be reused while it is kept.
_GRADES_JSON: dict[tuple[int, ...], tuple[list[Grade], str]] = {}


def _grades_json(grades: list[Grade]) -> str:
    key = tuple(map(id, grades))
    held = _GRADES_JSON.get(key)
    if held is not None:
        return held[1]
    text = _GRADES_MODE_JSON.dump_json(grades, exclude_none=True).decode()
    if len(_GRADES_JSON) >= 4096:
        _GRADES_JSON.clear()
    _GRADES_JSON[key] = (list(grades), text)
    return text


def _step_from_row(x: StepRow) -> Step:
    from trialrun.trajectory import CheckpointEvent, Decision, ToolResult

    return Step(
        index=x.idx, node=x.node, decision=Decision.model_validate_json(x.decision),
        result=ToolResult.model_validate_json(x.result) if x.result else None,
        checkpoint=CheckpointEvent.model_validate_json(x.checkpoint) if x.checkpoint else None,
        grades=[Grade.model_validate(g) for g in json.loads(x.grades)],
        help_needed=x.help_needed, irreversible=x.irreversible, state_digest=x.digest,
        sim_time=x.sim_time, wall_us=x.wall_us)


class _GroupedWriter:
    """Episode inserts, one transaction per group. With `max_delay_s` > 0 (`Store.batched`),
    rows wait in memory (no transaction is held open, so other writers are never blocked)
    and are committed together at most that long after the previous commit: one commit then
    costs less than one episode's inserts. Subclasses say how a group is inserted."""

    groups = True  # False: every save commits at once, in the caller's thread

    def __init__(self) -> None:
        import threading

        self.lock = threading.RLock()
        self.max_delay_s = 0.0
        self.error: Exception | None = None
        self.pending: list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]] = []
        self.last_commit = 0.0

    def _insert(self, batch: list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]) -> None:
        raise NotImplementedError

    def save(self, episode: tuple[Any, ...], steps: list[tuple[Any, ...]]) -> None:
        with self.lock:
            if self.error is not None:  # a timed commit failed: these episodes are not stored
                error, self.error = self.error, None
                raise error
            self.pending.append((episode, steps))
            if time.monotonic() - self.last_commit >= self.max_delay_s \
                    or len(self.pending) >= 1024:
                self.flush()

    def flush(self, later: bool = False) -> None:
        with self.lock:
            if later:
                try:
                    self.flush()
                except Exception as e:  # noqa: BLE001 - raised by the run's next save
                    self.error = e
                return
            batch, self.pending = self.pending, []
            if not batch:
                return
            try:
                self._insert(batch)
            except Exception:
                if len(batch) == 1:
                    raise
                # One bad episode (e.g. stored twice) must not take the batch with it.
                failed: Exception | None = None
                for one in batch:
                    try:
                        self._insert([one])
                    except Exception as e:  # noqa: BLE001 - raised below, after the rest
                        failed = failed or e
                if failed is not None:
                    raise failed from None
            finally:
                self.last_commit = time.monotonic()


class _SqliteWriter(_GroupedWriter):
    """Straight through the sqlite3 driver: SQLAlchemy's statement handling costs more than
    the insert itself (the hot path of a run)."""

    def __init__(self, path: str) -> None:
        import sqlite3

        super().__init__()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        self.sql = {name: f"INSERT INTO {name} ({', '.join(f'{c!r}' for c in cols)}) "
                          f"VALUES ({', '.join('?' * len(cols))})".replace("'", '"')
                    for name, cols in (("episode", _EPISODE_COLS), ("step", _STEP_COLS))}

    def _insert(self, batch: list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]) -> None:
        cur = self.conn.cursor()
        cur.execute("BEGIN")
        try:
            cur.executemany(self.sql["episode"], [e for e, _ in batch])
            cur.executemany(self.sql["step"], [x for _, steps in batch for x in steps])
            cur.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # a full disk may have ended it: say the real error
                cur.execute("ROLLBACK")
            raise


class _EngineWriter(_GroupedWriter):
    """Through SQLAlchemy Core (PostgreSQL, an in-memory SQLite): a group is one transaction
    of two multi-row inserts, where one transaction per episode held PostgreSQL to a few
    hundred episodes a second. The ORM's unit of work would cost ~2 ms an episode."""

    def __init__(self, store: Store, groups: bool) -> None:
        super().__init__()
        self.groups = groups
        self.store = store  # its engine, read at each insert (a read-only reopen replaces it)
        self.episode = insert(EpisodeRow.__table__)
        self.step = insert(StepRow.__table__)

    def _insert(self, batch: list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]) -> None:
        with self.store.engine.begin() as c:
            c.execute(self.episode, [dict(zip(_EPISODE_COLS, e, strict=True))
                                     for e, _ in batch])
            steps = [dict(zip(_STEP_COLS, x, strict=True)) for _, st in batch for x in st]
            if steps:
                c.execute(self.step, steps)


def _packed_sql(backend: str, e: str = "e") -> str:
    """SQL true for an episode (table alias `e`) whose `step_arrays` this version reads
    (false, not NULL, for the others: NOT of it selects them)."""
    # (an empty value's first byte is NULL on SQLite, an error for get_byte on PostgreSQL)
    first = (f"substr({e}.step_arrays, 1, 1) = x'%02x'" if backend == "sqlite" else
             f"substring({e}.step_arrays from 1 for 1) = '\\x%02x'::bytea") % PACK_VERSION
    return (f"({e}.step_arrays IS NOT NULL AND "
            f"coalesce({first}, {_FALSE[backend == 'sqlite']}))")


_FALSE = ("false", "0")


def _by_runs(pos: Any, idx: Any) -> Any:
    """The stable order of steps by (episode position, index) without sorting the steps,
    when each episode's steps come as one run in index order (as both reads give them):
    the runs are ordered instead (one per episode). None if already in order; False if
    the steps are not in such runs (then they are sorted)."""
    import numpy as np

    n = len(pos)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(pos[1:], pos[:-1], out=new[1:])
    inner = ~new[1:]
    if (idx[1:][inner] < idx[:-1][inner]).any():
        return False
    starts = np.flatnonzero(new)
    run_pos = pos[starts]
    if bool(np.all(run_pos[1:] > run_pos[:-1])):
        return None
    order = np.argsort(run_pos, kind="stable")
    if bool(np.any(run_pos[order][1:] == run_pos[order][:-1])):  # an episode split in two
        return False
    lengths = np.diff(starts, append=n)[order]
    firsts = starts[order]
    return np.repeat(firsts - (np.cumsum(lengths) - lengths), lengths) + np.arange(n)


def _packed_counts(sizes: Any, total: int) -> Any:
    """Each packed episode's step count from its records' byte size; an error if a value
    is corrupt (a derived index never silently drops steps)."""
    n, rest = divmod(sizes, _PACK_RECORD.size)
    if rest.any() or int(sizes.sum()) != total:
        raise RuntimeError("corrupt packed steps (episode.step_arrays): set them to NULL "
                           "to read the step table")
    return n


def _pack_dtype() -> Any:
    import numpy as np

    return np.dtype([("idx", "<i4"), ("node", "<u2"), ("kind", "<u2"), ("passed", "i1"),
                     ("help_needed", "i1"), ("irreversible", "i1"), ("reviewed", "i1"),
                     ("approved", "i1"), ("confidence", "<f8"), ("sim_time", "<f8"),
                     ("wall_us", "<i8")])


def _used_only(codes: Any, values: list[Any]) -> tuple[Any, list[Any]]:
    """(codes, values) without the values no code names (a packed episode lists the names
    of its own steps; an empty one still has an empty name)."""
    import numpy as np

    used = np.bincount(codes, minlength=len(values)) > 0 if len(codes) else \
        np.zeros(len(values), dtype=bool)
    if used.all():
        return codes, values
    new = np.cumsum(used, dtype=np.int64) - 1
    return new[codes].astype(np.int32), [v for v, u in zip(values, used, strict=True) if u]


def _merge_columns(a: dict[str, Any], a_ref: Any, b: dict[str, Any],
                   b_ref: Any) -> tuple[dict[str, Any], Any]:
    """Two sets of `run_arrays` columns (text as (codes, values)) as one, `a`'s rows first."""
    import numpy as np

    if not len(b_ref):
        return a, a_ref
    if not len(a_ref):
        return b, b_ref
    out: dict[str, Any] = {}
    for col in a:
        x, y = a[col], b[col]
        if isinstance(x, tuple):
            values = dict(zip(x[1], range(len(x[1])), strict=True))
            remap = np.array([values.setdefault(v, len(values)) for v in y[1]] or [0],
                             dtype=np.int32)
            out[col] = (np.concatenate([x[0], remap[y[0]]]), list(values))
        else:
            out[col] = np.concatenate([x, y])
    return out, np.concatenate([a_ref, b_ref])


def _add_missing_columns(engine: Any) -> None:
    """Additive migration (trialrun.migrations, which runs it on every open): a store written
    by an older trialrun gains the new columns (as NULL/default)."""
    from trialrun.migrations import add_missing_columns

    with engine.begin() as c:
        add_missing_columns(c, SQLModel.metadata)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets `trialrun show` read while a run writes; NORMAL is durable at each commit
    # boundary in WAL mode, which is the unit we promise (an episode).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


# --- paginated reads for the web app (issue 12: `trialrun serve`) ----------------------------
# Each page of the web app costs a few indexed queries with LIMIT/OFFSET: a 20,000-episode run
# is never loaded whole to draw one page. Additive: nothing above calls these.
def _agg(s: Session, run_id: str) -> dict[str, int]:
    """A run's episode counts (portable SQL: no boolean arithmetic, which PostgreSQL
    refuses)."""
    row = s.exec(text(
        "SELECT count(*), " + ", ".join(f"sum(CASE WHEN {c} THEN 1 ELSE 0 END)" for c in (
            "success", "end_reason = 'error'", "end_reason = 'paused'"))
        + " FROM episode WHERE run_id = :r").bindparams(r=run_id)).one()
    return {"episodes": row[0] or 0, "successes": row[1] or 0, "errors": row[2] or 0,
            "paused": row[3] or 0}


def runs_page(store: Store, limit: int, offset: int = 0
              ) -> tuple[list[tuple[RunRow, dict[str, int]]], int]:
    """Runs newest first, one page of them with their episode counts, and how many runs."""
    with Session(store.engine) as s:
        total = s.exec(text("SELECT count(*) FROM run")).one()[0]
        rows = s.exec(select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id)
                      .limit(limit).offset(offset)).all()
        return [(r, _agg(s, r.id)) for r in rows], total


def run_counts(store: Store, run_id: str) -> dict[str, Any]:
    """A run's episodes counted: overall, by end reason and by scenario (grouped in SQL)."""
    with Session(store.engine) as s:
        counts: dict[str, Any] = _agg(s, run_id)
        counts["failures"] = s.exec(text(
            "SELECT count(*) FROM episode WHERE run_id = :r AND success = false")
            .bindparams(r=run_id)).one()[0]
        counts["end_reasons"] = dict(s.exec(text(
            "SELECT end_reason, count(*) FROM episode WHERE run_id = :r GROUP BY end_reason "
            "ORDER BY end_reason").bindparams(r=run_id)).all())
        counts["scenarios"] = [tuple(x) for x in s.exec(text(
            "SELECT scenario, count(*), sum(CASE WHEN success THEN 1 ELSE 0 END) FROM episode "
            "WHERE run_id = :r GROUP BY scenario ORDER BY scenario").bindparams(r=run_id)).all()]
        return counts


def episode_page(store: Store, run_id: str, limit: int, offset: int = 0,
                 scenario: str | None = None, success: bool | None | str = "any"
                 ) -> tuple[list[EpisodeRow], int]:
    """One page of a run's episodes, failed first (then unscored, then successes), filtered
    by scenario and by success (True, False, None for unscored, "any"), and the filtered
    count."""
    q = select(EpisodeRow).where(EpisodeRow.run_id == run_id)
    n = select(EpisodeRow.id).where(EpisodeRow.run_id == run_id)
    conds = []
    if scenario:
        conds.append(EpisodeRow.scenario == scenario)
    if success is None:
        conds.append(EpisodeRow.success.is_(None))
    elif success != "any":
        conds.append(EpisodeRow.success == bool(success))
    q, n = q.where(*conds), n.where(*conds)
    failed_first = text("CASE WHEN episode.success = false THEN 0 WHEN episode.success IS NULL "
                        "THEN 1 ELSE 2 END")
    with Session(store.engine) as s:
        from sqlalchemy import func

        total = s.exec(select(func.count()).select_from(n.subquery())).one()
        rows = s.exec(q.order_by(failed_first, EpisodeRow.scenario, EpisodeRow.task,
                                 EpisodeRow.seed, EpisodeRow.trial)
                      .limit(limit).offset(offset)).all()
        return list(rows), int(total)


def episode_by_key(store: Store, run_id: str, key: str) -> EpisodeRow | None:
    """A run's stored episode for a planned key (the paused one, while it waits)."""
    with Session(store.engine) as s:
        return s.exec(select(EpisodeRow).where(EpisodeRow.run_id == run_id,
                                               EpisodeRow.key == key)).first()


def review_page(store: Store, status: str | None, limit: int, offset: int = 0
                ) -> tuple[list[ReviewRow], int]:
    """Review items oldest first (pending ones: the queue), one page, and how many."""
    q = select(ReviewRow)
    n = "SELECT count(*) FROM review"
    if status is not None:
        q = q.where(ReviewRow.status == status)
        n += " WHERE status = :st"
    with Session(store.engine) as s:
        total = s.exec(text(n).bindparams(**({"st": status} if status else {}))).one()[0]
        rows = s.exec(q.order_by(ReviewRow.created_at, ReviewRow.id)
                      .limit(limit).offset(offset)).all()
        return list(rows), int(total)


def next_review(store: Store, exclude: str | None = None) -> ReviewRow | None:
    """The oldest pending review item (other than `exclude`)."""
    q = select(ReviewRow).where(ReviewRow.status == "pending")
    if exclude is not None:
        q = q.where(ReviewRow.id != exclude)
    with Session(store.engine) as s:
        return s.exec(q.order_by(ReviewRow.created_at, ReviewRow.id).limit(1)).first()


def get_review(store: Store, item_id: str) -> ReviewRow | None:
    with Session(store.engine) as s:
        return s.get(ReviewRow, item_id)


def episode_reviews(store: Store, run_id: str, key: str) -> list[ReviewRow]:
    """The review items of one planned episode, by step."""
    with Session(store.engine) as s:
        return list(s.exec(select(ReviewRow).where(
            ReviewRow.run_id == run_id, ReviewRow.episode_key == key)
            .order_by(ReviewRow.step)).all())


# --- issue 12, the rest: deny actions, auto-resume, second opinions, labels, regression marks ---
# Additive, like the section above: the web app and the reviewer human call these.
def claim_run(store: Store, run_id: str, from_status: tuple[str, ...],
              to: str = "running") -> bool:
    """Move a run from one of `from_status` to `to` in one conditional UPDATE: of two
    processes that want to resume one run, exactly one gets True."""
    with Session(store.engine) as s:
        done = s.execute(update(RunRow).where(RunRow.id == run_id,
                                              RunRow.status.in_(from_status))
                         .values(status=to)).rowcount
        s.commit()
        return bool(done)


def runs_with_status(store: Store, status: str, limit: int = 100) -> list[str]:
    with Session(store.engine) as s:
        return list(s.exec(select(RunRow.id).where(RunRow.status == status)
                           .order_by(RunRow.created_at).limit(limit)).all())


def run_progress(store: Store, run_id: str) -> dict[str, Any]:
    """What a running run's page polls: its status, planned and stored counts (one query)."""
    with Session(store.engine) as s:
        run = s.get(RunRow, run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r} in {store.safe_url}")
        counts = _agg(s, run_id)
        failures = s.exec(text("SELECT count(*) FROM episode WHERE run_id = :r AND "
                               "success = false").bindparams(r=run_id)).one()[0]
    return {"status": run.status, "planned": run.planned, "done": counts["episodes"],
            "successes": counts["successes"], "failures": failures,
            "errors": counts["errors"], "paused": counts["paused"]}


class SecondOpinionRow(SQLModel, table=True):
    """A second reviewer's answer to an already answered item: for reviewer-to-reviewer
    agreement only, never applied to the episode (the item binds on its first answer)."""

    __tablename__ = "second_opinion"

    item_id: str = Field(primary_key=True)  # one second opinion per item
    run_id: str = Field(index=True)
    approved: bool
    action: str = ""
    comment: str = ""
    reviewer: str
    answered_at: str


def add_second_opinion(store: Store, item: ReviewRow, approved: bool, reviewer: str,
                       comment: str = "", action: str = "") -> SecondOpinionRow | None:
    """Store a second opinion; None when the item already has one (the first one stays)."""
    from sqlalchemy.exc import IntegrityError

    row = SecondOpinionRow(item_id=item.id, run_id=item.run_id, approved=approved,
                           action=action, comment=comment, reviewer=reviewer,
                           answered_at=_now(precise=True))
    try:
        with Session(store.engine) as s:
            s.add(row)
            s.commit()
            s.refresh(row)
            return row
    except IntegrityError:
        return None


def second_opinion(store: Store, item_id: str) -> SecondOpinionRow | None:
    with Session(store.engine) as s:
        return s.get(SecondOpinionRow, item_id)


def second_opinion_pairs(store: Store, run_id: str | None = None
                         ) -> list[tuple[ReviewRow, SecondOpinionRow]]:
    """Items answered by a person (not the fallback) that have a second opinion."""
    q = select(ReviewRow, SecondOpinionRow).where(
        SecondOpinionRow.item_id == ReviewRow.id, ReviewRow.status == "answered")
    if run_id is not None:
        q = q.where(ReviewRow.run_id == run_id)
    with Session(store.engine) as s:
        return [(a, b) for a, b in s.exec(q.order_by(ReviewRow.created_at)).all()]


def answered_items(store: Store, limit: int, offset: int = 0
                   ) -> tuple[list[ReviewRow], int]:
    """Items a person answered, oldest first (the candidates for a second opinion)."""
    q = select(ReviewRow).where(ReviewRow.status == "answered")
    with Session(store.engine) as s:
        total = s.exec(text("SELECT count(*) FROM review WHERE status = 'answered'")).one()[0]
        rows = s.exec(q.order_by(ReviewRow.created_at, ReviewRow.id)
                      .limit(limit).offset(offset)).all()
        return list(rows), int(total)


class LabelRow(SQLModel, table=True):
    """A label given in the web app, with who gave it, when and why. The same label goes to
    `golden_label` (what the report's PPI reads); this row keeps the explanation for the
    golden file the app exports (`trialrun calibrate JUDGE FILE`)."""

    __tablename__ = "web_label"

    criterion: str = Field(primary_key=True)  # the judge's name
    item: str = Field(primary_key=True)  # `<episode id>:<step>` or `<episode id>:outcome`
    run_id: str = Field(index=True)
    episode_id: str = Field(index=True)
    passed: bool
    explanation: str = ""
    labeller: str
    labelled_at: str


def save_label(store: Store, run_id: str, episode_id: str, criterion: str, item: str,
               passed: bool, explanation: str, labeller: str) -> LabelRow:
    """Label one item for one criterion (a later label of the same item replaces it)."""
    row = LabelRow(criterion=criterion, item=item, run_id=run_id, episode_id=episode_id,
                   passed=passed, explanation=explanation, labeller=labeller,
                   labelled_at=_now())
    with Session(store.engine) as s:
        s.merge(row)
        s.merge(GoldenLabelRow(criterion=criterion, item=item, passed=passed,
                               source=f"trialrun serve: {labeller}"))
        s.commit()
    return row


def labels_of(store: Store, *, episode_id: str | None = None, run_id: str | None = None,
              criterion: str | None = None) -> list[LabelRow]:
    q = select(LabelRow)
    if episode_id is not None:
        q = q.where(LabelRow.episode_id == episode_id)
    if run_id is not None:
        q = q.where(LabelRow.run_id == run_id)
    if criterion is not None:
        q = q.where(LabelRow.criterion == criterion)
    with Session(store.engine) as s:
        return list(s.exec(q.order_by(LabelRow.criterion, LabelRow.item)).all())


class RegressionMarkRow(SQLModel, table=True):
    """A failed episode a person marked as a regression case, and the case file written."""

    __tablename__ = "regression_mark"

    episode_id: str = Field(primary_key=True)
    run_id: str = Field(index=True)
    path: str
    marked_by: str
    marked_at: str


def mark_regression(store: Store, episode_id: str, run_id: str, path: str,
                    marked_by: str) -> RegressionMarkRow:
    row = RegressionMarkRow(episode_id=episode_id, run_id=run_id, path=path,
                            marked_by=marked_by, marked_at=_now())
    with Session(store.engine) as s:
        s.merge(row)
        s.commit()
    return row


def regression_marks(store: Store, run_id: str) -> list[RegressionMarkRow]:
    with Session(store.engine) as s:
        return list(s.exec(select(RegressionMarkRow).where(RegressionMarkRow.run_id == run_id)
                           .order_by(RegressionMarkRow.marked_at)).all())


def regression_mark(store: Store, episode_id: str) -> RegressionMarkRow | None:
    with Session(store.engine) as s:
        return s.get(RegressionMarkRow, episode_id)


def review_verdicts(store: Store, run_id: str | None = None) -> dict[tuple[str, str, int], bool]:
    """The world's verdict on each reviewed decision (`decision_was_correct` of the step's
    checkpoint), by (run, episode key, step): one query joining review items to their
    stored steps, where loading every episode of a 20,000-episode run takes minutes."""
    sql = ("SELECT r.run_id, r.episode_key, r.step, s.checkpoint FROM review r "
           "JOIN episode e ON e.run_id = r.run_id AND e.key = r.episode_key "
           "JOIN step s ON s.episode_id = e.id AND s.idx = r.step "
           "WHERE r.status != 'pending' AND s.checkpoint IS NOT NULL"
           + (" AND r.run_id = :r" if run_id is not None else ""))
    out: dict[tuple[str, str, int], bool] = {}
    with store.engine.connect() as c:
        for rid, key, step, cp in c.execute(text(sql), {"r": run_id} if run_id else {}):
            correct = json.loads(cp).get("decision_was_correct")
            if correct is not None:
                out[(rid, key, step)] = bool(correct)
    return out
