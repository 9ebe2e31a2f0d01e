"""Rank metrics, written once for the two places that judge a predictor against the truth.

The table check (:mod:`nas.profile.check`: predicted vs measured cost) and the proxy check
(:mod:`nas.search.proxy_check`: proxy scores vs trained quality) both ask whether a cheap number
orders architectures as the expensive one does. scipy computes the statistics; this module
fixes how a degenerate sample is counted, so the two checks read alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats


def kendall_tau(a, b) -> float:
    """Kendall's tau-b (ties count as neither concordant nor discordant); NaN if either side is constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.kendalltau(a, b).statistic)


def spearman_rho(a, b) -> float:
    """Spearman's rank correlation; NaN if either side is constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.spearmanr(a, b).statistic)


def bootstrap_interval(
    x: np.ndarray,
    y: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    seed: int,
    confidence: float = 0.9,
    resamples: int = 1000,
) -> tuple[float, float]:
    """Paired percentile bootstrap interval of ``statistic(x, y)`` (e.g. :func:`kendall_tau`).

    A resample whose scores are all tied has no correlation: it counts as 0, not NaN, so one
    unlucky draw does not void the interval.
    """

    def safe(a, b):
        value = statistic(a, b)
        return 0.0 if np.isnan(value) else value

    result = stats.bootstrap(
        (x, y),
        safe,
        paired=True,
        vectorized=False,
        n_resamples=resamples,
        method="percentile",
        confidence_level=confidence,
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
