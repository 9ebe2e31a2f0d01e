"""Does the ground truth agree with itself, and does it see motion? An independent check.

Usage: python benchmarks/motion_ceiling.py [--world runs/world] [--samples 12] [--train-steps 120]
          [--samples-per-caption 2] [--seeds 7919,31337] [--out benchmarks/results/motion_ceiling.json]

Through the public Python API only (``World``, ``GroundTruth``, ``check_architectures``,
``nas.quality.motion``) and scipy's Kendall tau -- not ``nas proxy check``'s code -- it trains the
ground truth twice, with two seeds (their own data order, training noise and sampling noises), on
``--samples`` architectures of the world's space, and writes per architecture and seed every
metric of both held-out pools, then Kendall tau between the two seeds per metric (the *ceiling* any
proxy can reach) and the reference and all-``none`` designs' direction accuracy on held-out captions
with 90% bootstrap intervals (pooled over both seeds' samples). Makes the world first when the
folder does not exist (``nas world make``, default recipe). ``--labels`` limits the run to some
architectures (a quick look; then no tau is written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.data.world import World, make_world  # noqa: E402
from nas.quality import motion  # noqa: E402
from nas.quality.ground_truth import GroundTruth  # noqa: E402
from nas.quality.proxy_check import check_architectures  # noqa: E402
from nas.space import SearchSpace  # noqa: E402

# metric -> +1 when higher is better (tau is the same either way; the sign orders the table)
METRICS = {"denoise_loss": -1, **{m: 1 if motion.HIGHER_IS_BETTER[m] else -1 for m in motion.METRICS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=ROOT / "runs" / "world")
    parser.add_argument("--samples", type=int, default=12, help="architectures (check_architectures' pick)")
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--samples-per-caption", type=int, default=8)
    parser.add_argument("--sampling-steps", type=int, default=8)
    parser.add_argument("--seeds", default="7919,31337")
    parser.add_argument("--labels", default=None, help="comma-separated labels to run only (no tau then)")
    parser.add_argument("--part", action="store_true", help="write the seeds' rows only (to merge with --merge)")
    parser.add_argument("--merge", type=Path, nargs="+", help="parts (--part outputs of other seeds) to combine")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "motion_ceiling.json")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        report = {**parts[0], "command": [p["command"] for p in parts]}
        report["architectures"] = [r for p in parts for r in p["architectures"]]
        report["per_sample"] = {k: v for p in parts for k, v in p["per_sample"].items()}
        report["ground_truth"]["seeds"] = [s for p in parts for s in p["ground_truth"]["seeds"]]
        report["wall_s"] = [p["wall_s"] for p in parts]
        world = World(report["world"]["folder"])
    else:
        if not args.world.exists():
            make_world(args.world, SearchSpace.load(ROOT / "search_spaces" / "world.yaml"))
        world = World(args.world)
        report = _run(world, args)
    if args.part:
        args.out.write_text(json.dumps(report))
        return
    seeds = report["ground_truth"]["seeds"]
    rows = report["architectures"]
    if len(seeds) >= 2 and not args.labels:
        report["ceiling"] = _ceilings(rows, seeds)
        report["proxies"] = _proxies(world, rows, seeds)
    per_sample = report.pop("per_sample")
    report["direction_accuracy_ci90"] = {
        f"{label} / {pool}": _pooled(per_sample, label, seeds, key)
        for label in ("reference", "all none")
        if f"{label}/{seeds[0]}" in per_sample
        for pool, key in (("test", "direction_accuracy"), ("positions", "positions_direction_accuracy"))
    }
    report["merge_s"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    shown = ("ceiling", "proxies", "direction_accuracy_ci90", "wall_s")
    print(json.dumps({k: report[k] for k in shown if k in report}, indent=1))


def _run(world: World, args) -> dict:
    """Train and score the ground truth for every seed and architecture; per-sample direction
    accuracies of the reference and all-``none`` designs kept for their intervals."""
    space = world.space()
    architectures = check_architectures(space, args.samples, seed=0)
    if args.labels:
        architectures = [(label, a) for label, a in architectures if label in args.labels.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.perf_counter()
    rows, per_sample = [], {}
    for seed in seeds:
        truth = GroundTruth(
            world,
            space,
            train_steps=args.train_steps,
            seed=seed,
            samples_per_caption=args.samples_per_caption,
            sampling_steps=args.sampling_steps,
        )
        for label, architecture in architectures:
            began = time.perf_counter()
            model = truth.train(architecture)
            values = truth.motion(model, per_sample=True)
            row = {
                "label": label,
                "id": architecture.id,
                "architecture": architecture.describe(),
                "temporal": any(not c.is_none for _, c in architecture.choices),
                "seed": seed,
                "denoise_loss": round(truth.denoise_loss(model), 5),
                **{k: round(float(np.mean(v)), 4) for k, v in values.items()},
                "seconds": round(time.perf_counter() - began, 1),
            }
            if label in ("reference", "all none"):
                per_sample[f"{label}/{seed}"] = {
                    k: values[k].tolist() for k in ("direction_accuracy", "positions_direction_accuracy")
                }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {
        "command": " ".join(["python", *sys.argv]),
        "world": {
            "folder": str(world.folder),
            "recipe": world.info.get("recipe"),
            "seconds": world.info.get("seconds"),
        },
        "ground_truth": {
            "train_steps": args.train_steps,
            "lr": truth.lr,
            "batch": truth.batch,
            "samples_per_caption": args.samples_per_caption,
            "sampling_steps": args.sampling_steps,
            "seeds": seeds,
        },
        "architectures": rows,
        "per_sample": per_sample,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": os.environ.get("OMP_NUM_THREADS"),
            "note": "2-core shared VM, under load (other sessions' jobs): seconds are wall time under that load",
        },
        "wall_s": round(time.perf_counter() - start, 1),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def _proxies(world: World, rows: list[dict], seeds: list[int]) -> dict[str, dict]:
    """Kendall tau of every zero-cost proxy (world data and backbone, as ``nas proxy check`` builds
    them) against each seed's held-out denoising and direction accuracy, beside the seconds it took."""
    from nas.quality.proxies import get_proxy

    space = world.space()
    labels = [r["label"] for r in rows if r["seed"] == seeds[0]]
    described = {r["label"]: r["architecture"] for r in rows}
    architectures = dict(check_architectures(space, len(labels) + 20, seed=0))
    scored = {}
    for name in ("params", "flops", "gradnorm", "synflow", "naswot", "tsens"):
        cls = get_proxy(name)
        options = {
            k: str(v) for k, v in (("data", world.latents), ("spatial_weights", world.backbone)) if k in _init_args(cls)
        }
        proxy = cls(space, seed=0, **options)
        began = time.perf_counter()
        scores = [float(proxy.score(architectures[label])) for label in labels]
        scored[name] = (scores, (time.perf_counter() - began) / len(labels))
    # distill as `nas proxy check` runs it: 16 clips of the search pool, read off one learning curve
    distill = get_proxy("distill")(
        space,
        seed=0,
        train_steps=12,
        report_every=3,
        clips=16,
        data=str(world.latents),
        spatial_weights=str(world.backbone),
    )
    curves = []
    for label in labels:
        curve = _Curve()
        distill.score(architectures[label], curve)
        curves.append(curve.points)
    for steps in (3, 6, 12):
        scored[f"distill@{steps}"] = ([c[steps][0] for c in curves], float(np.mean([c[steps][1] for c in curves])))
    out = {}
    for name, (scores, seconds) in scored.items():
        reference = float(np.mean([r["seconds"] for r in rows]))
        entry = {"seconds_per_arch": round(seconds, 3), "cost_vs_ground_truth": round(seconds / reference, 4)}
        for metric in ("denoise_loss", "direction_accuracy"):
            for seed in seeds[:2]:
                truth = {r["label"]: METRICS[metric] * r[metric] for r in rows if r["seed"] == seed}
                tau = stats.kendalltau(scores, [truth[x] for x in labels]).statistic
                entry[f"tau_{metric}_seed{seed}"] = None if np.isnan(tau) else round(float(tau), 3)
        out[name] = entry
    assert all(architectures[x].describe() == described[x] for x in labels), "architectures changed between runs"
    return out


class _Curve:
    """Records a training proxy's reported scores and the seconds to each (its learning curve)."""

    def __init__(self):
        self.start, self.points = time.perf_counter(), {}

    def report(self, value: float, step: int) -> None:
        self.points[step] = (value, time.perf_counter() - self.start)


def _init_args(cls) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters)


def _ceilings(rows: list[dict], seeds: list[int]) -> dict[str, dict[str, float]]:
    """Kendall tau between the first two seeds per metric, over all architectures and over those with
    temporal layers, with the metric's spread between designs and between seeds for scale."""
    out = {}
    for metric in [*METRICS, *(f"positions_{m}" for m in motion.METRICS)]:
        a = {r["label"]: r[metric] for r in rows if r["seed"] == seeds[0]}
        b = {r["label"]: r[metric] for r in rows if r["seed"] == seeds[1]}
        temporal = {r["label"] for r in rows if r["temporal"]}
        labels = list(a)
        entry = {}
        for name, keep in (("all", labels), ("temporal", [x for x in labels if x in temporal])):
            tau = stats.kendalltau([a[x] for x in keep], [b[x] for x in keep]).statistic
            entry[f"tau_{name}"] = None if np.isnan(tau) else round(float(tau), 3)
        entry["spread_between_designs"] = round(float(np.std([(a[x] + b[x]) / 2 for x in labels])), 4)
        entry["mean_seed_difference"] = round(float(np.mean([abs(a[x] - b[x]) for x in labels])), 4)
        out[metric] = entry
    return out


def _pooled(per_sample: dict, label: str, seeds: list[int], key: str) -> dict:
    values = np.concatenate([per_sample[f"{label}/{s}"][key] for s in seeds])
    by_seed = [round(float(np.mean(per_sample[f"{label}/{s}"][key])), 4) for s in seeds]
    return {**motion.summarize({key: values})[key], "by_seed": by_seed}


if __name__ == "__main__":
    main()
