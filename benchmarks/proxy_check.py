"""Every quality proxy against the tiny world's ground truth: Kendall tau, Spearman rho, cost.

Usage: python benchmarks/proxy_check.py [--world runs/world] [--samples 12] [--train-steps 3,6,12]
                                        [--reference-train-steps 400] [--out benchmarks/results/proxy_check]
Makes the world first if the folder does not exist (``nas world make``, default recipe). The
ground truth trains each architecture's temporal layers ``--reference-train-steps`` steps (default
400, as benchmarks/motion_ceiling.py measured it), twice with two other seeds and data orders, and
scores it on the world's held-out clips (see nas/quality/ground_truth.py). Scores are cached in WORLD/check-cache, so a
killed run resumes where it stopped. Prints one line per proxy and metric; writes check.json,
architectures.csv, results.csv and scatter.png to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.cli.aliases import deprecated_flag  # noqa: E402
from nas.data.world import World, make_world  # noqa: E402
from nas.quality.proxy_check import proxy_check, refusals, write_outputs  # noqa: E402
from nas.space import SearchSpace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=ROOT / "runs" / "world")
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--train-steps", default="3,6,12", help="distill proxy optimizer step counts")
    deprecated_flag(parser, "--steps", "--train-steps")
    parser.add_argument("--reference-train-steps", type=int, default=400, help="the ground truth's (motion_ceiling.py)")
    deprecated_flag(parser, "--reference-steps", "--reference-train-steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "proxy_check")
    args = parser.parse_args()
    if not args.world.exists():
        make_world(args.world, SearchSpace.load(ROOT / "search_spaces" / "world.yaml"))
    world = World(args.world)
    start = time.perf_counter()
    report = proxy_check(
        world=world,
        samples=args.samples,
        seed=args.seed,
        train_steps=tuple(int(s) for s in args.train_steps.split(",")),
        reference_train_steps=args.reference_train_steps,
        cache=world.folder / "check-cache",
    )
    report["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "wall_s": round(time.perf_counter() - start, 1),
        "note": "shared 2-core VM, loaded by other jobs: costs are wall seconds under that load",
    }
    write_outputs(report, args.out)
    print(
        f"{len(report['architectures'])} architectures, reference: {report['reference']['kind']} "
        f"{report['reference']['train_steps']} steps; independence problems: {report['independence_problems'] or 'none'}"
    )
    print(
        f"{'proxy':<12}{'metric':<10}{'tau':>7}{'ceiling':>9}  {'tau 90% CI':<16}{'rho':>7}  {'rho 90% CI':<16}"
        f"{'rel. cost':>10}"
    )
    for r in report["results"]:
        print(
            f"{r['proxy']:<12}{r['metric']:<10}{_f(r['kendall_tau']):>7}{_f(r['ceiling']):>9}  {_ci(r['tau_ci90']):<16}"
            f"{_f(r['spearman_rho']):>7}  {_ci(r['rho_ci90']):<16}{r['relative_cost']:>10.4f}"
        )
    for line in refusals(report):
        print(line)
    for metric, best in report["recommended_by_metric"].items():
        print(
            f"recommended on {metric}:",
            "none" if best is None else f"{best['proxy']} (tau {best['kendall_tau']}, cost {best['relative_cost']})",
        )
    print(f"validated on denoising and motion: {report['validated'] or 'none'}")


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ci(pair) -> str:
    return f"[{_f(pair[0])}, {_f(pair[1])}]"


if __name__ == "__main__":
    main()
