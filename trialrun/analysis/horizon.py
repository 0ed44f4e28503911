"""Success against task length: logistic time horizons and survival fits (ANALYSIS.md s. 1).

All functions are unit-agnostic: pass lengths/times in steps or in simulated minutes and
the horizons come back in the same unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special
from scipy import stats as st

# ---------------------------------------------------------------------------
# METR logistic horizon
# ---------------------------------------------------------------------------


def logistic_horizon(beta0: float, beta1: float, q: float = 0.5) -> float:
    """Length at which success is q under logit p = beta0 + beta1·log2(length).

    h_q = 2^((logit q - beta0)/beta1) (Kwa et al. 2025, arXiv 2503.14499).
    beta0 = 3, beta1 = -0.5 -> h50 = 64, h80 = 9.3659.
    """
    if beta1 == 0 or not 0 < q < 1:
        raise ValueError("need beta1 != 0 and 0 < q < 1")
    return float(2.0 ** ((special.logit(q) - beta0) / beta1))


@dataclass(frozen=True, slots=True)
class LogisticHorizonFit:
    """Maximum-likelihood fit of logit p = beta0 + beta1·log2(length)."""

    beta0: float
    beta1: float
    h50: float
    h80: float
    n: int
    loglik: float


def fit_logistic_horizon(
    lengths: ArrayLike, success: ArrayLike, max_iter: int = 100, tol: float = 1e-10
) -> LogisticHorizonFit:
    """Fit METR's horizon curve by maximum likelihood (Newton-Raphson, arXiv 2503.14499).

    One row per episode: its length (> 0) and whether it succeeded. Raises ValueError if
    the data are separable (every failure longer than every success), where no finite MLE
    exists.
    """
    x = np.log2(np.asarray(lengths, dtype=float))
    y = np.asarray(success, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2 or not np.isfinite(x).all():
        raise ValueError("need matching 1-D lengths (> 0) and outcomes, at least two")
    if np.ptp(x) == 0:
        raise ValueError("all lengths are equal: slope not identifiable")
    design = np.column_stack([np.ones_like(x), x])

    def loglik(beta: np.ndarray) -> float:
        eta = design @ beta
        # y·eta - log(1 + e^eta), stable for large |eta|
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)))

    beta = np.array([special.logit(np.clip(y.mean(), 0.01, 0.99)), 0.0])
    ll = loglik(beta)
    for _ in range(max_iter):
        mu = special.expit(design @ beta)
        grad = design.T @ (y - mu)
        hess = (design * (mu * (1 - mu))[:, None]).T @ design
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError as exc:
            raise ValueError("degenerate data: information matrix is singular") from exc
        t = 1.0
        while t > 1e-10:  # step halving keeps every Newton step an ascent
            new_ll = loglik(beta + t * step)
            if new_ll >= ll - 1e-12:
                break
            t /= 2
        beta, gain, ll = beta + t * step, new_ll - ll, new_ll
        if abs(gain) < tol and np.max(np.abs(t * step)) < 1e-8:
            break
    else:
        raise ValueError("no convergence: outcomes are (quasi-)separable by length")
    if np.max(np.abs(beta)) > 1e6:
        raise ValueError("outcomes are separable by length: no finite MLE")
    b0, b1 = float(beta[0]), float(beta[1])
    h50 = logistic_horizon(b0, b1, 0.5) if b1 != 0 else math.inf
    h80 = logistic_horizon(b0, b1, 0.8) if b1 != 0 else math.inf
    return LogisticHorizonFit(b0, b1, h50, h80, int(x.size), ll)


# ---------------------------------------------------------------------------
# Constant hazard (exponential) and Weibull survival
# ---------------------------------------------------------------------------


def exponential_rate_from_t50(t50: float) -> float:
    """Hazard rate with median t50: lambda = ln 2 / t50 (Ord 2025, arXiv 2505.05115)."""
    return math.log(2) / t50


def exponential_survival(t: ArrayLike, lam: float) -> np.ndarray | float:
    """S(t) = exp(-lambda·t). lambda from T50 = 60, t = 120 -> 0.25."""
    out = np.exp(-lam * np.asarray(t, dtype=float))
    return float(out) if out.ndim == 0 else out


def exponential_horizon(lam: float, q: float = 0.5) -> float:
    """Time at which survival falls to q: T_q = -ln q / lambda. T50 = 60 -> T80 = 19.3157."""
    if lam <= 0 or not 0 < q < 1:
        raise ValueError("need lambda > 0 and 0 < q < 1")
    return -math.log(q) / lam


def weibull_eta_from_t50(t50: float, k: float) -> float:
    """Weibull scale with median t50: eta = t50 / (ln 2)^(1/k). T50 = 60, k = 0.6 -> 110.5203."""
    return t50 / math.log(2) ** (1 / k)


def weibull_survival(t: ArrayLike, eta: float, k: float) -> np.ndarray | float:
    """S(t) = exp(-(t/eta)^k); k < 1 means the hazard falls with time."""
    out = np.exp(-((np.asarray(t, dtype=float) / eta) ** k))
    return float(out) if out.ndim == 0 else out


def weibull_horizon(eta: float, k: float, q: float = 0.5) -> float:
    """T_q = eta·(-ln q)^(1/k). eta 110.5203, k 0.6 -> T80 = 9.0730."""
    if eta <= 0 or k <= 0 or not 0 < q < 1:
        raise ValueError("need eta > 0, k > 0 and 0 < q < 1")
    return eta * (-math.log(q)) ** (1 / k)


@dataclass(frozen=True, slots=True)
class ExponentialFit:
    """Constant-hazard MLE: lambda = events / total exposure."""

    lam: float
    t50: float
    t80: float
    n_events: int
    exposure: float
    loglik: float


@dataclass(frozen=True, slots=True)
class WeibullFit:
    """Weibull MLE under right-censoring."""

    eta: float
    k: float
    t50: float
    t80: float
    n_events: int
    loglik: float


def _survival_data(times: ArrayLike, events: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(times, dtype=float)
    d = np.asarray(events, dtype=bool)
    if t.shape != d.shape or t.ndim != 1 or t.size == 0:
        raise ValueError("need matching 1-D times and event flags")
    if (t < 0).any() or (t[d] <= 0).any() or not np.isfinite(t).all():
        raise ValueError("times must be finite, >= 0, and > 0 where an event occurred")
    if not d.any():
        raise ValueError("no events observed: the hazard is not identifiable")
    # Sorted: float sums depend on order, and the episodes' order (by id) differs between two
    # identical runs, whose fits must not.
    order = np.lexsort((d, t))
    return t[order], d[order]


def fit_exponential(times: ArrayLike, events: ArrayLike) -> ExponentialFit:
    """Right-censored exponential MLE (Ord 2025, arXiv 2505.05115).

    Each episode gives the time of its first failure (event True) or the time it was last
    seen failure-free (event False, censored). lambda = d / sum t.
    """
    t, d = _survival_data(times, events)
    n_ev, exposure = int(d.sum()), float(t.sum())
    lam = n_ev / exposure
    loglik = n_ev * math.log(lam) - lam * exposure
    return ExponentialFit(
        lam, exponential_horizon(lam, 0.5), exponential_horizon(lam, 0.8), n_ev, exposure, loglik
    )


def _weibull_loglik(t: np.ndarray, d: np.ndarray, eta: float, k: float) -> float:
    z = t / eta
    log_z = np.log(np.where(d, z, 1.0))  # only event rows use log z; avoids log 0
    return float(np.sum(d * (math.log(k / eta) + (k - 1) * log_z)) - np.sum(z**k))


def fit_weibull(times: ArrayLike, events: ArrayLike) -> WeibullFit:
    """Right-censored Weibull MLE, S(t) = exp(-(t/eta)^k).

    For fixed k the MLE of eta is closed form, eta^k = sum t^k / d; k solves the profile
    score sum t^k ln t / sum t^k - 1/k - mean(ln t over events) = 0, which is increasing
    in k, so a bracketing root finder is exact and safe. Needs at least two distinct
    event times.
    """
    t, d = _survival_data(times, events)
    n_ev = int(d.sum())
    if np.unique(t[d]).size < 2:
        raise ValueError("need at least two distinct event times to fit the shape k")
    pos = t > 0  # zero censoring times add nothing to the likelihood
    tp = t[pos]
    # scale times so t^k neither overflows nor underflows while k is searched
    scale = float(np.exp(np.mean(np.log(tp))))
    lt = np.log(tp / scale)
    mean_ev = float(np.mean(np.log(t[d] / scale)))

    def score(log_k: float) -> float:
        k = math.exp(log_k)
        w = np.exp(k * lt - np.max(k * lt))
        return float(w @ lt / w.sum()) - 1.0 / k - mean_ev

    lo, hi = -1.0, 1.0
    while score(lo) > 0:
        lo -= 1.0
        if lo < -30:
            raise ValueError("shape k not identifiable")
    while score(hi) < 0:
        hi += 1.0
        if hi > 30:
            raise ValueError("shape k not identifiable")
    k = math.exp(optimize.brentq(score, lo, hi, xtol=1e-14, rtol=1e-14))
    m = float(np.max(k * lt))
    eta = scale * math.exp((m + math.log(np.sum(np.exp(k * lt - m)) / n_ev)) / k)
    return WeibullFit(
        eta,
        k,
        weibull_horizon(eta, k, 0.5),
        weibull_horizon(eta, k, 0.8),
        n_ev,
        _weibull_loglik(t, d, eta, k),
    )


def weibull_shape_ci(times: ArrayLike, events: ArrayLike, level: float = 0.95,
                     fit: WeibullFit | None = None) -> tuple[float, float]:
    """Profile-likelihood interval for the Weibull shape k under right-censoring.

    With the scale profiled out (eta^k = sum t^k / d), the log-likelihood in k is
    l(k) = d ln k - d ln(sum t^k / d) + (k - 1) sum_events ln t - d; the interval holds
    every k with 2(l(k_hat) - l(k)) <= chi2_1(level) (3.84 at 95%). "The hazard rises"
    (k > 1) or "falls" (k < 1) is only worth saying when this interval excludes 1.
    A bound that the data cannot pin down comes back as 0 or inf.
    """
    t, d = _survival_data(times, events)
    fit = fit or fit_weibull(t, d)
    # distinct positive times with their counts: l(k) only needs sum t^k
    uniq, counts = np.unique(t[t > 0], return_counts=True)
    scale = float(np.exp(np.mean(np.log(t[t > 0]))))
    lt = np.log(uniq / scale)
    log_w = np.log(counts)
    n_ev = int(d.sum())
    sum_ev = float(np.sum(np.log(t[d] / scale)))

    def prof(log_k: float) -> float:
        k = math.exp(log_k)
        kl = k * lt + log_w
        m = float(np.max(kl))
        log_sum = m + math.log(float(np.sum(np.exp(kl - m))))
        return n_ev * log_k - n_ev * (log_sum - math.log(n_ev)) + (k - 1) * sum_ev - n_ev

    top = prof(math.log(fit.k))
    cut = float(st.chi2.ppf(level, 1)) / 2
    return _shape_bounds(lambda log_k: top - prof(log_k) - cut, math.log(fit.k))


# ---------------------------------------------------------------------------
# Whole steps: interval-censored fits
# ---------------------------------------------------------------------------
#
# A first error "at step s" only says the time to the error lies in (s - 1, s]. Fitting a
# continuous curve to the integers themselves leaves no mass near 0 and reads a constant
# per-step hazard as a rising one (Weibull k well above 1 on geometric data). The interval
# likelihood does not: for a constant hazard h per step the exponential with
# lambda = -ln(1 - h) gives P(s - 1 < T <= s) = (1 - h)^(s - 1)·h exactly.


def _step_data(steps: ArrayLike, events: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (steps, event) rows with their counts: a run has few distinct lengths."""
    t = np.asarray(steps, dtype=float)
    d = np.asarray(events, dtype=bool)
    if t.shape != d.shape or t.ndim != 1 or t.size == 0:
        raise ValueError("need matching 1-D step counts and event flags")
    if (t < 0).any() or (t[d] < 1).any() or not np.isfinite(t).all():
        raise ValueError("step counts must be finite, >= 0, and >= 1 where an error occurred")
    if not d.any():
        raise ValueError("no events observed: the hazard is not identifiable")
    keys, counts = np.unique(2 * t + d, return_counts=True)  # steps are whole numbers
    return np.floor(keys / 2), (keys % 2) == 1, counts.astype(float)


def fit_exponential_steps(steps: ArrayLike, events: ArrayLike) -> ExponentialFit:
    """Constant hazard from whole steps: an error at step s means T in (s - 1, s], an
    episode without one survived its s steps. The MLE is the geometric one:
    per-step hazard h = errors / (errors + error-free steps), lambda = -ln(1 - h)."""
    return _exponential_steps(*_step_data(steps, events))


def _exponential_steps(t: np.ndarray, d: np.ndarray, w: np.ndarray) -> ExponentialFit:
    n_ev = float(w[d].sum())
    exposure = float((w * np.where(d, t - 1, t)).sum())  # steps survived
    lam = math.log1p(n_ev / exposure) if exposure > 0 else math.inf
    loglik = -lam * exposure + n_ev * math.log(-math.expm1(-lam)) if exposure > 0 else 0.0
    return ExponentialFit(lam, exponential_horizon(lam, 0.5), exponential_horizon(lam, 0.8),
                          int(n_ev), exposure, loglik)


def _weibull_steps_loglik(t: np.ndarray, d: np.ndarray, w: np.ndarray, log_eta: float,
                          k: float) -> float:
    hi = np.exp(k * (np.log(np.maximum(t, 1e-300)) - log_eta)) * (t > 0)
    lo = np.exp(k * (np.log(np.maximum(t - 1, 1e-300)) - log_eta)) * (t - 1 > 0)
    gap = np.maximum(hi - lo, 1e-300)
    ev = -lo + np.log(-np.expm1(-gap))  # ln(S(s - 1) - S(s))
    return float(np.sum(w * np.where(d, ev, -hi)))


def _profile_eta(t: np.ndarray, d: np.ndarray, w: np.ndarray, k: float,
                 guess: float) -> tuple[float, float]:
    """max over log eta of the step likelihood at shape k: (log eta, loglik)."""
    res = optimize.minimize_scalar(lambda le: -_weibull_steps_loglik(t, d, w, le, k),
                                   bracket=(guess - 1.0, guess + 1.0))
    return float(res.x), -float(res.fun)


def fit_weibull_steps(steps: ArrayLike, events: ArrayLike) -> WeibullFit:
    """Weibull S(t) = exp(-(t/eta)^k) fitted to whole steps with the interval likelihood
    (see `fit_exponential_steps`); k = 1 recovers the constant per-step hazard."""
    return _weibull_steps(*_step_data(steps, events))


def _weibull_steps(t: np.ndarray, d: np.ndarray, w: np.ndarray) -> WeibullFit:
    if np.unique(t[d]).size < 2:
        raise ValueError("need at least two distinct error steps to fit the shape k")
    guess = math.log(max(_exponential_steps(t, d, w).t50, 1e-6))

    def neg(log_k: float) -> float:
        return -_profile_eta(t, d, w, math.exp(log_k), guess)[1]

    res = optimize.minimize_scalar(neg, bracket=(-0.5, 0.5))
    if not res.success or abs(res.x) > 20:
        raise ValueError("shape k not identifiable")
    k = math.exp(float(res.x))
    log_eta, loglik = _profile_eta(t, d, w, k, guess)
    eta = math.exp(log_eta)
    return WeibullFit(eta, k, weibull_horizon(eta, k, 0.5), weibull_horizon(eta, k, 0.8),
                      int(w[d].sum()), loglik)


def weibull_steps_shape_ci(steps: ArrayLike, events: ArrayLike, level: float = 0.95,
                           fit: WeibullFit | None = None) -> tuple[float, float]:
    """Profile-likelihood CI of the shape k for whole steps (see `weibull_shape_ci`)."""
    t, d, w = _step_data(steps, events)
    fit = fit or _weibull_steps(t, d, w)
    guess = math.log(fit.eta)
    cut = float(st.chi2.ppf(level, 1)) / 2

    def gap(log_k: float) -> float:
        return fit.loglik - _profile_eta(t, d, w, math.exp(log_k), guess)[1] - cut

    return _shape_bounds(gap, math.log(fit.k))


def _shape_bounds(gap, start: float) -> tuple[float, float]:
    """Where `gap` (likelihood drop minus the cut, negative at `start`) crosses 0 on either
    side of `start`, in log k; 0 or inf when the data cannot pin a side down."""

    def bound(direction: float) -> float:
        step = 0.25
        for _ in range(60):
            far = start + direction * step
            if abs(far) > 30:
                break
            if gap(far) > 0:
                return math.exp(optimize.brentq(gap, min(start, far), max(start, far),
                                                xtol=1e-10))
            step *= 1.6
        return 0.0 if direction < 0 else math.inf

    return bound(-1.0), bound(1.0)
