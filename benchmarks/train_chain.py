"""The tiny training chain end to end on CPU: how long it takes, in seconds and in speed-probe units.

    python benchmarks/train_chain.py [--threads 2] [--check] [-o benchmarks/results/train_chain_cpu.json]

The chain is the one tests/test_train.py checks for correctness (synth -> encode -> distill ->
adversarial -> generate, every stage through the ``nas`` entry point in this process, tiny VAE
and CLIP stand-ins made here). Its speed target -- under 3 minutes on a quiet 2-core CPU -- used to
be a wall-clock assertion in the test suite, where a loaded machine failed it for no fault of the
code. Here it is a ratio: wall seconds over the median time of the profilers' speed probe
(nas.profile.timing.SpeedProbe, ~1.4 ms on this project's quiet 2-core VM), taken before and
after the chain, so that a run on a busy machine and one on a quiet machine are comparable.
The target is 180 s at the quiet VM's probe (1.3561 ms, latency_tables/cpu_tiny.yaml), i.e.
about 133,000 probe runs; ``--check`` exits 1 above it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.cli import main as nas_main  # noqa: E402
from nas.data.media import fit, read_video  # noqa: E402
from nas.data.tiny_models import write_text_encoder, write_vae  # noqa: E402
from nas.profile.timing import SpeedProbe  # noqa: E402

TINY = ROOT / "search_spaces" / "tiny.yaml"
QUIET_PROBE_MS = 1.3561  # latency_tables/cpu_tiny.yaml: the quiet 2-core VM, 2 threads
TARGET_QUIET_S = 180.0
TARGET_PROBES = TARGET_QUIET_S * 1e3 / QUIET_PROBE_MS

DISTILL = [
    "--max-steps",
    "40",
    "--batch-size",
    "4",
    "--lr",
    "1e-3",
    "--set",
    "holdout=2",
    "--set",
    "ema_decay=0.99",
    "--set",
    "log_every=5",
    "--set",
    "checkpoint_every=20",
]
ADVERSARIAL = [
    "--max-steps",
    "30",
    "--batch-size",
    "4",
    "--lr",
    "5e-4",
    "--set",
    "disc_lr=5e-4",
    "--set",
    "holdout=2",
    "--set",
    "ema_decay=0.99",
    "--set",
    "image_ratio=0.25",
    "--set",
    "disc_heads=4",
    "--set",
    "log_every=5",
    "--set",
    "checkpoint_every=15",
]


def write_space(folder: Path, frames: int = 4, size: int = 64) -> Path:
    """tiny.yaml at ``size`` x ``size`` px (latent size/8) and ``frames`` frames: the training chain's space."""
    import yaml

    data = yaml.safe_load(TINY.read_text())
    data["video"].update({"frames": frames, "height": size, "width": size})
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_chain(root: Path) -> dict[str, float]:
    """The whole chain in ``root`` (videos/, vae/, clip/, latents/, run1/, run2/, out.mp4, out.safetensors,
    space.yaml); returns the seconds of each stage. The folder of clips gets a broken and a missing entry,
    which encoding must skip and list."""
    seconds: dict[str, float] = {}

    def nas(stage: str, *args) -> None:
        start = time.perf_counter()
        code = nas_main([str(a) for a in args])
        if code != 0:
            raise RuntimeError(f"nas {' '.join(map(str, args))} exited {code}")
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start

    nas(
        "synth",
        "data",
        "synth",
        "-o",
        root / "videos",
        "--clips",
        10,
        "--images",
        4,
        "--frames",
        8,
        "--height",
        72,
        "--width",
        80,
    )
    (root / "videos" / "broken.mp4").write_bytes(b"not a video")
    captions = pd.read_csv(root / "videos" / "captions.csv")
    extra = [{"file": "broken.mp4", "caption": "noise"}, {"file": "missing.mp4", "caption": "gone"}]
    pd.concat([captions, pd.DataFrame(extra)]).to_csv(root / "videos" / "captions.csv", index=False)
    start = time.perf_counter()
    frames = np.concatenate([read_video(root / "videos" / f"clip_000{i}.mp4") for i in range(4)])
    pixels = ((fit(frames, 64, 64) + 1) * 127.5).permute(0, 2, 3, 1).to(torch.uint8).numpy()
    space = write_space(root)
    write_vae(root / "vae", pixels)
    write_text_encoder(root / "clip")
    seconds["tiny models"] = time.perf_counter() - start
    nas(
        "encode",
        "data",
        "encode",
        root / "videos",
        "--vae",
        root / "vae",
        "--text-encoder",
        root / "clip",
        "--space",
        space,
        "-o",
        root / "latents",
        "--stride",
        2,
    )
    nas("distill", "train", "distill", "--space", space, "--data", root / "latents", "--out", root / "run1", *DISTILL)
    nas(
        "adversarial",
        "train",
        "adversarial",
        "--init",
        root / "run1",
        "--data",
        root / "latents",
        "--out",
        root / "run2",
        *ADVERSARIAL,
    )
    nas(
        "generate",
        "generate",
        "--model",
        root / "run2",
        "--vae",
        root / "vae",
        "--text-encoder",
        root / "clip",
        "--prompt",
        "a red square moving left",
        "--sampling-steps",
        4,
        "-o",
        root / "out.mp4",
    )
    nas(
        "generate",
        "generate",
        "--model",
        root / "run2",
        "--text-encoder",
        root / "clip",
        "--prompt",
        "a blue circle",
        "--latents-only",
        "-o",
        root / "out.safetensors",
    )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the test suite's chain used 2)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the chain is over its target")
    parser.add_argument("-o", "--out", type=Path, help="write the result as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    probe = SpeedProbe()
    probe_before = probe.reference_ms()
    with TemporaryDirectory(prefix="nas-train-chain-") as folder:
        wall, cpu = time.perf_counter(), time.process_time()
        stages = run_chain(Path(folder))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    probe_ms = float(np.median([probe_before, probe.reference_ms()]))
    probes = wall * 1e3 / probe_ms
    result = {
        "what": "tests/test_train.py's chain: synth, encode, distill 40 steps, adversarial 30, generate x2",
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
        "torch_threads": args.threads,
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "stages_s": {k: round(v, 1) for k, v in stages.items()},
        "probe_ms": round(probe_ms, 4),
        "wall_in_probes": round(probes),
        "target_in_probes": round(TARGET_PROBES),
        "ratio_to_target": round(probes / TARGET_PROBES, 3),
        "quiet_machine_estimate_s": round(probes * QUIET_PROBE_MS / 1e3, 1),
    }
    print(
        f"chain: {wall:.0f} s wall, {cpu:.0f} s CPU; probe {probe_ms:.2f} ms -> {probes:,.0f} probe runs "
        f"({result['ratio_to_target']:.2f} of the target; estimated {result['quiet_machine_estimate_s']:.0f} s "
        f"on the quiet VM)"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    if args.check and probes > TARGET_PROBES:
        sys.exit(1)


if __name__ == "__main__":
    main()
