"""The search: an optuna study over a space's slots, priced by a device table, scored by a proxy.

Objectives are latency (min), memory (min) and proxy quality (max); budgets are optuna
constraints (``trial.set_constraint``; positive = violated), so NSGA-II ranks feasible
candidates first. A candidate that breaks a budget is priced by the table only: the proxy
never spends time on it, and the default NSGA-II rarely proposes one (see ``screening``).
The study lives in a storage URL, so re-running the same command resumes it up to the total
trial count and several workers (processes or machines) can share it.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from tqdm import tqdm

from nas.cost.cost_model import CostModel
from nas.cost.table import LatencyTable
from nas.errors import NasError
from nas.search.curves import Curves
from nas.search.proxies import get_proxy
from nas.search.screening import ScreenedNSGAIISampler, TableScreen
from nas.search.storage import is_shared, open_storage
from nas.space import Architecture, SearchSpace

SAMPLERS = ("nsga2", "tpe", "random", "exhaustive")
DIRECTIONS = ["minimize", "minimize", "maximize"]
METRICS = ["latency_ms", "memory_mb", "quality"]
COMPLETED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
SCREEN = 64  # NSGA-II children the table screens per trial (1: plain NSGA-II)


@dataclass(frozen=True)
class Budgets:
    """Limits per generation of ``steps`` UNet passes; ``inf`` means no limit."""

    latency_ms: float = math.inf
    memory_mb: float = math.inf
    steps: int = 1

    @classmethod
    def for_space(cls, space: SearchSpace, latency_ms=None, memory_mb=None, steps=None) -> Budgets:
        b = space.budgets
        budgets = cls(
            latency_ms=float(latency_ms if latency_ms is not None else b.get("latency_ms", math.inf)),
            memory_mb=float(memory_mb if memory_mb is not None else b.get("memory_mb", math.inf)),
            steps=int(steps if steps is not None else b.get("steps", 1)),
        )
        if budgets.latency_ms <= 0 or budgets.memory_mb <= 0 or budgets.steps < 1:
            raise NasError(f"budgets must be positive (latency {budgets.latency_ms} ms, memory {budgets.memory_mb} MB, "
                           f"steps {budgets.steps})")
        return budgets

    def violations(self, latency: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Relative excess over each budget (<= 0: met)."""
        return latency / self.latency_ms - 1.0, memory / self.memory_mb - 1.0


@dataclass
class SearchSetup:
    """Everything a worker needs to rebuild the search in its own process."""

    space_path: str
    table_path: str
    budgets: Budgets
    proxy: str
    sampler: str
    storage: str | None
    study: str
    seed: int
    proxy_options: dict[str, Any]
    screen: int = SCREEN
    pruner: str = "median"

    def load(self) -> CostModel:
        """The space priced by the table (``.space`` is the space), loaded once per process."""
        return CostModel(SearchSpace.load(self.space_path), LatencyTable.load(self.table_path))


def make_sampler(setup: SearchSetup, trials: int, cost: CostModel, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The setup's sampler; each worker gets its own seed. ``cost`` prices children for the screen."""
    seed = setup.seed + worker
    if setup.sampler == "nsga2":
        population = max(10, min(50, trials // 10))
        if setup.screen <= 1:
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
        budgets = setup.budgets
        screen = TableScreen(cost.space, cost, budgets.steps, (budgets.latency_ms, budgets.memory_mb), seed)
        return ScreenedNSGAIISampler(screen, setup.screen, seed=seed, population_size=population)
    if setup.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if setup.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise NasError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {setup.sampler!r}")


class Objective:
    """Prices a trial's architecture with the table; runs the proxy only when it meets the budgets."""

    def __init__(self, setup: SearchSetup, storage: optuna.storages.BaseStorage, cost: CostModel):
        self.setup = setup
        self.space, self.cost = cost.space, cost
        self.proxy = get_proxy(setup.proxy)(self.space, seed=setup.seed, **setup.proxy_options)
        self.curves = Curves(storage, setup.study, setup.pruner) if self.proxy.reports else None

    def __call__(self, trial: optuna.Trial) -> tuple[float, float, float]:
        labels = {slot.name: trial.suggest_categorical(slot.name, [c.label for c in slot.choices])
                  for slot in self.space.slots}
        choices = {slot.name: next(c for c in slot.choices if c.label == labels[slot.name]) for slot in self.space.slots}
        architecture = Architecture(self.space.name, tuple(choices.items()))
        index = self.cost.encode(architecture)[None]
        latency, memory = (float(v[0]) for v in self.cost.price(index, self.setup.budgets.steps))
        over_latency, over_memory = (float(v) for v in self.setup.budgets.violations(latency, memory))
        trial.set_constraint("latency_ms", min(over_latency, 1e9))
        trial.set_constraint("memory_mb", min(over_memory, 1e9))
        feasible = over_latency <= 0 and over_memory <= 0
        # latency and memory are kept as attributes too: a pruned trial has no values, but trials.csv lists it
        for key, value in (("arch_id", architecture.id), ("feasible", feasible), ("latency_ms", min(latency, 1e12)),
                           ("memory_mb", min(memory, 1e12))):
            trial.set_user_attr(key, value)
        quality = self._score(architecture, trial.number, latency, memory) if feasible else 0.0
        trial.set_user_attr("quality_evaluated", feasible)
        return min(latency, 1e12), min(memory, 1e12), quality

    def _score(self, architecture: Architecture, number: int, latency: float, memory: float) -> float:
        if self.curves is None:
            return self.proxy.score(architecture)
        with self.curves.start(number, latency, memory) as curve:
            quality = self.proxy.score(architecture, curve)
            curve.finish(quality)
        return quality


def _work(setup: SearchSetup, trials: int, quota: int, worker: int) -> None:
    """One worker: run its ``quota`` of trials on the shared study (never past ``trials`` in all)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(setup.storage)
    cost = setup.load()
    study = optuna.load_study(study_name=setup.study, storage=storage,
                              sampler=make_sampler(setup, trials, cost, worker))
    study.optimize(Objective(setup, storage, cost), n_trials=quota,
                   callbacks=[optuna.study.MaxTrialsCallback(trials, states=COMPLETED)])


def run_study(setup: SearchSetup, trials: int, workers: int = 1, progress: bool = True) -> optuna.Study:
    """Create or resume the study and run it to ``trials`` completed trials."""
    if workers > 1 and not is_shared(setup.storage):
        raise NasError("--workers > 1 needs a shared --storage (sqlite:///..., journal:PATH or postgresql://...)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(setup.storage)
    cost = setup.load()
    study = optuna.create_study(study_name=setup.study, storage=storage, directions=DIRECTIONS,
                                sampler=make_sampler(setup, trials, cost), load_if_exists=True)
    if list(study.directions) != [optuna.study.StudyDirection.MINIMIZE, optuna.study.StudyDirection.MINIMIZE,
                                  optuna.study.StudyDirection.MAXIMIZE]:
        raise NasError(f"--study {setup.study}: an existing study with other objectives")
    if study.metric_names != METRICS:
        with warnings.catch_warnings():  # experimental since optuna 3.2, stable in use by optuna-dashboard
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(METRICS)  # optuna-dashboard and trials_dataframe show these names
    remaining = trials - len(study.get_trials(deepcopy=False, states=COMPLETED))
    if remaining <= 0 and progress:
        print(f"resumed study {setup.study}: its {trials} trials are done, nothing to run (raise --trials to search "
              "on); results written again from the study", file=sys.stderr)
    bar = tqdm(total=trials, desc=f"search {setup.study}", unit="trial", disable=not progress or remaining <= 0,
               mininterval=1.0)
    last = [0.0]

    def update(study_: optuna.Study, _trial=None, force: bool = False) -> None:
        if not progress or (not force and time.monotonic() - last[0] < 1.0):
            return  # the front is recomputed at most once a second
        last[0] = time.monotonic()
        done = study_.get_trials(deepcopy=False, states=COMPLETED)
        bar.n = min(len(done), trials)
        feasible = sum(1 for t in done if t.user_attrs.get("feasible"))
        bar.set_postfix(feasible=feasible, front=len(study_.best_trials) if feasible else 0)
        bar.refresh()

    if remaining > 0 and workers <= 1:
        study.optimize(Objective(setup, storage, cost), n_trials=remaining, callbacks=[update])
    elif remaining > 0:
        context = mp.get_context("spawn")
        # Fixed quotas rather than a shared stop rule: workers that check a shared count at once overshoot.
        quotas = [remaining // workers + (w < remaining % workers) for w in range(workers)]
        processes = [context.Process(target=_work, args=(setup, trials, quotas[w], w)) for w in range(workers)]
        for process in processes:
            process.start()
        while any(p.is_alive() for p in processes):
            update(study)
            time.sleep(1.0)
        failed = [p.exitcode for p in processes if p.exitcode]
        if failed:
            raise NasError(f"{len(failed)} search worker(s) failed (exit codes {failed}); re-run to resume")
    update(study, force=True)
    bar.close()
    return study
