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
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def write_sd15_unet(folder: Path, seed: int = 0) -> Path:
    """``folder/unet``: SD1.5's UNet config with random weights, saved by diffusers (safetensors)."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    UNet2DConditionModel(**SD15_UNET_CONFIG).save_pretrained(folder / "unet", safe_serialization=True)
    return folder / "unet"


def timed(argv: list[str]) -> dict:
    """Run ``python -m nas ARGV`` under /usr/bin/time -v: rc, wall s, peak RSS MB, stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "nas", *argv], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return {
        "command": "nas " + " ".join(argv),
        "returncode": proc.returncode,
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(int(peak.group(1)) / 1024) if peak else None,
        "stdout": proc.stdout,
        "stderr_tail": proc.stderr[-2000:] if proc.returncode else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (gets ~5 GB)")
    parser.add_argument("--space", type=Path, default=ROOT / "search_spaces" / "snapgen_v.yaml")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "prune_sd15_cpu.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    source = args.work / "unet" if (args.work / "unet").is_dir() else write_sd15_unet(args.work)
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
