"""Whole generation: our 4 steps without guidance vs UNetMotionModel's 25 steps with CFG.

Each pipeline is run for real, in a fresh process per model: DDIM denoising loop (ours: 4
steps, batch 1, "trailing" timesteps as few-step distilled models sample; AnimateDiff: 25
steps, classifier-free guidance = batch 2 per step), then the SD VAE decodes the latents one
frame at a time. Reported: UNet-loop time, VAE time, total, and peak memory of the process
during generation. Text encoding is left out (the same CLIP for both; random embeddings).

    python benchmarks/generation.py --frames 8 --height 128 --width 128 -o benchmarks/results/generation_cpu.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import (
    MODELS,
    add_shape_arguments,
    build_unet,
    build_vae,
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
from diffusers import DDIMScheduler

# How each model is sampled: steps, guidance (None = no CFG), DDIM timestep spacing.
RECIPES = {
    "reference": {"steps": 4, "guidance": None, "timestep_spacing": "trailing"},
    "animatediff": {"steps": 25, "guidance": 7.5, "timestep_spacing": "linspace"},
}
SD15_SCHEDULE = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False}


def generate(model_name: str, args) -> dict:
    """Build UNet + VAE, run one generation, time its parts; runs inside the worker process."""
    device = setup(args)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    space = load_space(args)
    v = space.video
    recipe = RECIPES[model_name]
    torch.manual_seed(0)
    unet, forward = build_unet(model_name, space, device, dtype)
    vae = build_vae(device, dtype)
    scheduler = DDIMScheduler(**SD15_SCHEDULE, timestep_spacing=recipe["timestep_spacing"])
    cfg = recipe["guidance"] is not None
    text = torch.randn(2 if cfg else 1, space.text_tokens, space.cross_attention_dim, device=device, dtype=dtype)
    latents = torch.randn(1, v.latent_channels, v.frames, v.latent_height, v.latent_width, device=device, dtype=dtype)
    memory_after_build = current_memory_mb(device)
    reset_peak_memory(device)

    with torch.inference_mode():
        sync(device)
        start = time.perf_counter()
        scheduler.set_timesteps(recipe["steps"], device=device)
        latents = latents * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            model_input = scheduler.scale_model_input(torch.cat([latents] * 2) if cfg else latents, t)
            noise = forward(model_input, t.expand(model_input.shape[0]), text)
            if cfg:
                uncond, cond = noise.chunk(2)
                noise = uncond + recipe["guidance"] * (cond - uncond)
            latents = scheduler.step(noise, t, latents).prev_sample
        sync(device)
        unet_s = time.perf_counter() - start
        start = time.perf_counter()
        frames = [vae.decode(latents[:, :, f] / vae.config.scaling_factor).sample for f in range(v.frames)]
        sync(device)
        vae_s = time.perf_counter() - start
    assert frames[0].shape[-2:] == (v.height, v.width)
    return {
        "model": model_name,
        **recipe,
        "unet_calls": recipe["steps"],
        "batch_per_call": 2 if cfg else 1,
        "unet_params": params(unet),
        "vae_params": params(vae),
        "unet_s": round(unet_s, 2),
        "vae_decode_s": round(vae_s, 2),
        "total_s": round(unet_s + vae_s, 2),
        "peak_memory_mb": round(peak_memory_mb(device)),
        "memory_after_build_mb": round(memory_after_build),
        "dtype": str(dtype).removeprefix("torch."),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_arguments(parser)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results/generation.json"))
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(generate(args.worker, args)))
        return

    space = load_space(args)
    v = space.video
    shape = {
        "frames": v.frames,
        "latent_height": v.latent_height,
        "latent_width": v.latent_width,
        "pixels": f"{v.height}x{v.width}",
    }
    rows = {}
    for name in args.models:
        print(f"generating with {name} ({RECIPES[name]}) at {shape} ...", flush=True)
        rows[name] = run_worker(Path(__file__), ["--worker", name, *shape_argv(args)])
    results = {
        "what": "one whole generation (text encoding excluded)",
        "shape": shape,
        "machine": machine(setup(args)),
        "models": rows,
    }
    if {"reference", "animatediff"} <= set(rows):
        ref, other = rows["reference"], rows["animatediff"]
        results["ratio_unet"] = round(other["unet_s"] / ref["unet_s"], 1)
        results["ratio_total"] = round(other["total_s"] / ref["total_s"], 1)
        results["ratio_memory"] = round(other["peak_memory_mb"] / ref["peak_memory_mb"], 2)
    write_results(args.out, results)
    print_table(
        ["model", "steps", "UNet s", "VAE s", "total s", "peak MB"],
        [
            [
                n,
                f"{r['steps']}{' +CFG' if r['guidance'] else ''}",
                r["unet_s"],
                r["vae_decode_s"],
                r["total_s"],
                f"{r['peak_memory_mb']:,}",
            ]
            for n, r in rows.items()
        ],
    )
    if "ratio_unet" in results:
        print(
            f"animatediff / reference: UNet x{results['ratio_unet']}, with VAE decode x{results['ratio_total']}, "
            f"memory x{results['ratio_memory']} at {v.frames} frames x {v.height}x{v.width} px"
        )


if __name__ == "__main__":
    run_main(main)
