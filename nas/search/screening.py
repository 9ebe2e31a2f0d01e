"""Table-screened NSGA-II: many children are proposed, the one that gets the trial is chosen by the table.

In a hardware-aware search two of the three objectives, latency and memory, come from the
device table for free, while quality costs a proxy run. Plain NSGA-II spends a trial on every
child it breeds, including children that break a budget and children that the current front
already dominates. Here NSGA-II (optuna's selection, crossover and mutation) breeds a pool of
children per trial, plus a few uniform random ones for exploration. The table prices the whole
pool exactly; a Bayesian linear model, additive over slot choices and fitted to the trials
so far, predicts each child's quality with an optimistic bonus of one posterior standard
deviation. The trial goes to the new child with the largest hypervolume improvement over the
current feasible front (ties at random, seeded); a child seen before is never proposed while an
unseen one can be found. The first generation is screened the same way from random children.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.samplers import NSGAIISampler

from nas.cost.cost_model import CostModel
from nas.search.optuna_internals import breed_child, get_non_dominated_box_bounds, is_pareto_front
from nas.space import SearchSpace

REFERENCE = 1.1  # the reference point sits this far out in objectives normalised to [0, 1]
NOISE = 0.05  # observation noise of the standardised proxy score, for the surrogate
EXPLORE = 0.25  # share of the pool drawn uniformly at random instead of bred
RETRIES = 20  # random pools drawn when every child was seen before, before a seen one may be proposed


class QualitySurrogate:
    """Bayesian linear regression on one-hot slot choices: quality as a sum of per-choice effects.

    Additive is exact for size proxies and a fair first-order model for trained ones; the
    posterior standard deviation is what makes the screen try choices it has not seen.
    """

    def __init__(self, radices: Sequence[int]):
        self.offsets = np.concatenate([[0], np.cumsum(radices)[:-1]])
        self.width = int(sum(radices))
        self.covariance = np.eye(self.width)
        self.weights = np.zeros(self.width)
        self.mean, self.scale = 0.0, 1.0

    def features(self, choices: np.ndarray) -> np.ndarray:
        onehot = np.zeros((len(choices), self.width))
        onehot[np.arange(len(choices))[:, None], choices + self.offsets] = 1.0
        return onehot

    def fit(self, choices: np.ndarray, quality: np.ndarray) -> QualitySurrogate:
        if len(quality):
            self.mean, self.scale = float(quality.mean()), float(quality.std()) or 1.0
        x = self.features(choices)
        y = (quality - self.mean) / self.scale
        precision = x.T @ x / NOISE + np.eye(self.width)
        self.covariance = np.linalg.inv(precision)
        self.weights = self.covariance @ x.T @ y / NOISE
        return self

    def optimistic(self, choices: np.ndarray) -> np.ndarray:
        """Posterior mean plus one standard deviation, in the proxy's units."""
        x = self.features(choices)
        std = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", x, self.covariance, x), 0.0))
        return self.mean + self.scale * (x @ self.weights + std)


def hypervolume_improvement(front: np.ndarray, candidates: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Hypervolume each candidate alone would add to ``front`` (all minimised), via box decomposition."""
    if not len(front):
        return np.prod(np.maximum(reference - candidates, 0.0), axis=1)
    lower, upper = get_non_dominated_box_bounds(np.minimum(front, reference), reference)
    sides = upper[None] - np.maximum(lower[None], candidates[:, None])
    return np.prod(np.maximum(sides, 0.0), axis=2).sum(axis=1)


class TableScreen:
    """Picks, from a pool of children, the one a trial is best spent on."""

    def __init__(self, space: SearchSpace, cost: CostModel, passes: int, limits: tuple[float, float], seed: int):
        self.space, self.cost, self.passes, self.limits = space, cost, passes, np.asarray(limits, dtype=float)
        self.labels = [[c.label for c in slot.choices] for slot in space.slots]
        self.rng = np.random.default_rng(seed)
        self._rows: dict[int, np.ndarray] = {}

    def random(self, n: int) -> np.ndarray:
        return self.space.random_rows(self.rng, n)

    def encode(self, params: dict[str, Any]) -> np.ndarray | None:
        """Choice indices of a trial's or child's params; slots a child left open are drawn at random."""
        row = []
        for slot, labels in zip(self.space.slots, self.labels):
            label = params.get(slot.name)
            if label is None:
                row.append(int(self.rng.integers(len(labels))))
            elif label in labels:
                row.append(labels.index(label))
            else:
                return None
        return np.array(row)

    def decode(self, row: np.ndarray) -> dict[str, str]:
        return {slot.name: labels[i] for slot, labels, i in zip(self.space.slots, self.labels, row)}

    def encoded(self, trials: Sequence[optuna.trial.FrozenTrial]) -> list[tuple[optuna.trial.FrozenTrial, np.ndarray]]:
        """(trial, choice row) of every trial that holds a whole architecture of this space."""
        rows = []
        for trial in trials:
            row = self._rows.get(trial.number)
            if row is None and len(trial.params) == len(self.labels):
                row = self.encode(trial.params)
                if row is not None and trial.state.is_finished():
                    self._rows[trial.number] = row  # a finished trial's params never change
            if row is not None:
                rows.append((trial, row))
        return rows

    def pick(self, trials: Sequence[optuna.trial.FrozenTrial], children: np.ndarray) -> dict[str, str]:
        encoded = self.encoded(trials)
        seen = {tuple(row) for _, row in encoded}
        pool = self._unseen(children, seen)
        for _ in range(RETRIES if not len(pool) else 0):  # every child was seen: look further, at random
            pool = self._unseen(self.random(max(len(children), 1)), seen)
            if len(pool):
                break
        if not len(pool):  # the space is all but exhausted: a seen one costs no second proxy run (study cache)
            pool = np.unique(children, axis=0)
        latency, memory = self.cost.price(pool, self.passes)
        excess = np.maximum(np.column_stack([latency, memory]) / self.limits - 1.0, 0.0).sum(axis=1)
        feasible = excess <= 0
        if not feasible.any():
            return self.decode(pool[self._any_best(-excess)])
        pool, latency, memory = pool[feasible], latency[feasible], memory[feasible]
        scored = [
            (t, row)
            for t, row in encoded
            if t.state == optuna.trial.TrialState.COMPLETE
            and t.user_attrs.get("feasible")
            and t.user_attrs.get("quality_evaluated")
            and np.isfinite(t.values).all()
        ]
        done = np.array([row for _, row in scored], dtype=int).reshape(len(scored), len(self.labels))
        done_loss = np.array([[t.values[0], t.values[1], -t.values[2]] for t, _ in scored]).reshape(-1, 3)
        surrogate = QualitySurrogate([len(labels) for labels in self.labels]).fit(done, -done_loss[:, 2])
        loss = np.column_stack([latency, memory, -surrogate.optimistic(pool)])
        both = np.concatenate([done_loss, loss])
        low, span = both.min(axis=0), np.maximum(np.ptp(both, axis=0), 1e-12)
        front = (done_loss[is_pareto_front(done_loss)] - low) / span
        gain = hypervolume_improvement(front, (loss - low) / span, np.full(3, REFERENCE))
        return self.decode(pool[self._any_best(gain)])

    @staticmethod
    def _unseen(rows: np.ndarray, seen: set[tuple]) -> np.ndarray:
        pool = np.unique(rows, axis=0)
        return pool[[tuple(row) not in seen for row in pool]].reshape(-1, rows.shape[1])

    def _any_best(self, score: np.ndarray) -> int:
        """Index of the highest score, ties broken at random (seeded): np.unique sorted the pool, so
        argmax would always favour the lexicographically smallest architecture (choice 0 everywhere)."""
        best = np.flatnonzero(np.isclose(score, score.max(), rtol=1e-9, atol=0.0))
        return int(self.rng.choice(best))


class ScreenedNSGAIISampler(NSGAIISampler):
    """NSGA-II whose every trial goes to the best of ``pool`` children, as judged by :class:`TableScreen`."""

    def __init__(self, screen: TableScreen, pool: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.screen, self.pool = screen, pool

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        parents = self.get_parent_population(study, self.get_trial_generation(study, trial))
        bred = 0 if not parents else self.pool - int(self.pool * EXPLORE)
        children = [self.screen.encode(breed_child(self, study, search_space, parents)) for _ in range(bred)]
        bred_rows = np.array(children, dtype=int).reshape(bred, len(self.screen.labels))
        rows = np.concatenate([bred_rows, self.screen.random(self.pool - bred)])
        return self.screen.pick(study.get_trials(deepcopy=False), rows)
