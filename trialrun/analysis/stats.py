"""Proportions, repeated trials, paired comparisons, judge calibration and monitoring.

Pure functions: no I/O, no module state. Definitions and worked examples follow
ANALYSIS.md sections 4-6; each docstring names its source.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as st

Z95 = 1.959964  # two-sided 95% normal quantile, as ANALYSIS.md rounds it


# ---------------------------------------------------------------------------
# Proportions
# ---------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (Wilson 1927).

    8/10 -> (0.4902, 0.9433). With n = 0 nothing is known: (0, 1).
    """
    _check_kn(k, n)
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson 1934) two-sided interval from beta quantiles.

    8/10 -> (0.4439, 0.9748); 0/30 -> upper 0.1157.
    """
    _check_kn(k, n)
    lo = 0.0 if k == 0 else float(st.beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(st.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def rule_of_three(n: int) -> float:
    """Approximate 95% upper bound 3/n on a rate after 0 failures in n.

    Hanley & Lippman-Hand (1983). 0/30 -> 0.1.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    return 3.0 / n


def _check_kn(k: int, n: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")


# ---------------------------------------------------------------------------
# Repeated trials
# ---------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k = 1 - C(n-c, k)/C(n, k) (Chen et al. 2021, arXiv 2107.03374).

    n = 10, c = 3, k = 5 -> 0.916667.
    """
    _check_nck(n, c, k)
    total = math.comb(n, k)
    # one correctly rounded int/int division: exact to float precision for any n, and
    # never below pass_hat_k, which shares the denominator
    return (total - math.comb(n - c, k)) / total


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k = C(c, k)/C(n, k): chance that k fresh trials all succeed.

    tau-bench (arXiv 2406.12045).
    n = 10, c = 8, k = 4 -> 0.333333 (the naive 0.8**4 = 0.4096 overstates it).
    """
    _check_nck(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def mean_pass_hat_k(tasks: Iterable[tuple[int, int]], k: int) -> float:
    """Mean pass^k over tasks given as (n, c) pairs (tau-bench, arXiv 2406.12045).

    [(10, 8), (10, 5), (10, 10)], k = 2 -> 0.614815.
    """
    values = [pass_hat_k(n, c, k) for n, c in tasks]
    if not values:
        raise ValueError("no tasks")
    return float(np.mean(values))


def _check_nck(n: int, c: int, k: int) -> None:
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")


def _order_stat_weights(n: int, k: int, worst: bool) -> NDArray[np.float64]:
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    total = math.comb(n, k)
    i = range(1, n + 1)
    # exact integer binomials, divided once, so weights sum to 1 up to rounding
    num = [math.comb(n - j, k - 1) if worst else math.comb(j - 1, k - 1) for j in i]
    return np.array([x / total for x in num])


def worst_of_k(scores: ArrayLike, k: int) -> float:
    """Expected minimum of k scores drawn without replacement from n observed ones.

    Weight of the i-th smallest score is C(n-i, k-1)/C(n, k) (ANALYSIS.md section 4).
    [0.2, 0.5, 0.7, 0.9, 1.0], k = 2 -> 0.46.
    """
    s = np.sort(np.asarray(scores, dtype=float))
    return float(_order_stat_weights(s.size, k, worst=True) @ s)


def best_of_k(scores: ArrayLike, k: int) -> float:
    """Expected maximum of k scores drawn without replacement; weight C(i-1, k-1)/C(n, k).

    [0.2, 0.5, 0.7, 0.9, 1.0], k = 2 -> 0.86.
    """
    s = np.sort(np.asarray(scores, dtype=float))
    return float(_order_stat_weights(s.size, k, worst=False) @ s)


def percentiles(
    values: ArrayLike, qs: Sequence[float] = (50, 90, 99)
) -> dict[float, float | None]:
    """Linear-interpolated percentiles keyed by q; every value is None for empty input."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        return {q: None for q in qs}
    out = np.percentile(v, list(qs))
    return {q: float(x) for q, x in zip(qs, out, strict=True)}


def design_effect(m: float, icc: float) -> float:
    """Variance inflation 1 + (m-1)·ICC from m episodes per task (Miller, arXiv 2411.00640)."""
    return 1.0 + (m - 1.0) * icc


# ---------------------------------------------------------------------------
# Cluster bootstrap
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BootstrapCI:
    """Percentile bootstrap interval; `se` is the standard deviation of the replicates."""

    estimate: float
    lo: float
    hi: float
    se: float
    n_boot: int


def cluster_sums(labels: ArrayLike, values: ArrayLike) -> NDArray[np.float64]:
    """Sum per-episode rows (n_episodes, m) within clusters -> (n_clusters, m).

    Clusters are ordered by sorted label. Feed the result to `bootstrap_ci`.
    """
    lab = np.asarray(labels)
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[:, None]
    if lab.shape[0] != v.shape[0]:
        raise ValueError("labels and values differ in length")
    _, inv = np.unique(lab, return_inverse=True)
    out = np.zeros((int(inv.max()) + 1 if inv.size else 0, v.shape[1]))
    np.add.at(out, inv.ravel(), v)
    return out


def _distinct_rows(a: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Distinct rows of `a` and their multiplicities.

    Groups rows by a random projection (one float sort instead of a slow lexicographic
    row sort), then verifies every row equals its group's representative, falling back to
    the exact row sort if two different rows ever share a projection.
    """
    direction = np.random.default_rng(0x5EED).standard_normal(a.shape[1])
    _, first, inv, mult = np.unique(
        a @ direction, return_index=True, return_inverse=True, return_counts=True
    )
    uniq = a[first]
    if np.array_equal(uniq[inv.ravel()], a):
        return uniq, mult
    uniq, mult = np.unique(a, axis=0, return_counts=True)
    return uniq, mult


def bootstrap_ci(
    stat_fn: Callable[[NDArray[np.float64]], ArrayLike],
    clusters: ArrayLike,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    ignore_nan: bool = False,
) -> BootstrapCI:
    """Cluster (task-level) percentile bootstrap (Miller, arXiv 2411.00640).

    `clusters` holds one row of summed sufficient statistics per cluster, shape
    (n_clusters, m) (see `cluster_sums`). Each replicate draws n_clusters clusters with
    replacement and sums their rows; `stat_fn` maps summed rows of shape (..., m) to the
    statistic (shape (...)), so it is called on whole batches of replicates at once.
    Any statistic that is a function of sums fits: means, rates, ratios, lift.
    Example, success rate by task: ``stat_fn = lambda s: s[..., 1] / s[..., 0]`` with rows
    (episodes, successes).

    Cost is O(n_boot · distinct rows) when rows repeat (boolean episode data, few tasks)
    and O(n_boot · n_clusters) random draws when every row is distinct. With `ignore_nan`
    replicates where the statistic is undefined (a ratio 0/0) are left out of the interval.
    """
    a = np.asarray(clusters, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    n_c = a.shape[0]
    if n_c == 0:
        raise ValueError("no clusters")
    if not 0 < alpha < 1 or n_boot < 1:
        raise ValueError("need 0 < alpha < 1 and n_boot >= 1")
    estimate = float(np.asarray(stat_fn(a.sum(axis=0))))
    rng = np.random.default_rng(seed)
    # Resampling clusters uniformly is the same as a multinomial over *distinct* rows
    # weighted by their multiplicity; boolean episode data has few distinct rows, so
    # this turns O(n_boot * n_clusters) draws into O(n_boot * n_distinct).
    uniq, mult = _distinct_rows(a)
    sums = np.empty((n_boot, a.shape[1]))
    if uniq.shape[0] * 8 <= n_c:
        counts = rng.multinomial(n_c, mult / n_c, size=n_boot).astype(float)
        sums[:] = counts @ uniq
    else:
        chunk = max(1, 4_000_000 // n_c)  # bounds memory at a few tens of MB
        for start in range(0, n_boot, chunk):
            rows = min(chunk, n_boot - start)
            idx = rng.integers(0, n_c, size=(rows, n_c))
            idx += (np.arange(rows) * n_c)[:, None]
            counts = np.bincount(idx.ravel(), minlength=rows * n_c).reshape(rows, n_c)
            sums[start : start + rows] = counts.astype(float) @ a
    reps = np.asarray(stat_fn(sums), dtype=float).reshape(n_boot)
    if ignore_nan:
        reps = reps[~np.isnan(reps)]
        if reps.size < 2:
            return BootstrapCI(estimate, math.nan, math.nan, math.nan, n_boot)
    with np.errstate(invalid="ignore"):  # inf replicates: inf bounds, nan spread
        lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
        se = float(np.std(reps, ddof=1))
    return BootstrapCI(estimate, float(lo), float(hi), se, n_boot)


# ---------------------------------------------------------------------------
# Paired comparison and sample size
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class McNemarResult:
    """McNemar test on discordant pairs b (A ok, B bad) and c (A bad, B ok)."""

    chi2: float
    p_chi2: float
    p_exact: float


def mcnemar(b: int, c: int) -> McNemarResult:
    """McNemar's test: continuity-corrected chi2 = (|b-c|-1)^2/(b+c) and exact binomial p.

    b = 15, c = 5 -> chi2 4.05, p 0.044171, exact p 0.041389 (McNemar 1947). The
    correction is floored at 0 so b == c gives chi2 0, p 1.
    """
    if b < 0 or c < 0:
        raise ValueError("counts must be non-negative")
    n = b + c
    if n == 0:
        return McNemarResult(0.0, 1.0, 1.0)
    chi2 = max(abs(b - c) - 1, 0) ** 2 / n
    p_chi2 = float(st.chi2.sf(chi2, 1))
    p_exact = min(1.0, 2.0 * float(st.binom.cdf(min(b, c), n, 0.5)))
    return McNemarResult(float(chi2), p_chi2, p_exact)


def paired_se(diffs: ArrayLike) -> float:
    """Standard error sd(d)/sqrt(n) of the mean paired difference (ddof = 1)."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        raise ValueError("need at least two pairs")
    return float(np.std(d, ddof=1) / math.sqrt(d.size))


def _z(alpha: float, power: float) -> tuple[float, float]:
    return float(st.norm.ppf(1 - alpha / 2)), float(st.norm.ppf(power))


def sample_size_unpaired(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Per-arm n to detect p1 vs p2, two-sided (Fleiss, Levin & Paik 2003, pooled null SD).

    n = (z_a·sqrt(2·pbar·qbar) + z_b·sqrt(p1q1 + p2q2))^2 / (p1-p2)^2; 0.70 vs 0.80 -> 294.
    """
    if p1 == p2:
        raise ValueError("p1 and p2 must differ")
    za, zb = _z(alpha, power)
    pbar = (p1 + p2) / 2
    num = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(num**2 / (p1 - p2) ** 2)


def sample_size_paired(
    discordant: float, delta: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Pairs needed for McNemar's test (Connor 1987).

    n = (z_a·sqrt(psi) + z_b·sqrt(psi - delta^2))^2 / delta^2 with psi the discordant rate
    and delta the difference in success rates. psi = 0.2, delta = 0.1 -> 155.
    """
    if not (delta != 0 and delta * delta < discordant <= 1):
        raise ValueError("need 0 < delta^2 < discordant <= 1")
    za, zb = _z(alpha, power)
    num = za * math.sqrt(discordant) + zb * math.sqrt(discordant - delta * delta)
    return math.ceil(num**2 / delta**2)


# ---------------------------------------------------------------------------
# LLM-as-judge calibration
# ---------------------------------------------------------------------------


def cohens_kappa(table: ArrayLike) -> float:
    """Cohen's kappa (p_o - p_e)/(1 - p_e) from a square rater-by-rater count table.

    [[40, 10], [5, 45]] -> 0.7 (Cohen 1960). Returns 1.0 when p_e == 1 and p_o == 1.
    """
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.sum() <= 0:
        raise ValueError("need a non-empty square table")
    n = t.sum()
    p_o = np.trace(t) / n
    p_e = float((t.sum(axis=1) / n) @ (t.sum(axis=0) / n))
    if p_e == 1.0:
        return 1.0 if p_o == 1.0 else 0.0
    return float((p_o - p_e) / (1 - p_e))


def _is_missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def krippendorff_alpha_nominal(ratings: Sequence[Sequence[Hashable | None]]) -> float:
    """Krippendorff's alpha for nominal data (Krippendorff 2004, coincidence matrix form).

    `ratings` is units x coders; None or NaN marks a missing rating. Units with fewer than
    two ratings are not pairable and drop out. The judge-vs-human table
    [[40, 10], [5, 45]] as 100 units x 2 coders -> 0.700752.
    """
    cats: dict[Hashable, int] = {}
    unit_rows: list[list[int]] = []
    for unit in ratings:
        vals = [cats.setdefault(v, len(cats)) for v in unit if not _is_missing(v)]
        if len(vals) >= 2:
            unit_rows.append(vals)
    if not unit_rows:
        raise ValueError("no unit has two ratings")
    counts = np.zeros((len(unit_rows), len(cats)))
    for u, vals in enumerate(unit_rows):
        np.add.at(counts[u], vals, 1.0)
    m_u = counts.sum(axis=1)
    # o_ck = sum_u n_uc (n_uk - [c == k]) / (m_u - 1)
    w = counts / (m_u - 1)[:, None]
    o = w.T @ counts - np.diag(w.sum(axis=0))
    n_c = o.sum(axis=1)
    n = n_c.sum()
    observed = n - np.trace(o)
    expected = n * n - float(n_c @ n_c)
    if expected == 0:
        return 1.0  # one category only: no disagreement is possible
    return float(1.0 - (n - 1) * observed / expected)


def sensitivity_specificity(table: ArrayLike) -> tuple[float | None, float | None]:
    """(Se, Sp) of a judge from [[TP, FP], [FN, TN]]: rows judge +/-, columns human +/-.

    [[40, 10], [5, 45]] -> (0.888889, 0.818182). None where a column is empty.
    """
    (tp, fp), (fn, tn) = np.asarray(table, dtype=float)
    se = float(tp / (tp + fn)) if tp + fn > 0 else None
    sp = float(tn / (tn + fp)) if tn + fp > 0 else None
    return se, sp


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its standard error."""

    value: float
    se: float


def rogan_gladen(p_obs: float, sensitivity: float, specificity: float, n: int) -> Estimate:
    """Prevalence corrected for judge error (Rogan & Gladen 1978).

    pi = (p_obs + Sp - 1)/(Se + Sp - 1), SE = sqrt(p(1-p)/n)/(Se + Sp - 1).
    Se 0.95, Sp 0.80, p_obs 0.70, n 1000 -> 0.666667, SE 0.019322. Not clipped to [0, 1],
    so an out-of-range value stays visible as evidence of misestimated Se/Sp.
    """
    j = sensitivity + specificity - 1
    if j <= 0:
        raise ValueError("Se + Sp must exceed 1 (a judge better than chance)")
    return Estimate((p_obs + specificity - 1) / j, math.sqrt(p_obs * (1 - p_obs) / n) / j)


def ppi_mean_from_stats(
    judge_mean_unlabelled: float,
    judge_var_unlabelled: float,
    n_unlabelled: int,
    rectifier_mean: float,
    rectifier_var: float,
    n_golden: int,
) -> Estimate:
    """Prediction-powered mean from summaries (Angelopoulos et al., arXiv 2301.09633).

    theta = mean judge (unlabelled) + mean(human - judge) (golden);
    SE = sqrt(var_judge/N + var_rectifier/n). With the ANALYSIS.md numbers
    (0.70, 0.7·0.3, 1000, -0.06, 0.137778, 100) -> 0.64, SE 0.039847.
    """
    se = math.sqrt(judge_var_unlabelled / n_unlabelled + rectifier_var / n_golden)
    return Estimate(judge_mean_unlabelled + rectifier_mean, se)


def ppi_mean(
    judge_unlabelled: ArrayLike, judge_golden: ArrayLike, human_golden: ArrayLike
) -> Estimate:
    """Prediction-powered mean from raw scores (arXiv 2301.09633), sample variances (ddof 1).

    The golden set carries both a judge and a human score per item; the unlabelled set only
    a judge score. SE shrinks below the humans-only sd(human)/sqrt(n) when the judge tracks
    the humans. ANALYSIS.md's SE 0.039847 takes the unlabelled variance as p(1-p) = 0.21;
    Bessel-corrected over its 1000 scores this gives 0.039850 (use `ppi_mean_from_stats`
    to reproduce the former).
    """
    ju = np.asarray(judge_unlabelled, dtype=float)
    jg = np.asarray(judge_golden, dtype=float)
    hg = np.asarray(human_golden, dtype=float)
    if jg.shape != hg.shape or jg.size < 2 or ju.size < 2:
        raise ValueError("need >= 2 unlabelled and >= 2 paired golden scores")
    d = hg - jg
    return ppi_mean_from_stats(
        float(ju.mean()), float(ju.var(ddof=1)), ju.size, float(d.mean()), float(d.var(ddof=1)),
        d.size,
    )


# ---------------------------------------------------------------------------
# Production monitoring
# ---------------------------------------------------------------------------


def sample_size_rate(
    p: float, margin: float, population: int | None = None, z: float = Z95
) -> float:
    """Sample size to estimate a rate p to +-margin: n0 = z^2 p(1-p)/margin^2 (Cochran 1977).

    With a finite population N, n = n0/(1 + (n0 - 1)/N). Unrounded: ceil it for a count.
    p 0.05, margin 0.02 -> 456.17 (457 samples); N = 5000 -> 418.1.
    """
    n0 = z * z * p * (1 - p) / (margin * margin)
    if population is None:
        return n0
    return n0 / (1 + (n0 - 1) / population)


def zero_failure_n(max_rate: float, confidence: float = 0.95) -> int:
    """Failure-free runs needed to show rate < max_rate: ceil(ln(1-conf)/ln(1-max_rate)).

    1% at 95% -> 299 (success-run theorem).
    """
    if not 0 < max_rate < 1 or not 0 < confidence < 1:
        raise ValueError("max_rate and confidence must lie in (0, 1)")
    return math.ceil(math.log(1 - confidence) / math.log(1 - max_rate) - 1e-12)


@dataclass(frozen=True, slots=True)
class AcceptancePlan:
    """Single sampling plan: inspect n, accept the lot if failures <= c."""

    n: int
    c: int
    p_accept_aql: float
    p_accept_ltpd: float


def acceptance_plan(
    aql: float, ltpd: float, alpha: float = 0.05, beta: float = 0.10, max_n: int = 100_000
) -> AcceptancePlan:
    """Smallest binomial single-sampling plan meeting producer and consumer risk.

    Needs P(accept | AQL) >= 1 - alpha and P(accept | LTPD) <= beta (ANSI/ASQ Z1.4 style
    OC-curve search). AQL 1%, LTPD 5%, alpha 0.05, beta 0.10 -> n = 132, c = 3.
    """
    if not 0 < aql < ltpd < 1:
        raise ValueError("need 0 < aql < ltpd < 1")
    for c in range(max_n):
        # smallest n that protects the consumer for this c; a larger n only hurts the producer
        lo, hi = c + 1, max_n
        if st.binom.cdf(c, hi, ltpd) > beta:
            break
        while lo < hi:
            mid = (lo + hi) // 2
            if st.binom.cdf(c, mid, ltpd) <= beta:
                hi = mid
            else:
                lo = mid + 1
        pa = float(st.binom.cdf(c, lo, aql))
        if pa >= 1 - alpha:
            return AcceptancePlan(lo, c, pa, float(st.binom.cdf(c, lo, ltpd)))
    raise ValueError(f"no plan with n <= {max_n}")


def p_chart_limits(p_bar: float, n: int, sigmas: float = 3.0) -> tuple[float, float]:
    """Shewhart p-chart limits p_bar +- sigmas·sqrt(p_bar(1-p_bar)/n), clipped to [0, 1].

    p_bar 0.05, n 200 -> (0.003767, 0.096233).
    """
    half = sigmas * math.sqrt(p_bar * (1 - p_bar) / n)
    return max(0.0, p_bar - half), min(1.0, p_bar + half)


def sprt_boundaries(alpha: float, beta: float) -> tuple[float, float]:
    """Wald's SPRT log-likelihood-ratio bounds (lower, upper) = (ln(b/(1-a)), ln((1-b)/a)).

    alpha 0.05, beta 0.10 -> (-2.251292, 2.890372) (Wald 1945).
    """
    return math.log(beta / (1 - alpha)), math.log((1 - beta) / alpha)


def sprt_increments(p0: float, p1: float) -> tuple[float, float]:
    """LLR added by (a failure, a pass) when testing failure rate p0 against p1 > p0.

    p0 0.05, p1 0.15 -> (1.098612, -0.111226).
    """
    if not 0 < p0 < p1 < 1:
        raise ValueError("need 0 < p0 < p1 < 1")
    return math.log(p1 / p0), math.log((1 - p1) / (1 - p0))


@dataclass(frozen=True, slots=True)
class SPRTResult:
    """`decision`: 'reject' (rate is p1), 'accept' (rate is p0) or 'continue'.

    `at` is the number of observations consumed when deciding (1-based index of the
    deciding observation), or the stream length when still undecided; `llr` the statistic
    at that point.
    """

    decision: Literal["reject", "accept", "continue"]
    at: int
    llr: float


def sprt_run(
    failed: Iterable[bool], p0: float, p1: float, alpha: float = 0.05, beta: float = 0.10
) -> SPRTResult:
    """Run Wald's SPRT over a stream of outcomes, True meaning a failure.

    10 passes, fail, 3 passes, fail, fail, pass, fail, fail with p0 0.05, p1 0.15 ->
    reject at observation 19.
    """
    lower, upper = sprt_boundaries(alpha, beta)
    inc_fail, inc_pass = sprt_increments(p0, p1)
    llr, i = 0.0, 0
    for i, f in enumerate(failed, start=1):
        llr += inc_fail if f else inc_pass
        if llr >= upper:
            return SPRTResult("reject", i, llr)
        if llr <= lower:
            return SPRTResult("accept", i, llr)
    return SPRTResult("continue", i, llr)
