"""How real reviewers do: answers, queue wait, agreement with the world's ground truth, and
agreement with each other.

An answer agrees with the ground truth when it approves a decision the world judged right or
denies one it judged wrong (`CheckpointEvent.decision_was_correct`, recorded at review time);
decisions with no verdict do not count. Queue wait is from the item's creation to its answer.

Reviewers agree with each other on second opinions: an item binds on its first answer; a
second reviewer may answer a sample of answered items blind (`second_opinion` table, never
applied). Percent agreement with a Wilson 95% CI, and Cohen's kappa (agreement beyond what the
two reviewers' approval rates give by chance). Only items a person answered count (not the
fallback past a deadline).
"""

from __future__ import annotations

import statistics
from datetime import datetime

from pydantic import BaseModel, Field

from trialrun.analysis.stats import cohens_kappa, wilson
from trialrun.store import Store, review_verdicts, second_opinion_pairs

__all__ = ["ReviewerAgreement", "ReviewerStats", "agreement_text", "reviewer_agreement",
           "reviewer_stats"]

MEANINGS = {
    "agreement": "answers that approve a decision the world judged right or deny one it "
                 "judged wrong, of the answers to decisions with a verdict (Wilson 95% CI)",
    "queue_wait_s": "median seconds from an item's creation to its answer",
    "between_reviewers": "items a second reviewer answered blind to the first answer, in "
                         "which both gave the same verdict (approve or deny), with a Wilson "
                         "95% CI; Cohen's kappa corrects it for agreement by chance",
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


class ReviewerAgreement(BaseModel):
    pairs: int = Field(description="items with a first answer and a second opinion")
    agree: int
    rate: float | None = None
    lo: float | None = None
    hi: float | None = None
    kappa: float | None = None
    both_approve: int = 0
    both_deny: int = 0
    first_approve_second_deny: int = 0
    first_deny_second_approve: int = 0


def reviewer_agreement(store: Store, run_id: str | None = None) -> ReviewerAgreement:
    """First answers against second opinions, over one run or the whole store."""
    aa = dd = ad = da = 0
    for first, second in second_opinion_pairs(store, run_id):
        a, b = bool(first.approved), bool(second.approved)
        aa += a and b
        dd += not a and not b
        ad += a and not b
        da += not a and b
    n = aa + dd + ad + da
    out = ReviewerAgreement(pairs=n, agree=aa + dd, both_approve=aa, both_deny=dd,
                            first_approve_second_deny=ad, first_deny_second_approve=da)
    if n:
        out.rate = (aa + dd) / n
        out.lo, out.hi = wilson(aa + dd, n)
        out.kappa = cohens_kappa([[aa, ad], [da, dd]])
    return out


def agreement_text(store: Store, run_id: str | None = None) -> str:
    """One line for `trialrun review stats`."""
    r = reviewer_agreement(store, run_id)
    if not r.pairs:
        return ("agreement between reviewers: no second opinions yet (the web app's "
                "\"second opinion\" queue)")
    return (f"agreement between reviewers: {r.rate:.0%} [{r.lo:.0%}, {r.hi:.0%}] of "
            f"{r.pairs} item(s) with a second opinion, Cohen's kappa {r.kappa:.2f} "
            f"(both approve {r.both_approve}, both deny {r.both_deny}, first approve/second "
            f"deny {r.first_approve_second_deny}, first deny/second approve "
            f"{r.first_deny_second_approve})")
