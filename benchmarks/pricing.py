"""Vectorised pricing speed: architectures priced per second by CostModel.price.

Usage: python benchmarks/pricing.py [--space S] [--table T] [--n N] [-o out.json]
Prints the figure and writes JSON; the acceptance floor is 100,000 architectures per second.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from nas.cost.cost_model import CostModel
from nas.cost.table import CostTable
from nas.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=ROOT / "search_spaces/snapgen_v.yaml")
    parser.add_argument("--table", default=ROOT / "latency_tables/iphone16promax_ne_snapgen_v.csv")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "benchmarks/results/pricing.json")
    args = parser.parse_args()
    space = SearchSpace.load(args.space)
    model = CostModel(space, CostTable.load(args.table))
    rng = np.random.default_rng(0)
    choices = space.random_rows(rng, args.n)
    model.price(choices[:10])  # builds the per-slot arrays once (the table lookups)
    best = min(_timed(lambda: model.price(choices)) for _ in range(args.repeats))
    result = {
        "space": space.name,
        "table": str(args.table),
        "architectures": args.n,
        "seconds": best,
        "architectures_per_second": args.n / best,
        "machine": f"{platform.machine()} {platform.node()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        f"priced {args.n:,} architectures of {space.name} in {best * 1e3:.1f} ms: "
        f"{result['architectures_per_second']:,.0f} architectures/s  -> {args.out}"
    )


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
