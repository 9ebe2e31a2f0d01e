"""One training step of a full-size architecture: seconds per step and peak memory, as JSON.

    python benchmarks/train_step.py [--space search_spaces/snapgen_v.yaml] [--arch reference] [-o out.json]

A step is what ``nas train distill`` does per batch: noising, forward, denoising loss, backward
(gradient checkpointing on), AdamW step, in bf16 autocast where the device supports it. On a GPU
the clip is the space's full video shape; on a CPU it defaults to a reduced clip (4 frames at
latent 16x32) so that it finishes in minutes -- the JSON records which shape was measured.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.data.schedule import noise_scheduler  # noqa: E402
from nas.model import VideoUNet  # noqa: E402
from nas.rss import peak_rss_mb  # noqa: E402
from nas.space import SearchSpace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="search_spaces/snapgen_v.yaml")
    parser.add_argument("--arch", default="reference")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--frames", type=int, help="latent frames (default: the space's on GPU, 4 on CPU)")
    parser.add_argument(
        "--latent-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="latent height and width (default: the space's on GPU, 16 32 on CPU)",
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--no-checkpointing", action="store_true")
    parser.add_argument("-o", "--out", type=Path)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    space = SearchSpace.load(args.space)
    video = space.video
    full = device.type == "cuda"
    frames = args.frames or (video.frames if full else 4)
    height, width = args.latent_size or ((video.latent_height, video.latent_width) if full else (16, 32))
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()

    torch.manual_seed(0)
    model = VideoUNet.from_space(space, space.architecture(args.arch)).to(device)
    if not args.no_checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    scheduler = noise_scheduler()
    clean = torch.randn(args.batch, video.latent_channels, frames, height, width, device=device)
    text = torch.randn(args.batch, space.text_tokens, space.cross_attention_dim, device=device)

    def step() -> float:
        noise = torch.randn_like(clean)
        t = torch.randint(0, 1000, (args.batch,), device=device)
        noisy = scheduler.add_noise(clean, noise, t)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.mse_loss(model(noisy, t, text).sample.float(), noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    step()  # warm-up: allocator, optimizer state
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mb()
    result = {
        "space": space.name,
        "arch": args.arch,
        "params": sum(p.numel() for p in model.parameters()),
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"cpu ({platform.processor() or 'x86_64'}, {torch.get_num_threads()} threads)",
        "precision": "bf16 autocast" if bf16 else "fp32",
        "gradient_checkpointing": not args.no_checkpointing,
        "clip": {
            "batch": args.batch,
            "frames": frames,
            "latent_height": height,
            "latent_width": width,
            "full_video_shape": (frames, height, width) == (video.frames, video.latent_height, video.latent_width),
        },
        "s_per_step": min(times),
        "s_per_step_all": times,
        "peak_memory_mb": round(peak_mb),
        "peak_memory_kind": "cuda max allocated" if device.type == "cuda" else "peak RSS",
        "torch": torch.__version__,
    }
    text_out = json.dumps(result, indent=1)
    print(text_out)
    if args.out:
        args.out.write_text(text_out)


if __name__ == "__main__":
    main()
