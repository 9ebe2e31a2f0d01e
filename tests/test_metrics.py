"""The rank metrics are scipy's statistics, computed for a whole batch of samples at once.

scipy is the reference here: the metrics are written with numpy (one call for a thousand
bootstrap resamples), and each value must equal what ``scipy.stats`` gives for the same sample,
ties, constant sides and single pairs included.
"""

import warnings

import numpy as np
import pytest
from scipy import stats

from nas.metrics import PAIRS_PER_BATCH, bootstrap_interval, kendall_tau, spearman_rho


def scipy_tau(a, b) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.kendalltau(a, b).statistic)


def scipy_rho(a, b) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.spearmanr(a, b).statistic)


def samples(seed: int):
    """Pairs of samples of 2 to 30 values: continuous, with ties (few distinct values), and constant."""
    rng = np.random.default_rng(seed)
    for n in (2, 3, 5, 12, 30):
        for kind in range(4):
            a = rng.normal(size=n) if kind % 2 else rng.integers(0, 3, n).astype(float)
            b = rng.normal(size=n) if kind < 2 else rng.integers(0, 4, n).astype(float)
            yield a, b
        yield np.ones(n), rng.normal(size=n)


@pytest.mark.parametrize("ours, theirs", [(kendall_tau, scipy_tau), (spearman_rho, scipy_rho)])
def test_each_sample_gives_scipys_value(ours, theirs):
    for a, b in samples(seed=11):
        value, reference = ours(a, b), theirs(a, b)
        assert isinstance(value, float)
        if np.isnan(reference):
            assert np.isnan(value), (a, b, value)
        else:
            assert value == pytest.approx(reference, abs=1e-12), (a, b)


@pytest.mark.parametrize("ours, theirs", [(kendall_tau, scipy_tau), (spearman_rho, scipy_rho)])
def test_a_batch_gives_each_rows_value(ours, theirs):
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 5, (7, 9)).astype(float), rng.normal(size=(7, 9))
    a[3] = 2.0  # a constant row: NaN there, numbers elsewhere
    values = ours(a, b)
    assert values.shape == (7,) and np.isnan(values[3])
    for row in (0, 1, 2, 4, 5, 6):
        assert values[row] == pytest.approx(theirs(a[row], b[row]), abs=1e-12)


@pytest.mark.parametrize("n", [6, 12, 70])  # 70 values: more pairs than one batch of resamples holds
@pytest.mark.parametrize("ours, theirs", [(kendall_tau, scipy_tau), (spearman_rho, scipy_rho)])
def test_bootstrap_interval_is_scipys_bootstrap_of_scipys_statistic(n, ours, theirs):
    """The same resamples (one seed) as scipy's own bootstrap calling scipy once per resample."""
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    y = np.round(x + rng.normal(size=n))  # ties in one side
    if n == 70:
        assert 1000 * n * (n - 1) // 2 > PAIRS_PER_BATCH

    def safe(a, b):
        value = theirs(a, b)
        return 0.0 if np.isnan(value) else value

    reference = stats.bootstrap(
        (x, y),
        safe,
        paired=True,
        vectorized=False,
        n_resamples=1000,
        method="percentile",
        confidence_level=0.9,
        random_state=np.random.default_rng(3),
    ).confidence_interval
    low, high = bootstrap_interval(x, y, ours, seed=3)
    assert low == pytest.approx(reference.low, abs=1e-12) and high == pytest.approx(reference.high, abs=1e-12)
    assert low < ours(x, y) < high


def test_resamples_with_no_correlation_count_as_zero():
    """Three of four values tied: many resamples draw only tied values, whose tau is NaN; they count as 0."""
    x, y = np.array([1.0, 1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0, 4.0])
    low, high = bootstrap_interval(x, y, kendall_tau, seed=0)
    assert np.isfinite(low) and np.isfinite(high) and low == 0.0
