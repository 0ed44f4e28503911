"""`_Run`: what one run of the world recorded, to be compared with the other runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trialrun.check_world.report import Status
from trialrun.check_world.util import _plain
from trialrun.trajectory import Decision, ToolSpec


@dataclass
class _Run:
    """What one run of the world recorded: comparable entries, and contract problems."""

    entries: list[tuple[str, Any]] = field(default_factory=list)
    problems: dict[str, dict[str, Status]] = field(default_factory=dict)
    plan: list[tuple[Decision, Decision]] = field(default_factory=list)  # (probe, executed)
    fatal: str | None = None
    tools: list[ToolSpec] | None = None
    states: list[tuple[str, Any, Any]] = field(default_factory=list)  # (where, state, digest)
    judged: int = 0
    verdicts: int = 0
    references: int = 0
    restore: tuple[Status, str, list[str]] | None = None  # run E's finding
    starts: list[int] = field(default_factory=list)  # index in entries where each step starts
    end_at: int = 0  # index in entries where the steps end
    seen: set[str] = field(default_factory=set)  # kinds of problems noted once

    def add(self, label: str, value: Any) -> None:
        self.entries.append((label, _plain(value)))

    def problem(self, check_id: str, text: str, severity: Status = "fail",
                once: str | None = None) -> None:
        """Note a problem; with `once`, only the first of its kind (e.g. the first step)."""
        if once is not None:
            if once in self.seen:
                return
            self.seen.add(once)
        self.problems.setdefault(check_id, {}).setdefault(text, severity)

    @property
    def digest(self) -> Any:
        return self.states[-1][2] if self.states else None
