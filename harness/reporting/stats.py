"""Percentiles with bootstrap confidence intervals: one definition for the benchmarks and the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

QUANTILES = (50, 90, 99)
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95
# above this many values the bootstrap's memory and time grow for no precision; the order-statistic
# interval it converges to is used instead
BOOTSTRAP_MAX_VALUES = 5_000


@dataclass(frozen=True)
class Estimate:
    """A percentile of a sample and its bootstrap confidence interval."""

    value: float
    low: float
    high: float
    n: int

    def overlaps(self, other: Estimate) -> bool:
        return self.low <= other.high and other.low <= self.high

    def format(self, scale: float = 1000.0, digits: int = 1) -> str:
        """``12.3 [11.9, 12.8]`` in milliseconds by default."""
        return f"{self.value * scale:.{digits}f} [{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]"


def percentile_cis(values: Sequence[float], quantiles: Sequence[float] = QUANTILES,
                   resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE,
                   seed: int = 0) -> dict[float, Estimate]:
    """Each q-th percentile (linear interpolation) with a percentile-bootstrap interval, reproducible by seed.

    All quantiles come from the same resamples, drawn in batches so that memory stays bounded.
    """
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if data.size == 0:
        raise ValueError("percentile of no values")
    qs = list(quantiles)
    point = np.percentile(data, qs)
    if data.size == 1:
        return {q: Estimate(float(v), float(v), float(v), 1) for q, v in zip(qs, point)}
    if data.size > BOOTSTRAP_MAX_VALUES:
        return {q: _order_statistic(data, q, float(v), confidence) for q, v in zip(qs, point)}
    rng = np.random.default_rng(seed)
    batch = max(1, min(resamples, 2_000_000 // data.size))
    estimates = []
    for done in range(0, resamples, batch):
        draws = data[rng.integers(0, data.size, size=(min(batch, resamples - done), data.size))]
        estimates.append(np.percentile(draws, qs, axis=1).T)
    table = np.concatenate(estimates)
    alpha = (1 - confidence) / 2 * 100
    lows, highs = np.percentile(table, [alpha, 100 - alpha], axis=0)
    return {q: Estimate(float(v), float(lo), float(hi), int(data.size)) for q, v, lo, hi in zip(qs, point, lows, highs)}


def _order_statistic(data: np.ndarray, q: float, value: float, confidence: float) -> Estimate:
    """The distribution-free interval for a quantile (normal approximation to the binomial ranks)."""
    z = {0.9: 1.645, 0.95: 1.96, 0.99: 2.576}.get(confidence, 1.96)
    n, p = data.size, q / 100
    half = z * (n * p * (1 - p)) ** 0.5
    lo, hi = max(0, int(n * p - half) - 1), min(n - 1, int(n * p + half))
    low, high = np.partition(data, [lo, hi])[[lo, hi]]
    return Estimate(value, float(min(low, value)), float(max(high, value)), int(n))


def percentile_ci(values: Sequence[float], q: float, **kwargs: float) -> Estimate:
    """One percentile with its bootstrap interval (see ``percentile_cis``)."""
    return percentile_cis(values, [q], **kwargs)[q]  # type: ignore[arg-type]


__all__ = ["BOOTSTRAP_RESAMPLES", "CONFIDENCE", "QUANTILES", "Estimate", "percentile_ci", "percentile_cis"]
