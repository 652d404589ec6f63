"""Statistics over seeds: mean ± std, Student-t quantiles (no scipy at run time) and paired differences."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz's method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: int) -> float:
    """P(T ≤ t) of Student's t distribution with ``df`` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on the CDF, |error| < 1e-12)."""
    if not 0.0 < p < 1.0 or df < 1:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df >= 1, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    while hi - lo > 1e-12 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return 0.5 * (lo + hi)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1; 0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def t_interval(values: Sequence[float], level: float = 0.95) -> list[float] | None:
    """Two-sided Student-t confidence interval of the mean of ``values``; None with fewer than two values."""
    if len(values) < 2:
        return None
    mean, sd = mean_std(values)
    half = t_quantile(0.5 + level / 2.0, len(values) - 1) * sd / math.sqrt(len(values))
    return [mean - half, mean + half]


def paired_difference(column: dict[int, float], baseline: dict[int, float]) -> dict:
    """Mean and 95% t interval over seeds of column − baseline, paired by seed (seeds both ran).

    ``ci95`` is None (JSON null) with a single common seed: one paired difference has no spread to estimate.
    """
    seeds = sorted(set(column) & set(baseline))
    if not seeds:
        raise ValueError("no seed in common between the column and the baseline")
    diffs = [column[s] - baseline[s] for s in seeds]
    return {"mean": statistics.fmean(diffs), "ci95": t_interval(diffs), "seeds": seeds, "per_seed": diffs}
