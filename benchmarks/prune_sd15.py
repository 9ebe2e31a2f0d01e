"""Full-size check of `nas prune`: SD1.5's UNet (its public config, random weights saved by diffusers
as safetensors) -> the backbone of search_spaces/snapgen_v.yaml -> `nas build --spatial-weights`.

Each command runs as its own process under /usr/bin/time -v, so its wall time and peak RSS are its own.
Writes benchmarks/results/prune_sd15_cpu.json (or --results).

    python benchmarks/prune_sd15.py --work /tmp/prune_sd15
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from common import ROOT, timed, write_random
from diffusers import UNet2DConditionModel

# stable-diffusion-v1-5/unet/config.json as published (diffusers layout).
SD15_UNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (gets ~5 GB)")
    parser.add_argument("--space", type=Path, default=ROOT / "search_spaces" / "snapgen_v.yaml")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "prune_sd15_cpu.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    source = args.work / "unet"
    if not source.is_dir():
        write_random(UNet2DConditionModel, SD15_UNET_CONFIG, source)
    pruned = args.work / "pruned"
    prune = timed(["prune", str(source), "--space", str(args.space), "-o", str(pruned), "--json"])
    build = timed(["build", str(args.space), "--arch", "reference", "--spatial-weights", str(pruned), "--json"])
    report = json.loads(prune["stdout"]) if prune["returncode"] == 0 else None
    size = json.loads(build["stdout"]) if build["returncode"] == 0 else None
    results = {
        "machine": os.uname().nodename and f"{os.cpu_count()}-core CPU VM (shared)",
        "date": time.strftime("%Y-%m-%d"),
        "prune": {k: v for k, v in prune.items() if k != "stdout"},
        "build": {k: v for k, v in build.items() if k != "stdout"},
        "report": report,
        "params_total_built": size and size["params_total"],
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: results[k] for k in ("prune", "build", "params_total_built")}, indent=1))
    if report:
        print(report["summary"])


if __name__ == "__main__":
    main()
