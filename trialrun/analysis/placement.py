"""Where to put human checkpoints on a chain of agent steps (ANALYSIS.md section 2).

Steps are numbered 1..n as in ANALYSIS.md and a checkpoint "after step j" is written j:
it reviews the segment of steps since the previous checkpoint, ending with step j,
before that segment's effects are committed. Step i succeeds with probability p_i given
clean input; a segment S has P_S = prod p_i. After a review the state is reset, so
segments are independent and S_total = prod g_S, with g = P_S for the unreviewed tail.

Two review models:

* `CatchAndFix` (model A): the human catches a bad segment with recall r and fixes it,
  g = P + (1-P)·r, cost = c_rev + c_fix·r(1-P) + c_fa·(1-s)·P.
* `ApproveDeny` (model B): the human approves or denies; a denied segment is redone.
  Acceptance a = P·s + (1-P)(1-r), g = P·s/a, reviews = 1/a, agent steps = |S|/a.

Recall may be a number or a callable of the segment length |S|, since long segments are
harder to review. The optimiser is the checkpoint-placement dynamic programme of Toueg &
Babaoglu (1984), maximising sum ln g_S - lambda·cost_S with at most B checkpoints.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

Recall = float | Callable[[int], float]
_F = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SegmentOutcome:
    """What one reviewed segment yields: success g, expected reviews, human cost, agent steps."""

    success: float
    reviews: float
    cost: float
    agent_steps: float


def _recall_at(recall: Recall, length: NDArray[np.int64]) -> _F:
    if callable(recall):
        # call once per distinct length: user callables need not be vectorised
        uniq, inv = np.unique(length, return_inverse=True)
        vals = np.array([float(recall(int(m))) for m in uniq])
        r = vals[inv].reshape(length.shape)
    else:
        r = np.full(length.shape, float(recall))
    if ((r < 0) | (r > 1)).any():
        raise ValueError("recall must lie in [0, 1]")
    return r


class _ReviewModel:
    recall: Recall
    specificity: float

    def _eval(self, p_seg: _F, length: NDArray[np.int64]) -> tuple[_F, _F, _F, _F]:
        raise NotImplementedError

    def segment(self, p_segment: float, length: int) -> SegmentOutcome:
        """Outcome of reviewing one segment of `length` steps whose clean success is p_segment."""
        g, rev, cost, steps = self._eval(
            np.array([float(p_segment)]), np.array([int(length)], dtype=np.int64)
        )
        return SegmentOutcome(float(g[0]), float(rev[0]), float(cost[0]), float(steps[0]))


@dataclass(frozen=True)
class CatchAndFix(_ReviewModel):
    """Model A: the reviewer catches a bad segment with probability r and fixes it.

    4 steps of 0.75, one checkpoint after step 2: success 0.5625 (r = 1), 0.513281
    (r = 0.8); that segment's cost with (c_rev, c_fix, c_fa) = (2, 10, 5), s = 0.95, is
    5.640625.
    """

    recall: Recall = 1.0
    specificity: float = 1.0
    c_rev: float = 1.0
    c_fix: float = 0.0
    c_fa: float = 0.0

    def _eval(self, p_seg: _F, length: NDArray[np.int64]) -> tuple[_F, _F, _F, _F]:
        r = _recall_at(self.recall, length)
        s = self.specificity
        g = p_seg + (1 - p_seg) * r
        cost = self.c_rev + self.c_fix * r * (1 - p_seg) + self.c_fa * (1 - s) * p_seg
        return g, np.ones_like(g), cost, length.astype(float)


@dataclass(frozen=True)
class ApproveDeny(_ReviewModel):
    """Model B: approve or deny; a denied segment is redone until approved.

    P = 0.5625, r = 0.8, s = 0.95 -> g = 0.859296, 1.608040 expected reviews. Human cost
    is c_rev per review. If nothing can ever be approved (a = 0), g = 0 and reviews = inf.
    """

    recall: Recall = 1.0
    specificity: float = 1.0
    c_rev: float = 1.0

    def _eval(self, p_seg: _F, length: NDArray[np.int64]) -> tuple[_F, _F, _F, _F]:
        r = _recall_at(self.recall, length)
        good = p_seg * self.specificity
        a = good + (1 - p_seg) * (1 - r)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(a > 0, good / a, 0.0)
            reviews = np.where(a > 0, 1 / a, np.inf)
        return g, reviews, self.c_rev * reviews, length * reviews


ReviewModel = CatchAndFix | ApproveDeny


@dataclass(frozen=True, slots=True)
class Placement:
    """A set of checkpoints (1-based, "after step j") and what it is predicted to give.

    `objective` is sum ln g - lambda·cost, the quantity the optimiser maximises.
    """

    checkpoints: tuple[int, ...]
    success: float
    expected_reviews: float
    expected_cost: float
    expected_agent_steps: float
    objective: float


def _check_steps(p: ArrayLike) -> _F:
    arr = np.asarray(p, dtype=float)
    if arr.ndim != 1 or arr.size == 0 or ((arr < 0) | (arr > 1)).any():
        raise ValueError("need a non-empty 1-D sequence of step accuracies in [0, 1]")
    return arr


def _check_irreversible(irreversible: Iterable[int], n: int) -> tuple[int, ...]:
    irr = tuple(sorted(set(irreversible)))
    if any(not 1 <= k <= n for k in irr):
        raise ValueError(f"irreversible steps must be in 1..{n}")
    return irr


def _segment_products(p: _F) -> _F:
    """prods[i, j] = P of steps i+1..j (1-based), i.e. prod p[i:j]; 1 on the diagonal."""
    n = p.size
    prods = np.zeros((n + 1, n + 1))
    for i in range(n + 1):
        prods[i, i] = 1.0
        prods[i, i + 1 :] = np.cumprod(p[i:])
    return prods


def _safe_log(x: _F) -> _F:
    with np.errstate(divide="ignore"):
        return np.log(x)


def evaluate_placement(
    p: ArrayLike, checkpoints: Iterable[int], model: ReviewModel, lam: float = 0.0
) -> Placement:
    """Predicted success, reviews, cost and agent steps of a given set of checkpoints.

    p = [0.95, 0.9, 0.8, 0.95, 0.9, 0.85], model B with r 0.8, s 0.95: no checkpoints
    -> 0.497097; after step 6 -> 0.824412.
    """
    arr = _check_steps(p)
    n = arr.size
    cps = tuple(sorted(set(checkpoints)))
    if any(not 1 <= j <= n for j in cps):
        raise ValueError(f"checkpoints must be in 1..{n}")
    starts = np.array((0, *cps[:-1]), dtype=np.int64) if cps else np.zeros(0, np.int64)
    ends = np.array(cps, dtype=np.int64)
    seg_p = np.array([np.prod(arr[i:j]) for i, j in zip(starts, ends, strict=True)])
    g, rev, cost, steps = model._eval(seg_p, ends - starts)
    last = cps[-1] if cps else 0
    tail = float(np.prod(arr[last:]))
    success = float(np.prod(g)) * tail
    log_tail = math.log(tail) if tail > 0 else -math.inf
    objective = float(np.sum(_safe_log(g))) + log_tail - lam * float(np.sum(cost))
    return Placement(
        cps,
        success,
        float(np.sum(rev)),
        float(np.sum(cost)),
        float(np.sum(steps)) + (n - last),
        objective,
    )


def optimal_placement(
    p: ArrayLike,
    budget: int,
    model: ReviewModel,
    irreversible: Iterable[int] = (),
    lam: float = 0.0,
) -> Placement:
    """Best placement of at most `budget` checkpoints by dynamic programming, O(B·n^2).

    Toueg & Babaoglu (1984): D[b][j] = max_{i<j} D[b-1][i] + ln g(i, j) - lam·cost(i, j);
    answer max_{b<=B, i} D[b][i] + ln P(i..n]. Every step in `irreversible` (1-based) must
    end a reviewed segment, i.e. gets a checkpoint right after it (the review happens
    before its effects commit); these forced checkpoints count against the budget. Ties
    go to fewer checkpoints.
    """
    arr = _check_steps(p)
    n = arr.size
    irr = _check_irreversible(irreversible, n)
    if budget < len(irr):
        raise ValueError(f"budget {budget} < {len(irr)} forced checkpoints")
    budget = min(budget, n)

    prods = _segment_products(arr)
    ii, jj = np.triu_indices(n + 1, k=1)
    g, _, cost, _ = model._eval(prods[ii, jj], (jj - ii).astype(np.int64))
    value = np.full((n + 1, n + 1), -np.inf)
    value[ii, jj] = _safe_log(g) - lam * cost

    # irreversible steps strictly inside a reviewed segment (i, j) or anywhere in the tail
    is_irr = np.zeros(n + 1, dtype=np.int64)
    is_irr[list(irr)] = 1
    count = np.cumsum(is_irr)  # count[k] = irreversible steps among 1..k
    inside = count[np.maximum(np.arange(n + 1) - 1, 0)][None, :] - count[:, None]
    value[inside > 0] = -np.inf
    tail = _safe_log(prods[:, n])
    tail[(count[n] - count) > 0] = -np.inf

    d = np.full(n + 1, -np.inf)
    d[0] = 0.0
    back: list[NDArray[np.int64]] = []
    best, best_b, best_i = d[0] + tail[0], 0, 0
    for b in range(1, budget + 1):
        cand = d[:, None] + value
        arg = np.argmax(cand, axis=0)
        d = cand[arg, np.arange(n + 1)]
        back.append(arg)
        total = d + tail
        i = int(np.argmax(total))
        if total[i] > best + 1e-12:
            best, best_b, best_i = float(total[i]), b, i
    if not np.isfinite(best):
        # every placement has zero success; return the cheapest feasible one
        return evaluate_placement(arr, irr, model, lam)
    cps: list[int] = []
    j = best_i
    for b in range(best_b, 0, -1):
        cps.append(j)
        j = int(back[b - 1][j])
    return evaluate_placement(arr, cps, model, lam)


def brute_force_placement(
    p: ArrayLike,
    budget: int,
    model: ReviewModel,
    irreversible: Iterable[int] = (),
    lam: float = 0.0,
) -> Placement:
    """Exhaustive search over all placements (2^n of them): a check on `optimal_placement`."""
    arr = _check_steps(p)
    n = arr.size
    irr = set(_check_irreversible(irreversible, n))
    best: Placement | None = None
    for b in range(min(budget, n) + 1):
        for cps in itertools.combinations(range(1, n + 1), b):
            if not irr.issubset(cps):
                continue
            cand = evaluate_placement(arr, cps, model, lam)
            if best is None or cand.objective > best.objective + 1e-12:
                best = cand
    if best is None:
        raise ValueError(f"budget {budget} < {len(irr)} forced checkpoints")
    return best


def cost_frontier(
    p: ArrayLike,
    model: ReviewModel,
    lambdas: Sequence[float] | None = None,
    budget: int | None = None,
    irreversible: Iterable[int] = (),
) -> list[Placement]:
    """Success-versus-human-cost frontier from a lambda sweep (ANALYSIS.md section 2).

    Each lambda gives the placement maximising sum ln g - lambda·cost; distinct placements
    are returned by increasing expected cost, keeping only those that buy more success.
    Default lambdas: 0 and 61 log-spaced values spanning 1e-4..1e2 per unit of the cost of
    reviewing a single step, so the grid follows the model's cost scale.
    """
    arr = _check_steps(p)
    n = arr.size
    irr = _check_irreversible(irreversible, n)
    if lambdas is None:
        unit = np.median(model._eval(arr, np.ones(n, dtype=np.int64))[2])
        unit = float(unit) if np.isfinite(unit) and unit > 0 else 1.0
        lambdas = [0.0, *(np.geomspace(1e-4, 1e2, 61) / unit)]
    found: dict[tuple[int, ...], Placement] = {}
    for lam in lambdas:
        pl = optimal_placement(arr, n if budget is None else budget, model, irr, float(lam))
        found.setdefault(pl.checkpoints, evaluate_placement(arr, pl.checkpoints, model))
    frontier: list[Placement] = []
    for pl in sorted(found.values(), key=lambda x: (x.expected_cost, -x.success)):
        if not frontier or pl.success > frontier[-1].success + 1e-12:
            frontier.append(pl)
    return frontier
