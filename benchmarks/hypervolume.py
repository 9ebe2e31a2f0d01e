"""NSGA-II vs random vs exhaustive: hypervolume of the found front at equal trial budgets.

Usage: python benchmarks/hypervolume.py [--space S] [--table T] [--trials 200] [--seeds 5]
Objectives are latency, memory (minimised) and the params proxy (maximised), normalised by
the exhaustive front's ranges; the reference point is 1.1 past the worst corner. The latency
budget defaults to the median latency of the space, so it binds. Writes JSON, prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from optuna._hypervolume import compute_hypervolume

from nas.cost.cost_model import CostModel
from nas.cost.table import LatencyTable
from nas.search.exhaustive import exhaustive_front
from nas.search.proxies import get_proxy
from nas.search.results import pareto_set, trials_frame
from nas.search.study import Budgets, SearchSetup, run_study
from nas.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(ROOT / "search_spaces/tiny.yaml"))
    parser.add_argument("--table", default=str(ROOT / "latency_tables/cpu_tiny.csv"))
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "benchmarks/results/hypervolume.json")
    args = parser.parse_args()

    space = SearchSpace.load(args.space)
    cost = CostModel(space, LatencyTable.load(args.table))
    rng = np.random.default_rng(0)
    sample = np.stack([rng.integers(0, len(s.choices), 20000) for s in space.slots], axis=1)
    steps = int(space.budgets.get("steps", 1))
    budgets = Budgets(latency_ms=float(np.median(cost.price(sample, steps)[0])), steps=steps)
    proxy = get_proxy("params")(space)
    exact, counts = exhaustive_front(space, cost, budgets, proxy)
    points = exact[["latency_ms", "memory_mb", "quality"]].to_numpy()
    low = points.min(axis=0)
    span = np.maximum(points.max(axis=0) - low, 1e-12)

    def hypervolume(front) -> float:
        if front.empty or not front["feasible"].all():
            return 0.0
        values = (front[["latency_ms", "memory_mb", "quality"]].to_numpy() - low) / span
        values[:, 2] = 1.0 - values[:, 2]  # maximised -> minimised
        return float(compute_hypervolume(values, np.full(3, 1.1)))

    exact_hv = hypervolume(exact)
    results = {"space": space.name, "table": args.table, "trials": args.trials, "seeds": args.seeds,
               "latency_budget_ms": budgets.latency_ms, "architectures": counts["architectures"],
               "exhaustive": exact_hv, "samplers": {}}
    for sampler in ("nsga2", "random"):
        values = []
        for seed in range(args.seeds):
            setup = SearchSetup(args.space, args.table, budgets, "params", sampler, None, f"{sampler}-{seed}", seed, {})
            study = run_study(setup, args.trials, progress=False)
            values.append(hypervolume(pareto_set(trials_frame(study, space), space.slot_names)))
        results["samplers"][sampler] = {"mean": float(np.mean(values)), "per_seed": values,
                                        "ratio_to_exhaustive": float(np.mean(values) / exact_hv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"{space.name}: {counts['architectures']:,} architectures, latency budget {budgets.latency_ms:.1f} ms, "
          f"{args.trials} trials x {args.seeds} seeds")
    print(f"{'sampler':12s} {'hypervolume':>12s} {'of exhaustive':>14s}")
    print(f"{'exhaustive':12s} {exact_hv:12.4f} {1:14.1%}")
    for name, r in results["samplers"].items():
        print(f"{name:12s} {r['mean']:12.4f} {r['ratio_to_exhaustive']:14.1%}")


if __name__ == "__main__":
    main()
