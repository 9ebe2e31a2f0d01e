"""The 4-step claim on the tiny world's held-out captions: does the adversarial term help?

Usage: python benchmarks/four_step.py [--world runs/world] [--distill-steps 80] [--adversarial-steps 40]
                                      [--guidance 3] [--noises 4] [--seed 0] [--set KEY=VALUE ...]
                                      [--runs runs/four_step] [--out benchmarks/results/four_step.json]

Trains on the world's search pool (``latents/``; makes the world first if the folder does not
exist): stage 1 (``distill``, examples/tiny/distill.yaml on the world's space and backbone), then
the adversarial stage twice from it with examples/tiny/adversarial.yaml (``--set`` overrides a
key of it): once as configured and once identically but with ``loss_adversarial: 0`` (same seed,
same batches, same noise; the discriminator still trains, unseen by the generator). It then scores
on the world's *test* clips, whose captions (subject, motion) no training clip has:

  (a) stage 1, 25 DDIM steps, classifier-free guidance ``--guidance`` (empty caption as unconditional)
  (a') stage 1, 25 steps, no guidance (for context)
  (b) stage 1, 4 steps, no guidance
  (c) adversarial, 4 steps, no guidance
  (d) adversarial with the adversarial term off, 4 steps, no guidance

Each draws ``--noises`` samples per test caption from fixed noise (the same noise for every row).
Metrics (lower is better except accuracy):

- ``direction acc`` (higher is better, chance 0.25), ``speed error``, ``dynamic degree`` and
  ``temporal consistency``: the motion metrics of nas/quality/motion.py (docs/quality.md), each with its
  90% bootstrap interval over samples;
- ``FVD``: an FVD-style Frechet distance between Gaussian fits of video features of the samples and
  of the real test clips. The features are the 16-dim embedding of a small 3D-conv video encoder
  trained here on the search pool's latents to recognise each clip's subject and motion
  (FVD uses I3D trained on Kinetics; this is that idea at the world's scale). With 16 real clips
  the Frechet estimate is biased, so ``KVD`` is also given: the unbiased squared MMD with KID's
  cubic polynomial kernel on the same features (Kernel Video Distance, as in the FVD paper);
- ``caption acc``: how often the encoder reads the caption's motion / subject off a sample
  (its accuracy on the real test clips is printed as the reference row).

Finished runs are reused from ``--runs`` (one folder per config hash). Prints the table and the
seeds; writes the figures, configs and machine to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from scipy import linalg
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, print_table, run_main, write_results  # noqa: E402
from nas.data.latents import LatentDataset  # noqa: E402
from nas.data.world import World, make_world, motions, subjects  # noqa: E402
from nas.errors import NasError  # noqa: E402
from nas.model import VideoUNet  # noqa: E402
from nas.model.loading import load_pretrained  # noqa: E402
from nas.pipeline import few_step_scheduler, sample_latents  # noqa: E402
from nas.quality import motion  # noqa: E402
from nas.space import SearchSpace  # noqa: E402
from nas.train import AdversarialConfig, DistillConfig, adversarial, distill, load_config  # noqa: E402

ATTRIBUTES = {"motion": motions(), "subject": [name for name, _ in subjects("both")]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=ROOT / "runs" / "world")
    parser.add_argument("--distill-steps", type=int, default=80)
    parser.add_argument("--adversarial-steps", type=int, default=40)
    parser.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance of row (a)")
    parser.add_argument("--noises", type=int, default=4, help="samples per test caption")
    parser.add_argument("--seed", type=int, default=0, help="training seed; sample noise uses seed+1, encoder seed+2")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of examples/tiny/adversarial.yaml (both adversarial runs)",
    )
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "four_step")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "four_step.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    if not args.world.exists():
        make_world(args.world, SearchSpace.load(ROOT / "search_spaces" / "world.yaml"))
    world = World(args.world)

    stage1 = train(
        distill,
        DistillConfig,
        "distill",
        args.runs,
        {
            "space": str(world.folder / "space.yaml"),
            "spatial_weights": str(world.backbone),
            "data": str(world.latents),
            "max_steps": args.distill_steps,
            "holdout": 8,
            "checkpoint_every": args.distill_steps,
            "log_every": 20,
            "ema_decay": 0.99,
            "seed": args.seed,
        },
    )
    overrides = {
        "init": str(stage1),
        "data": str(world.latents),
        "max_steps": args.adversarial_steps,
        "holdout": 8,
        "eval_samples": 8,
        "checkpoint_every": args.adversarial_steps,
        "log_every": 20,
        "seed": args.seed,
    }
    overrides.update(parse_sets(args.set))
    adv = train(adversarial, AdversarialConfig, "adversarial", args.runs, overrides)
    off = train(adversarial, AdversarialConfig, "adversarial", args.runs, {**overrides, "loss_adversarial": 0.0})

    test = LatentDataset(world.test)
    held = test.get(test.videos)
    real, text = held["latents"], held["text"]
    labels = attribute_labels(world, test, "test")
    encoder = train_encoder(world, args.seed + 2)
    generator = torch.Generator().manual_seed(args.seed + 1)
    noise = torch.randn((len(real) * args.noises, *real.shape[1:]), generator=generator)
    texts = text.repeat(args.noises, 1, 1)
    table = world.test_motion().set_index("file")
    sources = [test.samples[i]["source"] for i in test.videos] * args.noises
    directions, speeds = list(table.loc[sources, "direction"]), list(table.loc[sources, "speed"])
    sample_labels = {k: v.repeat(args.noises) for k, v in labels.items()}
    real_features = features(encoder, real)
    search = LatentDataset(world.latents)

    rows = [
        {
            "row": "real test clips (reference)",
            "steps": "-",
            "guidance": "-",
            "passes": "-",
            **_motion(real, world, directions[: len(real)], speeds[: len(real)], args.seed),
            "fvd": 0.0,
            "kvd": 0.0,
            **accuracy(encoder, real, labels),
        }
    ]
    for name, run, steps, guidance in (
        ("(a) stage 1", stage1, 25, args.guidance),
        ("(a') stage 1", stage1, 25, 1.0),
        ("(b) stage 1", stage1, 4, 1.0),
        ("(c) adversarial", adv, 4, 1.0),
        ("(d) adversarial, term off", off, 4, 1.0),
    ):
        samples = sample(run, world, texts, noise, steps, guidance)
        passes = steps * (2 if guidance != 1 else 1)
        rows.append(
            {
                "row": name,
                "steps": steps,
                "guidance": guidance,
                "passes": passes,
                **_motion(samples, world, directions, speeds, args.seed),
                **distances(features(encoder, samples), real_features),
                **accuracy(encoder, samples, sample_labels),
            }
        )

    seeds = {
        "world": world.info.get("recipe", {}).get("seed"),
        "training": args.seed,
        "sample_noise": args.seed + 1,
        "encoder": args.seed + 2,
        "adversarial_eval_noise": 0,
    }
    print(
        f"world {world.folder} ({len(search.videos)} search clips, {len(real)} test clips with unseen captions); "
        f"{args.noises} samples per test caption; seeds {seeds}"
    )
    print(
        "video encoder accuracy on the real test clips: "
        + ", ".join(f"{k} {rows[0][f'acc_{k}']:.2f}" for k in ATTRIBUTES)
    )
    print_table(
        [
            "row",
            "steps",
            "guidance",
            "UNet passes",
            "direction acc [90% CI]",
            "speed err",
            "FVD",
            "KVD",
            "acc motion/subject",
        ],
        [
            [
                r["row"],
                r["steps"],
                r["guidance"],
                r["passes"],
                f"{_f(r['direction_accuracy']['mean'], 2)} {_ci(r['direction_accuracy']['ci90'])}",
                _f(r["speed_error"]["mean"]),
                _f(r["fvd"]),
                _f(r["kvd"], 4),
                "/".join(_f(r[f"acc_{k}"], 2) for k in ATTRIBUTES),
            ]
            for r in rows
        ],
    )
    runs = {"distill": stage1, "adversarial": adv, "adversarial_term_off": off}
    summaries = {name: json.loads((run / "summary.json").read_text()) for name, run in runs.items()}
    for name in ("adversarial", "adversarial_term_off"):
        s = summaries[name]
        print(
            f"{name}: eval_sample_mse (held-out clips) {s['eval_sample_mse_first']:.4f} -> "
            f"{s['eval_sample_mse_last']:.4f}, {s['s_per_step']:.2f} s/step"
        )
    write_results(
        args.out,
        {
            "rows": rows,
            "seeds": seeds,
            "runs": {n: str(r) for n, r in runs.items()},
            "configs": {n: yaml.safe_load((r / "config.yaml").read_text()) for n, r in runs.items()},
            "summaries": summaries,
            "world": world.info,
            "machine": machine(torch.device("cpu")),
            "wall_s": round(time.perf_counter() - start, 1),
        },
    )


def parse_sets(items: list[str]) -> dict:
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise NasError(f"--set {item}: expected KEY=VALUE")
        values[key] = yaml.safe_load(value)
    return values


def train(stage, cls, name: str, runs: Path, overrides: dict) -> Path:
    """Run a stage from its tiny example config plus ``overrides`` into runs/NAME-HASH, or reuse a finished one."""
    config = load_config(cls, ROOT / "examples" / "tiny" / f"{name}.yaml", {**overrides, "out": "-"})
    key = json.dumps({k: v for k, v in dataclasses.asdict(config).items() if k != "out"}, sort_keys=True)
    out = runs / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    summary = out / "summary.json"
    if not (summary.is_file() and json.loads(summary.read_text()).get("finished")):
        config.out = str(out)
        stage(config, resume=(out / "checkpoints").is_dir())
    return out


@torch.no_grad()
def sample(
    run: Path, world: World, text: torch.Tensor, noise: torch.Tensor, steps: int, guidance: float
) -> torch.Tensor:
    """DDIM (trailing) over the run's noise schedule, as ``nas generate``; classifier-free guidance with the
    empty caption when ``guidance`` != 1."""
    from diffusers import DDPMScheduler

    model = load_pretrained(VideoUNet, run / "model").eval()
    scheduler = few_step_scheduler(DDPMScheduler.from_pretrained(run / "scheduler", local_files_only=True).config)
    return sample_latents(model, scheduler, text, steps, noise, guidance, world.empty_text)


# ------------------------------------------------------------------------------------ video encoder
class VideoEncoder(nn.Module):
    """3D convolutions over a latent clip (C, F, h, w) -> a 16-dim embedding -> subject and motion logits."""

    def __init__(self, channels: int, frames: int, height: int, width: int, dim: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(channels, 32, 3, padding=1),
            nn.GroupNorm(8, 32),
            nn.SiLU(),
            nn.Conv3d(32, 32, 3, padding=1, stride=(1, 2, 2)),
            nn.GroupNorm(8, 32),
            nn.SiLU(),
            nn.Conv3d(32, 32, 3, padding=1, stride=(1, 2, 2)),
            nn.GroupNorm(8, 32),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(32 * frames * ((height + 3) // 4) * ((width + 3) // 4), dim),
        )
        self.heads = nn.ModuleDict({k: nn.Linear(dim, len(v)) for k, v in ATTRIBUTES.items()})

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.body(latents)


def attribute_labels(world: World, data: LatentDataset, pool: str) -> dict[str, torch.Tensor]:
    """Class index of each video's motion and subject, from the world's captions table."""
    table = pd.read_csv(world.folder / "videos" / pool / "captions.csv").set_index("file")
    rows = [table.loc[data.samples[i]["source"]] for i in data.videos]
    return {k: torch.tensor([values.index(row[k]) for row in rows]) for k, values in ATTRIBUTES.items()}


def train_encoder(world: World, seed: int, steps: int = 400) -> VideoEncoder:
    """Trained on the search pool only (clean latents plus noise up to 0.3, so samples are not out of
    its range), never on test clips."""
    torch.manual_seed(seed)
    data = LatentDataset(world.latents)
    clips = data.get(data.videos)["latents"]
    labels = attribute_labels(world, data, "search")
    encoder = VideoEncoder(*clips.shape[1:])
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=2e-3, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        pick = torch.randint(len(clips), (32,), generator=generator)
        x = clips[pick] + 0.3 * torch.rand(32, 1, 1, 1, 1, generator=generator) * torch.randn(
            clips[pick].shape, generator=generator
        )
        h = encoder(x)
        loss = sum(nn.functional.cross_entropy(head(h), labels[k][pick]) for k, head in encoder.heads.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return encoder.eval()


@torch.no_grad()
def features(encoder: VideoEncoder, latents: torch.Tensor) -> np.ndarray:
    return encoder(latents).double().numpy()


@torch.no_grad()
def accuracy(encoder: VideoEncoder, latents: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, float]:
    h = encoder(latents)
    return {f"acc_{k}": float((head(h).argmax(1) == labels[k]).float().mean()) for k, head in encoder.heads.items()}


def distances(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """FVD-style Frechet distance of Gaussian fits, and KVD (unbiased MMD^2, kernel (x.y/d + 1)^3)."""
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = linalg.sqrtm(cov_x @ cov_y).real
    fvd = float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x + cov_y - 2 * root))

    def kernel(a, b):
        return (a @ b.T / a.shape[1] + 1) ** 3

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    m, n = len(x), len(y)
    kvd = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    return {"fvd": max(fvd, 0.0), "kvd": float(kvd)}


def _motion(latents: torch.Tensor, world: World, directions: list[str], speeds: list[str], seed: int) -> dict:
    """The motion metrics of ``latents`` (one caption's direction and speed each), mean and 90% interval."""
    return motion.summarize(motion.per_sample(latents, world.background, directions, speeds), seed=seed)


def _ci(interval) -> str:
    return f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def _f(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    run_main(main)
