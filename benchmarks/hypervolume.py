"""Table-screened NSGA-II vs plain NSGA-II vs random vs exhaustive: hypervolume at equal trial budgets.

Usage: python benchmarks/hypervolume.py [--space S] [--table T] [--proxy params|pairwise]
                                        [--trials 200] [--seeds 5]
Objectives are latency, memory (minimised) and the proxy (maximised), normalised by the
exhaustive front's ranges; the reference point is 1.1 past the worst corner. The latency
budget is the median latency of the space, so it binds. ``nsga2`` is the default sampler (64
children screened by the table per trial); ``nsga2-plain`` is optuna's NSGA-II as it comes
(``--screen 1``). ``--proxy pairwise`` adds fixed random effects of neighbouring slot pairs to
log params: a score the screen's additive surrogate cannot fit, to show the screen does not
depend on it. Writes JSON, prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from optuna._hypervolume import compute_hypervolume

from nas.cost.cost_model import CostModel
from nas.cost.table import CostTable
from nas.quality.proxies import QualityProxy, get_proxy, register_proxy
from nas.search.exhaustive import exhaustive_front
from nas.search.results import pareto_set, trials_frame
from nas.search.study import SCREEN, Budgets, SearchSetup, run_study
from nas.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]


@register_proxy
class PairwiseProxy(QualityProxy):
    """Log params plus fixed random effects of each pair of neighbouring slots' choices."""

    name = "pairwise"
    vectorised = True

    def __init__(self, space: SearchSpace, seed: int = 0, **options):
        super().__init__(space, seed)
        self.params = get_proxy("params")(space)
        rng = np.random.default_rng(1234)  # not the search seed: every seed faces the same problem
        radices = [len(s.choices) for s in space.slots]
        self.pairs = [rng.normal(scale=0.3, size=(a, b)) for a, b in zip(radices, radices[1:])]

    def score(self, architecture, curve=None) -> float:
        return float(self.score_many(self.space.encode(architecture)[None])[0])

    def score_many(self, choices: np.ndarray) -> np.ndarray:
        pairs = sum(p[choices[:, i], choices[:, i + 1]] for i, p in enumerate(self.pairs))
        return np.log1p(self.params.score_many(choices)) + pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(ROOT / "search_spaces/tiny.yaml"))
    parser.add_argument("--table", default=str(ROOT / "latency_tables/cpu_tiny.csv"))
    parser.add_argument("--proxy", default="params", choices=["params", "flops", "pairwise"])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("-o", "--out", type=Path, help="JSON (default: benchmarks/results/hypervolume[_PROXY].json)")
    args = parser.parse_args()
    out = args.out or ROOT / "benchmarks/results" / (
        "hypervolume.json" if args.proxy == "params" else f"hypervolume_{args.proxy}.json"
    )

    space = SearchSpace.load(args.space)
    cost = CostModel(space, CostTable.load(args.table))
    rng = np.random.default_rng(0)
    sample = space.random_rows(rng, 20000)
    passes = int(space.budgets.get("passes", 1))
    budgets = Budgets(latency_ms=float(np.median(cost.price(sample, passes)[0])), passes=passes)
    exact, counts = exhaustive_front(space, cost, budgets, get_proxy(args.proxy)(space))
    points = exact[["latency_ms", "peak_memory_mb", "quality"]].to_numpy()
    low = points.min(axis=0)
    span = np.maximum(points.max(axis=0) - low, 1e-12)

    def hypervolume(front) -> float:
        if front.empty or not front["feasible"].all():
            return 0.0
        values = (front[["latency_ms", "peak_memory_mb", "quality"]].to_numpy() - low) / span
        values[:, 2] = 1.0 - values[:, 2]  # maximised -> minimised
        return float(compute_hypervolume(np.minimum(values, 1.1), np.full(3, 1.1)))  # past the reference: adds 0

    exact_hv = hypervolume(exact)
    results = {
        "space": space.name,
        "table": os.path.relpath(args.table, ROOT),
        "proxy": args.proxy,
        "trials": args.trials,
        "seeds": args.seeds,
        "latency_budget_ms": budgets.latency_ms,
        "architectures": counts["architectures"],
        "exhaustive_front": len(exact),
        "exhaustive": exact_hv,
        "samplers": {},
    }
    for name, sampler, screen in (("nsga2", "nsga2", SCREEN), ("nsga2-plain", "nsga2", 1), ("random", "random", 1)):
        values = []
        for seed in range(args.seeds):
            setup = SearchSetup(
                args.space, args.table, budgets, args.proxy, sampler, None, f"{name}-{seed}", seed, {}, screen
            )
            study = run_study(setup, args.trials, progress=False)
            values.append(hypervolume(pareto_set(trials_frame(study, space), space.slot_names)))
        results["samplers"][name] = {
            "mean": float(np.mean(values)),
            "per_seed": values,
            "ratio_to_exhaustive": float(np.mean(values) / exact_hv),
            "worst_ratio": float(np.min(values) / exact_hv),
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(
        f"{space.name}, proxy {args.proxy}: {counts['architectures']:,} architectures, latency budget "
        f"{budgets.latency_ms:.1f} ms, {args.trials} trials x {args.seeds} seeds"
    )
    print(f"{'sampler':12s} {'hypervolume':>12s} {'of exhaustive':>14s} {'worst seed':>11s}")
    print(f"{'exhaustive':12s} {exact_hv:12.4f} {1:14.1%} {1:11.1%}")
    for name, r in results["samplers"].items():
        print(f"{name:12s} {r['mean']:12.4f} {r['ratio_to_exhaustive']:14.1%} {r['worst_ratio']:11.1%}")


if __name__ == "__main__":
    main()
