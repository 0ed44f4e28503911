"""What `check_world` returns (`WorldReport`, one `Check` per entry of CHECKS), and
`_Report`, which collects the checks as they are decided.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["pass", "warn", "fail", "skip"]

# Every check, in report order, with what it protects (shown when it passes).
CHECKS: dict[str, str] = {
    "resolve": "the class resolves and subclasses World",
    "name": "the world has a name",
    "options_model": "Options is a pydantic model that forbids unknown keys",
    "task_model": "Task is a pydantic model that forbids unknown keys",
    "tasks": "there is a task to check the world on",
    "lifecycle": "the world builds, resets and closes; hooks return the right types",
    "tool_schemas": "every tool has a valid JSON-schema object for its arguments",
    "tool_errors": "bad tool calls are answered with ToolError, never a crash",
    "state": "state() is a JSON-able dict",
    "digest": "digest() is a string that changes whenever state() does",
    "status": "status() returns a WorldStatus",
    "outcome": "outcome() returns a JSON-able dict",
    "same_seed": "the same seed twice gives the same run",
    "wall_clock": "the world never reads the wall clock",
    "global_rng": "the world draws from self.rng only, never the global RNG",
    "snapshot_restore": "restore(snapshot()) round-trips",
    "judge": "judge() gives ground truth (Verdicts) and only reads the state",
    "reference_decision": "reference_decision() gives a sound decision to substitute",
}

MAX_DETAILS = 6


class Check(BaseModel):
    """One property of the world: passed, failed, warned about or skipped, and why."""

    id: str
    status: Status
    message: str
    fix: str = ""
    details: list[str] = Field(default_factory=list)


class WorldReport(BaseModel):
    """What `check_world` found: one Check per entry of CHECKS, in that order."""

    world: str  # as asked: a registered name or an import path
    cls: str = ""  # the class it resolved to, module:qualname
    seed: int
    task: str | None = None
    task_source: str = ""
    steps: int = 0  # decisions replayed per run
    checks: list[Check]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def get(self, check_id: str) -> Check:
        return next(c for c in self.checks if c.id == check_id)

    def text(self) -> str:
        """The report as plain text, one line per check (details and fixes indented)."""
        head = f"check-world {self.world}"
        if self.cls and self.cls != self.world:
            head += f"  ({self.cls})"
        where = [f"seed {self.seed}"]
        if self.task is not None:
            where.append(f"task {self.task!r} from {self.task_source}")
        if self.steps:
            where.append(f"{self.steps} decision(s) replayed per run")
        lines = [head, "  " + " · ".join(where)]
        width = max(len(c.id) for c in self.checks)
        pad = " " * (width + 10)
        for c in self.checks:
            mark = {"pass": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}[c.status]
            lines.append(f"  {mark}  {c.id:<{width}}  {c.message}")
            lines.extend(f"{pad}- {d}" for d in c.details)
            if c.fix and c.status in ("fail", "warn"):
                lines.append(f"{pad}fix: {c.fix}")
        n = {s: sum(c.status == s for c in self.checks) for s in ("pass", "warn", "fail", "skip")}
        lines.append(f"{n['pass']} passed, {n['warn']} warning(s), {n['fail']} failed, "
                     f"{n['skip']} skipped")
        return "\n".join(lines)


class _Report:
    """Checks as they are decided; `finish` fills in skips and orders them."""

    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}

    def add(self, check_id: str, status: Status, message: str, fix: str = "",
            details: list[str] | None = None) -> None:
        assert check_id in CHECKS, check_id
        self.checks[check_id] = Check(id=check_id, status=status, message=message, fix=fix,
                                      details=_cap(details or []))

    def passed(self, check_id: str, message: str = "") -> None:
        self.add(check_id, "pass", message or CHECKS[check_id])

    def skip(self, check_id: str, why: str) -> None:
        if check_id not in self.checks:
            self.add(check_id, "skip", why)

    def problems(self, check_id: str, problems: dict[str, Status], fix: str,
                 ok: str = "") -> None:
        """Pass, or the worst severity among `problems` (text -> severity) as details."""
        if not problems:
            self.passed(check_id, ok)
            return
        status: Status = "fail" if "fail" in problems.values() else "warn"
        texts = sorted(problems, key=lambda t: problems[t] != "fail")
        more = f" (and {len(texts) - 1} more below)" if len(texts) > 1 else ""
        self.add(check_id, status, texts[0] + more, fix, texts[1:])

    def finish(self, why: str) -> list[Check]:
        for check_id in CHECKS:
            self.skip(check_id, f"not checked: {why}")
        return [self.checks[c] for c in CHECKS]


def _cap(details: list[str]) -> list[str]:
    if len(details) <= MAX_DETAILS:
        return details
    return [*details[:MAX_DETAILS], f"... and {len(details) - MAX_DETAILS} more"]
