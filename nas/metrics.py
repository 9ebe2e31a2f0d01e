"""Rank metrics, written once for the two places that judge a predictor against the truth.

The table check (:mod:`nas.profile.check`: predicted vs measured cost) and the proxy check
(:mod:`nas.quality.proxy_check`: proxy scores vs trained quality) both ask whether a cheap number
orders architectures as the expensive one does. This module fixes how a degenerate sample is
counted, so the two checks read alike.

The statistics work along the last axis of a whole batch of samples at once: a bootstrap
interval is a thousand resamples, and scipy's per-call overhead (~1 ms for a tau of 12 values)
made the intervals most of ``nas proxy check``'s own time. They are scipy's formulas
(``kendalltau`` variant b, ``spearmanr``); tests/test_metrics.py holds the batches to scipy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats

PAIRS_PER_BATCH = 2_000_000  # resample x pair elements held at once by bootstrap_interval


def kendall_tau(a, b) -> float | np.ndarray:
    """Kendall's tau-b along the last axis (ties count as neither concordant nor discordant); NaN where
    either side is constant. A float for 1-D samples (scipy's ``kendalltau``, O(n log n)); an array for a
    batch of samples (the same statistic from the signs of all pairs, O(n^2) each: bootstrap resamples)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim == 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            return float(stats.kendalltau(a, b).statistic)
    first, second = np.triu_indices(a.shape[-1], k=1)
    sign_a, sign_b = np.sign(a[..., first] - a[..., second]), np.sign(b[..., first] - b[..., second])
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = (sign_a * sign_b).sum(-1) / np.sqrt((sign_a != 0).sum(-1)) / np.sqrt((sign_b != 0).sum(-1))
    return _clipped(tau)


def spearman_rho(a, b) -> float | np.ndarray:
    """Spearman's rank correlation (Pearson's on average ranks) along the last axis; NaN where either side
    is constant. A float for 1-D samples, an array for a batch."""
    ranks_a, ranks_b = (stats.rankdata(np.asarray(v, dtype=float), axis=-1) for v in (a, b))
    ranks_a -= ranks_a.mean(-1, keepdims=True)
    ranks_b -= ranks_b.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ranks_a * ranks_b).sum(-1) / np.sqrt((ranks_a**2).sum(-1)) / np.sqrt((ranks_b**2).sum(-1))
    return _clipped(rho)


def bootstrap_interval(
    x: np.ndarray,
    y: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float | np.ndarray],
    seed: int,
    confidence: float = 0.9,
    resamples: int = 1000,
) -> tuple[float, float]:
    """Paired percentile bootstrap interval of ``statistic(x, y)`` (:func:`kendall_tau`, :func:`spearman_rho`,
    or any function of two samples along their last axis).

    A resample whose scores are all tied has no correlation: it counts as 0, not NaN, so one
    unlucky draw does not void the interval.
    """

    def safe(a, b, axis):
        values = np.asarray(statistic(np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1)))
        return np.where(np.isnan(values), 0.0, values)

    n = len(x)
    result = stats.bootstrap(
        (x, y),
        safe,
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        batch=max(1, PAIRS_PER_BATCH // max(1, n * (n - 1) // 2)),
        method="percentile",
        confidence_level=confidence,
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _clipped(values: np.ndarray) -> float | np.ndarray:
    """Within [-1, 1] (rounding can leave a perfect correlation a hair outside), NaN kept; a float when 0-D."""
    values = np.clip(values, -1.0, 1.0)
    return float(values) if values.ndim == 0 else values
