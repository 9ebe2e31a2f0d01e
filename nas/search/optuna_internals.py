"""The optuna internals this package uses, in one place, checked when it is imported.

optuna keeps three things we need out of its public API: the Pareto-front test
(``_is_pareto_front``), the box decomposition of a front (``get_non_dominated_box_bounds``,
for hypervolume improvement) and NSGA-II's breeding (``NSGAIISampler._child_generation_strategy``).
setup.cfg pins the optuna releases they were checked against (>=5.0, which also brings
``trial.set_constraint``, and <6); tests/test_optuna_internals.py exercises each one, so an
optuna that moves or changes them fails there, loudly, not in the middle of a search.
"""

from __future__ import annotations

from typing import Any

import optuna

try:
    from optuna._hypervolume import get_non_dominated_box_bounds
    from optuna.study._multi_objective import _is_pareto_front
except ImportError as exc:  # pragma: no cover - only on an optuna outside the pinned range
    raise ImportError(
        f"optuna {optuna.__version__} moved an internal that nas uses ({exc}); "
        "install a version within setup.cfg's range (optuna>=5.0,<6)"
    ) from None

__all__ = ["breed_child", "get_non_dominated_box_bounds", "is_pareto_front"]


def is_pareto_front(loss) -> Any:
    """Boolean mask of the non-dominated rows of ``loss`` (every column minimised; duplicates all kept)."""
    return _is_pareto_front(loss, assume_unique_lexsorted=False)


def breed_child(
    sampler: optuna.samplers.NSGAIISampler, study: optuna.Study, search_space: dict, parents: list
) -> dict[str, Any]:
    """One NSGA-II child (selection, crossover, mutation) of ``parents``, as optuna breeds it."""
    return sampler._child_generation_strategy(study, search_space, parents)
