"""The store: runs, episodes, steps and grades in SQL (SQLite by default, any SQLAlchemy URL).

The store is the only place episodes meet the analysis. An episode is committed in one
transaction when it ends, so a killed run loses at most the episodes in flight, and the
unique (run, key) constraint guarantees no planned episode is stored twice.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Index, UniqueConstraint, event, insert, inspect, text
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

    @property
    def overdue(self) -> bool:
        """Pending past its deadline: the scenario's fallback answers it, not a person."""
        return self.status == "pending" and self.deadline_s is not None and (
            datetime.now(UTC) - datetime.fromisoformat(self.created_at)
        ).total_seconds() > self.deadline_s


def _now(precise: bool = False) -> str:
    """A UTC timestamp; `precise` to the microsecond (review deadlines are below a second)."""
    return datetime.now(UTC).isoformat(timespec="microseconds" if precise else "seconds")


def _dump(model: Any) -> str:
    return model.model_dump_json(exclude_none=True) if model is not None else None


class Store:
    def __init__(self, url: str = DEFAULT_DB) -> None:
        self.url = url
        self.engine = create_engine(url)
        # The URL as it may be printed: a database password never reaches a terminal or log.
        self.safe_url = self.engine.url.render_as_string(hide_password=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        SQLModel.metadata.create_all(self.engine)
        _add_missing_columns(self.engine)
        self._insert_episode = insert(EpisodeRow.__table__)
        self._insert_step = insert(StepRow.__table__)
        db = self.engine.url.database
        self._sqlite = _SqliteWriter(db) if self.engine.url.get_backend_name() == "sqlite" \
            and db not in (None, "", ":memory:") else None

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
                      status: str = "answered") -> ReviewRow:
        """Record an answer; an item already answered keeps its first answer (a second
        answer must not silently turn a deny into an approve). One conditional UPDATE, so two
        reviewers in two processes cannot both win."""
        with Session(self.engine) as s:
            done = s.execute(update(ReviewRow).where(
                ReviewRow.id == item_id, ReviewRow.status == "pending").values(
                approved=approved, reviewer=reviewer, comment=comment, status=status,
                answered_at=_now(precise=True))).rowcount
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
        # 64 random bits: 32 collide within a 100,000-episode run (birthday bound).
        ep_id = f"{run_id}-{uuid.uuid4().hex[:16]}"
        first = r.first_error
        row = dict(
            id=ep_id, run_id=run_id, key=str(r.key), scenario=r.key.scenario, task=r.key.task,
            seed=r.key.seed, trial=r.key.trial, agent=r.agent, policy=r.policy,
            end_reason=r.end_reason.value,
            end_note=r.end_note, success=r.success, score=r.score, n_steps=len(r.steps),
            sim_time=r.sim_time, wall_ms=r.wall_ms, cost=r.cost, tokens=r.tokens,
            reviews=r.reviews, asks=r.asks,
            human_seconds=float(r.metrics.get("human_seconds", 0.0)),
            first_error_step=first.index if first else None,
            first_error_node=first.node if first else None, ambiguous=r.ambiguous,
            user_fault=r.user_fault, error=r.error, attempts=r.attempts,
            final_digest=r.final_digest,
            outcome_grades=json.dumps([g.model_dump(mode="json") for g in r.outcome_grades]),
            metrics=json.dumps(r.metrics), parent_id=r.parent, fork_at=r.fork_at,
        )
        steps = [_step_row(ep_id, st) for st in r.steps]
        if self._sqlite is not None:
            self._sqlite.save(row, steps)
            return ep_id
        # Core inserts in one transaction: the ORM unit of work costs ~2 ms an episode.
        with self.engine.begin() as c:
            c.execute(self._insert_episode, row)
            if steps:
                c.execute(self._insert_step, steps)
        return ep_id

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
        """The named columns of a run's episodes, ordered by episode id: one query, raw
        driver rows, no per-row objects (100,000-episode runs load in seconds)."""
        return self._columns(EpisodeRow, columns, run_id, "episode x",
                             "x.run_id = :r ORDER BY x.id")

    def step_columns(self, run_id: str, columns: list[str]) -> dict[str, list[Any]]:
        """The named columns of a run's steps, ordered by episode id then step index."""
        return self._columns(StepRow, columns, run_id,
                             "step x JOIN episode e ON e.id = x.episode_id",
                             "e.run_id = :r ORDER BY x.episode_id, x.idx")

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


def _step_row(ep_id: str, st: Step) -> dict[str, Any]:
    cp = st.checkpoint
    return {
        "episode_id": ep_id, "idx": st.index, "node": st.node, "kind": st.decision.kind,
        "tool": st.decision.tool, "passed": st.passed, "help_needed": st.help_needed,
        "irreversible": st.irreversible,
        "reviewed": bool(cp and cp.reviewed), "approved": cp.approved if cp else None,
        "confidence": st.decision.confidence, "sim_time": st.sim_time, "wall_us": st.wall_us,
        "digest": st.state_digest, "decision": _dump(st.decision), "result": _dump(st.result),
        "checkpoint": _dump(cp),
        "grades": json.dumps([g.model_dump(mode="json", exclude_none=True) for g in st.grades]),
    }


def _step_from_row(x: StepRow) -> Step:
    from trialrun.trajectory import CheckpointEvent, Decision, ToolResult

    return Step(
        index=x.idx, node=x.node, decision=Decision.model_validate_json(x.decision),
        result=ToolResult.model_validate_json(x.result) if x.result else None,
        checkpoint=CheckpointEvent.model_validate_json(x.checkpoint) if x.checkpoint else None,
        grades=[Grade.model_validate(g) for g in json.loads(x.grades)],
        help_needed=x.help_needed, irreversible=x.irreversible, state_digest=x.digest,
        sim_time=x.sim_time, wall_us=x.wall_us)


class _SqliteWriter:
    """Episode commits straight through the sqlite3 driver: SQLAlchemy's statement handling
    costs more than the insert itself at one commit per episode (the hot path of a run)."""

    def __init__(self, path: str) -> None:
        import sqlite3
        import threading

        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.lock = threading.Lock()
        self.sql: dict[str, tuple[str, list[str]]] = {}
        for table in (EpisodeRow.__table__, StepRow.__table__):
            cols = [c.name for c in table.columns if c.name != "id" or table.name != "step"]
            names = ", ".join(f'"{c}"' for c in cols)
            self.sql[table.name] = (f"INSERT INTO {table.name} ({names}) "
                                    f"VALUES ({', '.join('?' * len(cols))})", cols)

    def save(self, episode: dict[str, Any], steps: list[dict[str, Any]]) -> None:
        ep_sql, ep_cols = self.sql["episode"]
        st_sql, st_cols = self.sql["step"]
        with self.lock:
            cur = self.conn.cursor()
            cur.execute("BEGIN")
            try:
                cur.execute(ep_sql, [episode.get(c) for c in ep_cols])
                cur.executemany(st_sql, [[s.get(c) for c in st_cols] for s in steps])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise


def _add_missing_columns(engine: Any) -> None:
    """Additive migration: a store written by an older trialrun gains the new columns (as
    NULL/default), so old runs stay readable."""
    insp = inspect(engine)
    with engine.begin() as c:
        for table in SQLModel.metadata.sorted_tables:
            have = {col["name"] for col in insp.get_columns(table.name)}
            for col in table.columns:
                if col.name in have:
                    continue
                ddl = col.type.compile(dialect=engine.dialect)
                default = ""
                if col.default is not None and getattr(col.default, "is_scalar", False):
                    value = col.default.arg
                    default = f" DEFAULT {int(value) if isinstance(value, bool) else repr(value)}"
                c.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {ddl}{default}'))


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
