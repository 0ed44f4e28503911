"""How real reviewers do: answers, queue wait, and agreement with the world's ground truth.

An answer agrees with the ground truth when it approves a decision the world judged right or
denies one it judged wrong (`CheckpointEvent.decision_was_correct`, recorded at review time);
decisions with no verdict do not count. Queue wait is from the item's creation to its answer.
"""

from __future__ import annotations

import statistics
from datetime import datetime

from pydantic import BaseModel, Field

from trialrun.analysis.stats import wilson
from trialrun.store import Store, review_verdicts

__all__ = ["ReviewerStats", "reviewer_stats"]

MEANINGS = {
    "agreement": "answers that approve a decision the world judged right or deny one it "
                 "judged wrong, of the answers to decisions with a verdict (Wilson 95% CI)",
    "queue_wait_s": "median seconds from an item's creation to its answer",
}


class ReviewerStats(BaseModel):
    reviewer: str
    answers: int
    approvals: int
    expired: int = Field(0, description="items the fallback answered past their deadline")
    queue_wait_s: float | None = Field(None, description=MEANINGS["queue_wait_s"])
    judged: int = 0  # answers to decisions the world had a verdict on
    agreement: float | None = Field(None, description=MEANINGS["agreement"])
    agreement_lo: float | None = None
    agreement_hi: float | None = None


def reviewer_stats(store: Store, run_id: str | None = None) -> list[ReviewerStats]:
    """One row per reviewer (the fallback included) over the answered items."""
    rows: dict[str, dict] = {}
    truth = review_verdicts(store, run_id)  # one join, not every episode loaded
    for it in store.reviews(run_id):
        if it.status == "pending":
            continue
        r = rows.setdefault(it.reviewer, {"answers": 0, "approvals": 0, "expired": 0,
                                          "waits": [], "judged": 0, "agree": 0})
        r["answers"] += 1
        r["approvals"] += bool(it.approved)
        r["expired"] += it.status == "expired"
        if it.answered_at:
            r["waits"].append((datetime.fromisoformat(it.answered_at)
                               - datetime.fromisoformat(it.created_at)).total_seconds())
        correct = truth.get((it.run_id, it.episode_key, it.step))
        if correct is not None:
            r["judged"] += 1
            r["agree"] += bool(it.approved) == correct
    out = []
    for name, r in sorted(rows.items()):
        lo, hi = wilson(r["agree"], r["judged"]) if r["judged"] else (None, None)
        out.append(ReviewerStats(
            reviewer=name, answers=r["answers"], approvals=r["approvals"],
            expired=r["expired"], judged=r["judged"],
            queue_wait_s=statistics.median(r["waits"]) if r["waits"] else None,
            agreement=r["agree"] / r["judged"] if r["judged"] else None,
            agreement_lo=lo, agreement_hi=hi))
    return out
