"""Per-forward latency and peak memory: our architecture vs UNetMotionModel, same clip, same machine.

One UNet call on one clip (batch 1) at the same latent shape and frame count, each model in a
fresh process: --warmup untimed calls, then the median of --repeats timed calls. Writes JSON and
prints a table with the ratio (animatediff / reference).

    python benchmarks/unet_forward.py --frames 8 --height 256 --width 256 -o benchmarks/results/forward_cpu.json

Without shape flags it runs the space's full clip (16 x 320 x 512 for snapgen_v), which is the
setting for a GPU (fp16 there; fp32 on CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from common import (
    MODELS,
    add_shape_arguments,
    build_unet,
    current_memory_mb,
    load_space,
    machine,
    params,
    peak_memory_mb,
    print_table,
    reset_peak_memory,
    run_main,
    run_worker,
    setup,
    shape_argv,
    sync,
    write_results,
)


def measure(model_name: str, args) -> dict:
    """Build one model and time its forward; runs inside the worker process."""
    device = setup(args)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    space = load_space(args)
    v = space.video
    torch.manual_seed(0)
    start = time.perf_counter()
    model, forward = build_unet(model_name, space, device, dtype)
    build_s = time.perf_counter() - start
    sample = torch.randn(1, v.latent_channels, v.frames, v.latent_height, v.latent_width, device=device, dtype=dtype)
    text = torch.randn(1, space.text_tokens, space.cross_attention_dim, device=device, dtype=dtype)
    timestep = torch.tensor([500], device=device)
    weights_mb = current_memory_mb(device)
    reset_peak_memory(device)
    times = []
    with torch.inference_mode():
        for _ in range(args.warmup):
            forward(sample, timestep, text)
        for _ in range(args.repeats):
            sync(device)
            start = time.perf_counter()
            forward(sample, timestep, text)
            sync(device)
            times.append((time.perf_counter() - start) * 1000)
    return {
        "model": model_name,
        "params": params(model),
        "build_s": round(build_s, 1),
        "latency_ms": round(statistics.median(times), 1),
        "latency_ms_all": [round(t, 1) for t in times],
        "peak_memory_mb": round(peak_memory_mb(device)),
        "memory_after_build_mb": round(weights_mb),
        "dtype": str(dtype).removeprefix("torch."),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_arguments(parser)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (0 is fine for calls of seconds)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results/forward.json"))
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args)))
        return

    space = load_space(args)
    v = space.video
    shape = {
        "batch": 1,
        "channels": v.latent_channels,
        "frames": v.frames,
        "latent_height": v.latent_height,
        "latent_width": v.latent_width,
        "pixels": f"{v.height}x{v.width}",
    }
    rows = {}
    for name in args.models:
        print(f"measuring {name} at {shape} ...", flush=True)
        rows[name] = run_worker(
            Path(__file__),
            ["--worker", name, "--repeats", str(args.repeats), "--warmup", str(args.warmup), *shape_argv(args)],
        )
    results = {
        "what": "one UNet forward, batch 1",
        "shape": shape,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "machine": machine(setup(args)),
        "models": rows,
    }
    if {"reference", "animatediff"} <= set(rows):
        ref, other = rows["reference"], rows["animatediff"]
        results["ratio_latency"] = round(other["latency_ms"] / ref["latency_ms"], 2)
        results["ratio_memory"] = round(other["peak_memory_mb"] / ref["peak_memory_mb"], 2)
    write_results(args.out, results)
    print_table(
        ["model", "params", "latency ms", "peak MB"],
        [
            [n, f"{r['params'] / 1e6:.0f}M", f"{r['latency_ms']:,.0f}", f"{r['peak_memory_mb']:,}"]
            for n, r in rows.items()
        ],
    )
    if "ratio_latency" in results:
        print(
            f"animatediff / reference: latency x{results['ratio_latency']}, memory x{results['ratio_memory']} "
            f"at {v.frames} frames x {v.height}x{v.width} px"
        )


if __name__ == "__main__":
    run_main(main)
