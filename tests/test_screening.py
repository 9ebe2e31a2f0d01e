"""Table-screened NSGA-II: exact hypervolume gains, a surrogate that learns, a search that beats plain NSGA-II."""

import numpy as np
import pytest
from optuna._hypervolume import compute_hypervolume

from nas.cost.cost_model import CostModel
from nas.cost.table import CostTable
from nas.quality.proxies import get_proxy
from nas.search.exhaustive import exhaustive_front
from nas.search.results import pareto_set, trials_frame
from nas.search.screening import QualitySurrogate, hypervolume_improvement
from nas.search.study import Budgets, SearchSetup, run_study
from tests.conftest import TINY, copy_table


def test_hypervolume_improvement_equals_the_recomputed_difference():
    rng = np.random.default_rng(0)
    reference = np.full(3, 1.1)
    points = rng.random((40, 3))
    candidates = rng.random((25, 3))
    before = compute_hypervolume(points, reference)
    expected = [compute_hypervolume(np.vstack([points, c]), reference) - before for c in candidates]
    np.testing.assert_allclose(hypervolume_improvement(points, candidates, reference), expected, atol=1e-12)
    assert (hypervolume_improvement(points[:0], candidates, reference) > 0).all()


def test_surrogate_learns_an_additive_score_and_grows_sure():
    rng = np.random.default_rng(1)
    radices = [5, 3, 4, 5]
    effects = [rng.normal(size=r) for r in radices]
    choices = np.stack([rng.integers(0, r, 200) for r in radices], axis=1)
    truth = sum(e[choices[:, i]] for i, e in enumerate(effects)) + 10.0
    prior = QualitySurrogate(radices)
    fitted = QualitySurrogate(radices).fit(choices[:60], truth[:60])
    assert np.corrcoef(fitted.optimistic(choices[60:]), truth[60:])[0, 1] > 0.99
    # the optimistic bonus shrinks as the model sees data
    spread = fitted.optimistic(choices[60:]) - truth[60:]
    assert np.abs(spread).max() < 0.5 * np.abs(prior.optimistic(choices[60:]) - truth[60:]).max()


@pytest.fixture(scope="module")
def tiny_search(tiny_space, tiny_estimate, tmp_path_factory):
    """The tiny space priced by an estimated table, with a latency budget that cuts the space in half."""
    table_path = copy_table(tiny_estimate, tmp_path_factory.mktemp("screen"))
    table = CostTable.load(table_path)
    cost = CostModel(tiny_space, table)
    rng = np.random.default_rng(0)
    sample = np.stack([rng.integers(0, len(s.choices), 5000) for s in tiny_space.slots], axis=1)
    budgets = Budgets(latency_ms=float(np.median(cost.price(sample, 1)[0])), passes=1)
    exact, _ = exhaustive_front(tiny_space, cost, budgets, get_proxy("params")(tiny_space))
    return table_path, budgets, exact


def test_screened_nsga2_finds_the_front_that_plain_nsga2_misses(tiny_space, tiny_search):
    table_path, budgets, exact = tiny_search
    points = exact[["latency_ms", "peak_memory_mb", "quality"]].to_numpy()
    low, span = points.min(axis=0), np.ptp(points, axis=0)

    def hypervolume(front):
        values = (front[["latency_ms", "peak_memory_mb", "quality"]].to_numpy() - low) / span
        values[:, 2] = 1.0 - values[:, 2]
        return compute_hypervolume(np.minimum(values, 1.1), np.full(3, 1.1))

    found = {}
    for screen in (64, 1):
        setup = SearchSetup(str(TINY), str(table_path), budgets, "params", "nsga2", None, f"s{screen}", 0, {}, screen)
        trials = trials_frame(run_study(setup, 100, progress=False), tiny_space)
        found[screen] = (trials, hypervolume(pareto_set(trials, tiny_space.slot_names)) / hypervolume(exact))
    screened, plain = found[64], found[1]
    assert screened[0]["arch_id"].is_unique and screened[0]["feasible"].iloc[1:].all()  # trial 0 is unscreened
    assert screened[1] > 0.9 and screened[1] > plain[1] + 0.1, (screened[1], plain[1])
