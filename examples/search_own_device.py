"""Search on your own device table, then hand the best architecture to the builder.

Run from the repository root:  python examples/search_own_device.py [--out runs/example]
It measures the tiny space on this machine's CPU (your device: change the profile options,
or write a table by hand in the format of latency_tables/README.md), searches it under a
latency budget, and builds the fastest Pareto architecture as a VideoUNet.

The work sits under ``if __name__ == "__main__"``: the profiler measures in a child worker
process, which imports this file again, as any script that uses ``nas.profile`` must allow.
"""

import argparse
from pathlib import Path

import pandas as pd

from nas import SearchSpace, VideoUNet
from nas.cost.cost_model import CostModel
from nas.cost.table import CostTable
from nas.profile.runner import profile
from nas.search import search

SPACE = "search_spaces/tiny.yaml"


def main(out: Path, trials: int = 200) -> None:
    # 1. Your device's table (resumable: re-running skips what is measured).
    table_path = out / "my_device.csv"
    profile(
        SPACE,
        "torch",
        table_path,
        device="cpu",
        warmup=2,
        repeats=10,
        budget_s=1.0,
        command=f"nas profile {SPACE} -o {table_path}",
    )
    table = CostTable.load(table_path)

    # 2. A budget that binds: the reference architecture's latency on this device.
    space = SearchSpace.load(SPACE)
    budget = CostModel(space, table).predict(space.architecture("reference")).latency_ms
    summary = search(SPACE, table_path, out / "search", latency_budget=budget, proxy="params", trials=trials)
    print(f"{summary['pareto']} Pareto architectures under {budget:.1f} ms")

    # 3. Hand-over: the fastest Pareto architecture, built and ready for `nas train distill`.
    best = pd.read_csv(out / "search" / "pareto.csv").iloc[0]
    architecture = space.architecture(out / "search" / "architectures" / f"{best.arch_id}.yaml")
    model = VideoUNet.from_space(space, architecture)
    model.save_pretrained(out / "model")
    print(f"built {architecture.id}: {sum(p.numel() for p in model.parameters()):,} params -> {out / 'model'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/example"))
    parser.add_argument("--trials", type=int, default=200, help="search trials")
    args = parser.parse_args()
    main(args.out, args.trials)
