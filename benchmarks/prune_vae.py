"""Full-size check of `nas prune --decoder`: SD1.5's VAE (its public config, random weights saved by
diffusers as safetensors) -> a decoder of at most 1/4 of its FLOPs per frame of search_spaces/snapgen_v.yaml
(320x512), its frames compared with the source's next to a random decoder of the same shape.

The prune runs as its own process under /usr/bin/time -v, so its wall time and peak RSS are its own.
With random source weights the PSNR/SSIM figures say only whether the pruned decoder keeps more of the
source's function than a random one of its shape, nothing about image quality. Writes
benchmarks/results/prune_vae_cpu.json (or --results).

    python benchmarks/prune_vae.py --work /tmp/prune_vae
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from common import LIGHT_DECODER, ROOT, SD_VAE, machine, timed, write_random
from diffusers import AutoencoderKL

# stable-diffusion-v1-5/vae/config.json as published (diffusers layout; scaling_factor is its default)
SD15_VAE_CONFIG = {k: v for k, v in SD_VAE.items() if k != "scaling_factor"} | {"act_fn": "silu", "norm_num_groups": 32}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (gets ~0.4 GB)")
    parser.add_argument("--space", type=Path, default=ROOT / "search_spaces" / "snapgen_v.yaml")
    parser.add_argument("--seed", type=int, default=0, help="of the source's random weights (a new --work each)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "prune_vae_cpu.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    source = args.work / "vae"
    if not source.is_dir():
        write_random(AutoencoderKL, SD15_VAE_CONFIG, source, args.seed)
    pruned = args.work / "pruned"
    widths = ",".join(str(w) for w in LIGHT_DECODER["block_out_channels"])
    argv = ["prune", str(source), "--decoder", "--widths", widths, "--layers-per-block"]
    argv += [str(LIGHT_DECODER["layers_per_block"]), "--space", str(args.space), "-o", str(pruned), "--json"]
    load_before = os.getloadavg()
    prune = timed(argv)
    report = json.loads(prune["stdout"]) if prune["returncode"] == 0 else None
    results = {
        "machine": machine(torch.device("cpu")),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "source_seed": args.seed,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "prune": {k: v for k, v in prune.items() if k != "stdout"},
        "report": report,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["prune"], indent=1))
    if report:
        print(report["summary"])


if __name__ == "__main__":
    main()
