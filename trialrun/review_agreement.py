"""Agreement between reviewers: an item binds on its first answer; a second reviewer may
answer a sample of answered items (`second_opinion` table, never applied), and the two
verdicts (approve/deny) are compared here.

Percent agreement with a Wilson 95% CI, and Cohen's kappa (agreement beyond what the two
reviewers' approval rates give by chance). Only items a person answered count (not the
fallback past a deadline).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from trialrun.analysis.stats import cohens_kappa, wilson
from trialrun.store import Store, second_opinion_pairs

__all__ = ["MEANING", "ReviewerAgreement", "agreement_text", "reviewer_agreement"]

MEANING = ("items a second reviewer answered blind to the first answer, in which both gave "
           "the same verdict (approve or deny), with a Wilson 95% CI; Cohen's kappa corrects "
           "it for agreement by chance")


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
