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
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from tqdm import tqdm

from nas import processes
from nas.cost.cost_model import CostModel
from nas.cost.table import CostTable
from nas.errors import Interrupted, NasError, NasWarning
from nas.interrupts import Interrupts
from nas.options import renamed_kwargs
from nas.quality.proxies import get_proxy
from nas.quiet import show_warning
from nas.search.curves import Curves
from nas.search.resume import check_resume, older_forms, setup_record
from nas.search.screening import ScreenedNSGAIISampler, TableScreen
from nas.search.storage import is_shared, open_storage
from nas.space import Architecture, SearchSpace

SAMPLERS = ("nsga2", "tpe", "random", "exhaustive")
DIRECTIONS = ["minimize", "minimize", "maximize"]
METRICS = ["latency_ms", "peak_memory_mb", "quality"]
COMPLETED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
SCREEN = 64  # NSGA-II children the table screens per trial (1: plain NSGA-II)
STOP_S = 30.0  # a worker's time to end its trial after Ctrl-C
QUIET = optuna.logging.ERROR  # optuna's per-trial warnings repeat, with a traceback, what the CLI says in one line


@dataclass(frozen=True)
class Budgets:
    """Limits per generation of ``passes`` UNet evaluations; ``inf`` means no limit."""

    latency_ms: float = math.inf
    peak_memory_mb: float = math.inf
    passes: int = 1

    @classmethod
    @renamed_kwargs(memory_mb="peak_memory_mb")
    def for_space(cls, space: SearchSpace, latency_ms=None, peak_memory_mb=None, passes=None) -> Budgets:
        b = space.budgets
        memory = peak_memory_mb if peak_memory_mb is not None else b.get("peak_memory_mb", math.inf)
        budgets = cls(
            latency_ms=float(latency_ms if latency_ms is not None else b.get("latency_ms", math.inf)),
            peak_memory_mb=float(memory),
            passes=int(passes if passes is not None else b.get("passes", 1)),
        )
        if budgets.latency_ms <= 0 or budgets.peak_memory_mb <= 0 or budgets.passes < 1:
            raise NasError(
                f"budgets must be positive (latency {budgets.latency_ms} ms, memory {budgets.peak_memory_mb} MB, "
                f"passes {budgets.passes})"
            )
        return budgets

    def violations(self, latency: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Relative excess over each budget (<= 0: met)."""
        return latency / self.latency_ms - 1.0, memory / self.peak_memory_mb - 1.0


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
        return CostModel(SearchSpace.load(self.space_path), CostTable.load(self.table_path))


def make_sampler(setup: SearchSetup, trials: int, cost: CostModel, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The setup's sampler; each worker gets its own seed. ``cost`` prices children for the screen."""
    seed = setup.seed + worker
    if setup.sampler == "nsga2":
        population = max(10, min(50, trials // 10))
        if setup.screen <= 1:
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
        budgets = setup.budgets
        screen = TableScreen(cost.space, cost, budgets.passes, (budgets.latency_ms, budgets.peak_memory_mb), seed)
        return ScreenedNSGAIISampler(screen, setup.screen, seed=seed, population_size=population)
    if setup.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if setup.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise NasError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {setup.sampler!r}")


class Objective:
    """Prices a trial's architecture with the table; runs the proxy only when it meets the budgets.

    An architecture the device cannot run (a table row says unsupported, oom, ...) has no price:
    its trial ends pruned with that ``status`` and no objective values, so no number stands in
    for "cannot run" in an objective, a CSV or a plot. The proxy runs at most once per
    architecture in a study: a trial that proposes a seen one takes the earlier score (or the
    earlier pruning) from the study, which every worker shares.
    """

    def __init__(self, setup: SearchSetup, storage: optuna.storages.BaseStorage, cost: CostModel):
        self.setup = setup
        self.space, self.cost = cost.space, cost
        self.proxy = get_proxy(setup.proxy)(self.space, seed=setup.seed, **setup.proxy_options)
        self.interrupts = Interrupts()
        self.curves = Curves(storage, setup.study, setup.pruner, self.interrupts.held) if self.proxy.reports else None

    def __call__(self, trial: optuna.Trial) -> tuple[float, float, float]:
        # Ctrl-C is raised at once only in the proxy's run (its database writes held too, see
        # Interrupts.held); one during the trial's own writes is raised when they are done
        with self.interrupts.inside_trial(), self.interrupts.held():
            return self._evaluate(trial)

    def _evaluate(self, trial: optuna.Trial) -> tuple[float, float, float]:
        labels = {
            slot.name: trial.suggest_categorical(slot.name, [c.label for c in slot.choices])
            for slot in self.space.slots
        }
        architecture = Architecture.from_labels(self.space, labels)
        trial.set_user_attr("arch_id", architecture.id)
        index = self.cost.encode(architecture)[None]
        latency, memory = (float(v[0]) for v in self.cost.price(index, self.setup.budgets.passes))
        if not (math.isfinite(latency) and math.isfinite(memory)):
            status = cannot_run(self.cost, architecture, self.setup.budgets.passes)
            trial.set_user_attr("status", status)
            trial.set_user_attr("feasible", False)
            raise optuna.TrialPruned(f"{architecture.id}: the table says it cannot run ({status})")
        over_latency, over_memory = (float(v) for v in self.setup.budgets.violations(latency, memory))
        trial.set_constraint("latency_ms", over_latency)
        trial.set_constraint("peak_memory_mb", over_memory)
        feasible = over_latency <= 0 and over_memory <= 0
        # latency and memory are kept as attributes too: a pruned trial has no values, but trials.csv lists it
        attrs = {"status": "ok", "feasible": feasible, "latency_ms": latency, "peak_memory_mb": memory}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        quality = self._score(trial, architecture, latency, memory) if feasible else 0.0
        trial.set_user_attr("quality_evaluated", feasible)
        return latency, memory, quality

    def _score(self, trial: optuna.Trial, architecture: Architecture, latency: float, memory: float) -> float:
        earlier = self._earlier_run(trial, architecture.id)
        if earlier is not None:
            trial.set_user_attr("quality_from_trial", earlier.number)
            if earlier.state == optuna.trial.TrialState.PRUNED:
                raise optuna.TrialPruned(f"{architecture.id}: its proxy run was pruned in trial {earlier.number}")
            return earlier.values[2]
        if self.curves is None:
            with self.interrupts.inside_trial():
                return self.proxy.score(architecture)
        with self.curves.start(trial.number, latency, memory) as curve:
            with self.interrupts.inside_trial():
                quality = self.proxy.score(architecture, curve)
            curve.finish(quality)
        return quality

    @staticmethod
    def _earlier_run(trial: optuna.Trial, arch_id: str) -> optuna.trial.FrozenTrial | None:
        """A finished trial of the same architecture whose proxy ran to the end or was pruned."""
        for t in trial.study.get_trials(deepcopy=False, states=COMPLETED):
            if (
                t.number != trial.number
                and t.user_attrs.get("arch_id") == arch_id
                and t.user_attrs.get("feasible")
                and (t.user_attrs.get("quality_evaluated") or t.state == optuna.trial.TrialState.PRUNED)
            ):
                return t
        return None


def cannot_run(cost: CostModel, architecture: Architecture, passes: int) -> str:
    """The device status (unsupported, oom, ...) that keeps an architecture from running, and where."""
    if not cost.spatial.runs:
        return f"{cost.spatial.status} (spatial UNet)"
    slot = next(row for row in cost.predict(architecture, passes).slots if row["status"] != "ok")
    return f"{slot['status']} at {slot['slot']}"


def _optimize(study: optuna.Study, objective: Objective, n_trials: int, callbacks: list) -> None:
    with objective.interrupts.installed():
        study.optimize(objective, n_trials=n_trials, callbacks=callbacks)


def _work(setup: SearchSetup, trials: int, quota: int, worker: int, parent: processes.ParentState) -> None:
    """One worker: run its ``quota`` of trials on the shared study (never past ``trials`` in all).

    It takes the parent's import path and environment (plugins included), starts with Ctrl-C ignored
    and takes it once its trials run: then it ends quietly, optuna marks its running trial failed, and
    the parent says what was kept.
    """
    processes.adopt(parent)
    optuna.logging.set_verbosity(QUIET)
    warnings.showwarning = show_warning
    storage = open_storage(setup.storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NasWarning)  # the parent loaded this setup and said its warnings
        cost = setup.load()
    study = optuna.load_study(
        study_name=setup.study, storage=storage, sampler=make_sampler(setup, trials, cost, worker)
    )
    objective = Objective(setup, storage, cost)
    try:
        _optimize(study, objective, quota, [optuna.study.MaxTrialsCallback(trials, states=COMPLETED)])
    except KeyboardInterrupt:
        return
    except Exception:
        if objective.interrupts.requested:  # e.g. SQLite busy while every worker marks its trial failed at once
            return
        raise


def run_study(setup: SearchSetup, trials: int, workers: int = 1, progress: bool = True) -> optuna.Study:
    """Create or resume the study and run it to ``trials`` completed trials."""
    if workers > 1 and not is_shared(setup.storage):
        raise NasError("--workers > 1 needs a shared --storage (sqlite:///..., journal:PATH or postgresql://...)")
    optuna.logging.set_verbosity(QUIET)
    warnings.showwarning = show_warning
    storage = open_storage(setup.storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NasWarning)  # the parent loaded this setup and said its warnings
        cost = setup.load()
    study = optuna.create_study(
        study_name=setup.study,
        storage=storage,
        directions=DIRECTIONS,
        sampler=make_sampler(setup, trials, cost),
        load_if_exists=True,
    )
    if list(study.directions) != [
        optuna.study.StudyDirection.MINIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
        optuna.study.StudyDirection.MAXIMIZE,
    ]:
        raise NasError(f"--study {setup.study}: an existing study with other objectives")
    check_resume(study, setup_record(setup), setup.storage or "memory", older_forms(setup))
    if study.metric_names != METRICS:
        with warnings.catch_warnings():  # experimental since optuna 3.2, stable in use by optuna-dashboard
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(METRICS)  # optuna-dashboard and trials_dataframe show these names
    remaining = trials - len(study.get_trials(deepcopy=False, states=COMPLETED))
    if remaining <= 0 and progress:
        print(
            f"resumed study {setup.study}: its {trials} trials are done, nothing to run (raise --trials to search "
            "on); results written again from the study",
            file=sys.stderr,
        )
    bar = tqdm(
        total=trials,
        desc=f"search {setup.study}",
        unit="trial",
        disable=not progress or remaining <= 0,
        mininterval=1.0,
    )
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

    children: list = []
    try:
        if remaining > 0 and workers <= 1:
            _optimize(study, Objective(setup, storage, cost), remaining, [update])
        elif remaining > 0:
            # forked warm from a server that imported the search once (see nas.processes), spawned elsewhere
            context = processes.context(["nas.search.study"])
            # Fixed quotas rather than a shared stop rule: workers that check a shared count at once overshoot.
            quotas = [remaining // workers + (w < remaining % workers) for w in range(workers)]
            here = processes.parent_state()
            children = [context.Process(target=_work, args=(setup, trials, quotas[w], w, here)) for w in range(workers)]
            processes.start(context, children)
            while any(p.is_alive() for p in children):
                update(study)
                time.sleep(1.0)
            failed = [p.exitcode for p in children if p.exitcode]
            if failed:
                raise NasError(f"{len(failed)} search worker(s) failed (exit codes {failed}); re-run to resume")
    except KeyboardInterrupt:
        _stop(children)
        bar.leave = False
        bar.close()
        kept = len(study.get_trials(deepcopy=False, states=COMPLETED))
        raise Interrupted(
            f"{kept} finished trials of study {setup.study!r} are kept in {setup.storage or 'memory'}"
            + (
                "; re-run the same command to resume"
                if is_shared(setup.storage)
                else " (in memory: lost; use --storage to keep them)"
            )
        ) from None
    update(study, force=True)
    bar.close()
    return study


def _stop(children: list) -> None:
    """Pass Ctrl-C on to the workers (a terminal sends it to them too; ``kill -INT`` does not) and wait."""
    for process in children:
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)
    for process in children:
        process.join(STOP_S)
        if process.is_alive():
            process.kill()
            process.join()
