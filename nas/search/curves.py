"""Learning curves of a training proxy, judged by optuna's own pruners.

optuna's pruners read intermediate values that ``Trial.report`` stores, and ``Trial.report``
refuses multi-objective studies such as the search. So each proxy run that reports is also a
trial of a single-objective companion study (``<study>:curves``, same storage): its curve is
reported there and that study's pruner (median, successive halving or hyperband) judges it.

A pruner ranks runs by quality alone, but in a latency-memory-quality search a run of middling
quality can still be Pareto-optimal if it is cheap. So a run is stopped only when the pruner
says so *and* an architecture at least as fast and as lean has already scored at least as
well at the same step: the run is then headed for a dominated point. A stopped run ends the
search trial as pruned. The companion study lives in the same storage
as the search, so every worker, and a resumed run, sees every earlier curve.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import optuna

from nas.errors import NasError
from nas.search.resume import stored_attr

PRUNERS = ("median", "halving", "hyperband", "none")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise NasError(f"--pruner must be one of {', '.join(PRUNERS)}, got {name!r}")


class Curves:
    """The companion study of one search; :meth:`start` opens the curve of one search trial."""

    def __init__(
        self,
        storage: optuna.storages.BaseStorage,
        search_study: str,
        pruner: str,
        held: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ):
        """``held`` wraps each database write of a run (the search holds Ctrl-C there, see Interrupts.held)."""
        self.held = held
        self.study = optuna.create_study(
            study_name=f"{search_study}:curves",
            storage=storage,
            direction="maximize",
            pruner=make_pruner(pruner),
            load_if_exists=True,
        )

    def start(self, search_trial: int, latency_ms: float, peak_memory_mb: float) -> Curve:
        with self.held():
            return Curve(self.study, search_trial, latency_ms, peak_memory_mb, self.held)


class Curve:
    """One proxy run, used as a context: ``report`` each intermediate score (it raises
    ``optuna.TrialPruned`` when the pruner stops the run), then ``finish`` with the final one.
    A run that ends any other way is marked failed, so no curve is left running."""

    def __init__(
        self,
        study: optuna.Study,
        search_trial: int,
        latency_ms: float,
        peak_memory_mb: float,
        held: Callable[[], contextlib.AbstractContextManager],
    ):
        self.study, self.held = study, held
        self.cost = (latency_ms, peak_memory_mb)
        with warnings.catch_warnings():  # the search trial's own heartbeat covers this run
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            self.trial = study.ask()
        attrs = {"search_trial": search_trial, "latency_ms": latency_ms, "peak_memory_mb": peak_memory_mb}
        for key, value in attrs.items():
            self.trial.set_user_attr(key, value)
        self.ended = False

    def report(self, value: float, step: int) -> None:
        with self.held():
            self.trial.report(value, step)
            pruned = self.trial.should_prune() and self._dominated(value, step)
            if pruned:
                self._end(state=optuna.trial.TrialState.PRUNED)
        if pruned:
            raise optuna.TrialPruned(f"proxy score {value:.4g} at step {step}: stopped by the pruner")

    def _dominated(self, value: float, step: int) -> bool:
        """Has a run of an architecture no slower and no bigger scored at least ``value`` at ``step``?"""
        latency, memory = self.cost
        return any(
            t.number != self.trial.number
            and step in t.intermediate_values
            and t.intermediate_values[step] >= value
            and t.user_attrs.get("latency_ms", float("inf")) <= latency
            and stored_attr(t.user_attrs, "peak_memory_mb", float("inf")) <= memory
            for t in self.study.get_trials(deepcopy=False)
        )

    def finish(self, value: float) -> None:
        self._end(values=value)

    def _end(self, **outcome) -> None:
        with self.held():
            self.study.tell(self.trial, **outcome)
            self.ended = True

    def __enter__(self) -> Curve:
        return self

    def __exit__(self, *exc) -> None:
        if not self.ended:
            self._end(state=optuna.trial.TrialState.FAIL)
