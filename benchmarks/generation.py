"""Whole generation: our 4 steps without guidance + the light decoder vs UNetMotionModel's 25 steps
with CFG + SD's decoder.

Each pipeline is run for real, in a fresh process per model: DDIM denoising loop (ours: 4
steps, batch 1, "trailing" timesteps as few-step distilled models sample; AnimateDiff: 25
steps, classifier-free guidance = batch 2 per step), then its VAE decodes the latents one frame at
a time: ours the light decoder (`nas prune --decoder` of SD's VAE to 64/128/256/256, one layer per
block: 0.20 of its FLOPs per frame; `--decoder DIR` loads such a folder, else it is random-init at
that shape: the timing does not depend on the weights), AnimateDiff SD's. Reported: UNet-loop
time, decode time and its share of the total, total, and peak memory of the process during
generation. Our worker then also decodes the same latents with SD's VAE (built after the peak is
read), so the with-SD-decoder ratio of earlier runs is measured in the same run. Text encoding is
left out (the same CLIP for both; random embeddings).

    python benchmarks/generation.py --frames 8 --height 128 --width 128 -o benchmarks/results/generation_cpu.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import (
    LIGHT_DECODER,
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

from nas.data.schedule import SD15_SCHEDULE

# How each model is sampled: steps, guidance (None = no CFG), DDIM timestep spacing, its decoder.
RECIPES = {
    "reference": {"steps": 4, "guidance": None, "timestep_spacing": "trailing", "decoder": "light"},
    "animatediff": {"steps": 25, "guidance": 7.5, "timestep_spacing": "linspace", "decoder": "sd"},
}


def generate(model_name: str, args) -> dict:
    """Build UNet + VAE, run one generation, time its parts; runs inside the worker process."""
    device = setup(args)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    space = load_space(args)
    v = space.video
    recipe = RECIPES[model_name]
    torch.manual_seed(0)
    unet, forward = build_unet(model_name, space, device, dtype)
    vae = build_vae(device, dtype, recipe["decoder"], args.decoder)
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
        vae_s = decode_seconds(vae, latents, device, (v.height, v.width))
    peak = peak_memory_mb(device)
    row = {
        "model": model_name,
        **recipe,
        "unet_calls": recipe["steps"],
        "batch_per_call": 2 if cfg else 1,
        "unet_params": params(unet),
        "decoder_params": params(vae.decoder) + params(vae.post_quant_conv),
        "unet_s": round(unet_s, 2),
        "vae_decode_s": round(vae_s, 2),
        "total_s": round(unet_s + vae_s, 2),
        "decoder_share": round(vae_s / (unet_s + vae_s), 3),
        "peak_memory_mb": round(peak),
        "memory_after_build_mb": round(memory_after_build),
        "dtype": str(dtype).removeprefix("torch."),
    }
    if recipe["decoder"] != "sd":  # the same latents through SD's decoder, outside the peak
        del vae
        with torch.inference_mode():
            sd_s = decode_seconds(build_vae(device, dtype), latents, device, (v.height, v.width))
        row["sd_decode_s"] = round(sd_s, 2)
        row["total_with_sd_decoder_s"] = round(unet_s + sd_s, 2)
    return row


def decode_seconds(vae, latents, device, size: tuple[int, int]) -> float:
    """Seconds to decode every frame of ``latents`` (B, C, F, h, w), one frame at a time (a phone's way)."""
    sync(device)
    start = time.perf_counter()
    frames = [vae.decode(latents[:, :, f] / vae.config.scaling_factor).sample for f in range(latents.shape[2])]
    sync(device)
    assert frames[0].shape[-2:] == size
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_arguments(parser)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results/generation.json"))
    parser.add_argument("--decoder", type=Path, help="our light decoder: a `nas prune --decoder` folder")
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
        decoder = ["--decoder", str(args.decoder)] if args.decoder else []
        rows[name] = run_worker(Path(__file__), ["--worker", name, *decoder, *shape_argv(args)])
    results = {
        "what": "one whole generation (text encoding excluded), each with its decoder",
        "light_decoder": str(args.decoder) if args.decoder else {"random_init": LIGHT_DECODER},
        "shape": shape,
        "machine": machine(setup(args)),
        "models": rows,
    }
    if {"reference", "animatediff"} <= set(rows):
        ref, other = rows["reference"], rows["animatediff"]
        results["ratio_unet"] = round(other["unet_s"] / ref["unet_s"], 1)
        results["ratio_total"] = round(other["total_s"] / ref["total_s"], 1)
        results["ratio_total_both_sd_decoder"] = round(other["total_s"] / ref["total_with_sd_decoder_s"], 1)
        results["ratio_memory"] = round(other["peak_memory_mb"] / ref["peak_memory_mb"], 2)
    write_results(args.out, results)
    print_table(
        ["model", "steps", "decoder", "UNet s", "decode s", "decoder share", "total s", "peak MB"],
        [
            [
                n,
                f"{r['steps']}{' +CFG' if r['guidance'] else ''}",
                r["decoder"],
                r["unet_s"],
                r["vae_decode_s"],
                f"{r['decoder_share']:.0%}",
                r["total_s"],
                f"{r['peak_memory_mb']:,}",
            ]
            for n, r in rows.items()
        ],
    )
    if "ratio_unet" in results:
        print(
            f"animatediff / reference: UNet x{results['ratio_unet']}, with decode x{results['ratio_total']} "
            f"(x{results['ratio_total_both_sd_decoder']} if ours decoded with SD's VAE too), "
            f"memory x{results['ratio_memory']} at {v.frames} frames x {v.height}x{v.width} px"
        )


if __name__ == "__main__":
    run_main(main)
