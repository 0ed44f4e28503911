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
    return t, d


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
