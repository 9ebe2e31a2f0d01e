"""An SD1.5-shaped tiny teacher for the pruning tests: two layers per block, attention at every level and
a mid block, wider than the test space's backbone, trained briefly on synthetic latent frames so it is
not random; those frames as an encoded image folder (`nas data encode` layout, frames = 1); and the
space (two levels, so that the teacher trains in seconds even on a busy 2-core machine)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

TEACHER = {
    "block_out_channels": [32, 64],
    "layers_per_block": 2,
    "down_block_types": ["CrossAttnDownBlock2D"] * 2,
    "up_block_types": ["CrossAttnUpBlock2D"] * 2,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "cross_attention_dim": 32,
    "attention_head_dim": 2,
    "norm_num_groups": 4,
    "sample_size": 8,
}
# narrower (3/4 of the widths), shallower (one layer per block), no attention at level 0
BACKBONE = {
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [24, 48],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "cross_attention_dim": 32,
    "attention_head_dim": 2,
    "norm_num_groups": 4,
}
LATENT = 8  # latent side (64 px spaces)
CLASSES = 8  # captions
SAMPLES = 48  # frames; the last HOLDOUT are held out
HOLDOUT = 8


def synthetic_frames(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(latents (N, 4, 8, 8), text (N, 77, 32)): per caption a blob of its own colour and place, jittered."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.randn(CLASSES, 4, generator=g)
    centres = torch.rand(CLASSES, 2, generator=g) * (LATENT - 1)
    captions = torch.randn(CLASSES, 77, 32, generator=g)
    ys, xs = torch.meshgrid(torch.arange(LATENT).float(), torch.arange(LATENT).float(), indexing="ij")
    latents, text = [], []
    for i in range(SAMPLES):
        c = i % CLASSES
        centre = centres[c] + torch.randn(2, generator=g) * 0.7
        blob = torch.exp(-((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2) / 4.0)
        latents.append(colours[c][:, None, None] * blob * 1.5 + 0.1 * torch.randn(4, LATENT, LATENT, generator=g))
        text.append(captions[c])
    return torch.stack(latents), torch.stack(text)


def write_frames(folder: Path) -> Path:
    """The synthetic frames as a LatentDataset folder of one-frame image samples."""
    latents, text = synthetic_frames()
    return write_latent_frames(folder, latents, text)


def write_latent_frames(folder: Path, latents: torch.Tensor, text: torch.Tensor, **manifest) -> Path:
    """Latents (N, C, h, w) and text (N, T, D) as a `nas data encode` folder of one-frame image samples
    (8x the latent size in pixels); ``manifest`` adds or overrides keys (e.g. height, scaling_factor)."""
    folder.mkdir(parents=True)
    count, channels, height, width = latents.shape
    save_file(
        {
            "latents": latents[:, :, None].half().contiguous(),
            "text": text.half().contiguous(),
            "text_pooled": text[:, 0].half().contiguous(),
        },
        str(folder / "images-00000.safetensors"),
    )
    manifest = {
        "space": "tiny",
        "frames": 1,
        "height": 8 * height,
        "width": 8 * width,
        "latent_channels": channels,
        "latent_height": height,
        "latent_width": width,
        "text_tokens": text.shape[1],
        "text_dim": text.shape[2],
        "shards": [{"file": "images-00000.safetensors", "kind": "image", "count": count, "frames": 1}],
        "samples": [
            {
                "kind": "image",
                "index": i,
                "shard": "images-00000.safetensors",
                "source": f"{i}.png",
                "caption": f"class {i % CLASSES}",
            }
            for i in range(count)
        ],
        "skipped": [],
        **manifest,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def alphas() -> torch.Tensor:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    return torch.cumprod(1 - betas, 0)


def train_teacher(folder: Path, steps: int = 120, seed: int = 0) -> Path:
    """The teacher trained with the denoising loss on the training frames; saved as a diffusers unet/."""
    torch.manual_seed(seed)
    model = UNet2DConditionModel(**TEACHER)
    latents, text = synthetic_frames()
    latents, text = latents[:-HOLDOUT], text[:-HOLDOUT]
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, fused=True)
    g = torch.Generator().manual_seed(seed)
    a = alphas()
    for _ in range(steps):
        pick = torch.randint(len(latents), (4,), generator=g)
        noise = torch.randn(4, 4, LATENT, LATENT, generator=g)
        t = torch.randint(1000, (4,), generator=g)
        at = a[t].view(-1, 1, 1, 1)
        loss = F.mse_loss(model(at.sqrt() * latents[pick] + (1 - at).sqrt() * noise, t, text[pick]).sample, noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@torch.no_grad()
def mse_to_teacher(teacher: UNet2DConditionModel, student: UNet2DConditionModel) -> float:
    """Output MSE on the held-out frames, noised at fixed timesteps with fixed noise."""
    latents, text = synthetic_frames()
    latents, text = latents[-HOLDOUT:], text[-HOLDOUT:]
    g = torch.Generator().manual_seed(1)
    total = 0.0
    for t in (100, 300, 500, 700, 900):
        at = alphas()[t]
        noisy = at.sqrt() * latents + (1 - at).sqrt() * torch.randn(latents.shape, generator=g)
        steps = torch.full((len(latents),), t)
        total += F.mse_loss(student(noisy, steps, text).sample, teacher(noisy, steps, text).sample).item()
    return total / 5


def one_line_error(cli, *args) -> str:
    """Run ``nas ARGS`` (the ``cli`` fixture); it must end with one line ``nas: error: ...`` and exit 2."""
    code, _, err = cli(*args)
    assert code == 2 and err.count("\n") == 1 and err.startswith("nas: error: "), (code, err)
    return err


def write_image_space(folder: Path, **backbone) -> Path:
    """A two-level space at 64 px (latent 8x8), one frame, whose backbone is BACKBONE (+ overrides)."""
    slots = [
        {"name": n, "path": p, "level": lv}
        for n, p, lv in (
            ("down0", "down", 0),
            ("down1", "down", 1),
            ("mid", "mid", None),
            ("up1", "up", 1),
            ("up0", "up", 0),
        )
    ]
    for slot in slots:
        if slot["level"] is None:
            del slot["level"]
    data = {
        "name": "prune_test",
        "backbone": {**BACKBONE, **backbone},
        "prune_from": {"model": "the tiny SD1.5-shaped test teacher"},
        "video": {"frames": 1, "height": 64, "width": 64, "latent_scale": 8},
        "text_tokens": 77,
        "choices": [{"op": "none"}, {"op": "conv1d", "kernel": 3}],
        "counts": [1],
        "slots": slots,
        "architectures": {"reference": {s["name"]: {"op": "none"} for s in slots}},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---------------------------------------------------------------- a tiny VAE for the decoder's pruning
FRAME = 32  # pixels; latents 8x8 (4x down)
VAE = {
    "block_out_channels": [8, 16, 16],
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "layers_per_block": 2,
    "norm_num_groups": 4,
    "latent_channels": 4,
    "sample_size": FRAME,
}
# half the widths, one layer per block (two per up block)
DECODER = {"block_out_channels": [4, 8, 8], "layers_per_block": 1}
VAE_FRAMES = 96  # synthetic stills; the last VAE_HOLDOUT are never trained on, by the VAE or a decoder
VAE_HOLDOUT = 16


def vae_frames() -> torch.Tensor:
    """Synthetic stills (coloured shapes, as `nas data synth` draws) in [-1, 1], (N, 3, FRAME, FRAME)."""
    from nas.data.synth import synth_frames

    return torch.from_numpy(synth_frames(VAE_FRAMES, FRAME, FRAME)).permute(0, 3, 1, 2).float() / 127.5 - 1


def train_vae(folder: Path, steps: int = 150, seed: int = 0) -> Path:
    """The tiny VAE trained to reconstruct the training stills (posterior mean, MSE), its scaling_factor
    set to bring their latents to unit std, saved as a diffusers AutoencoderKL folder."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(**VAE)
    frames = vae_frames()[:-VAE_HOLDOUT]
    optimizer = torch.optim.AdamW(vae.parameters(), lr=3e-3, fused=True)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = frames[torch.randint(len(frames), (4,), generator=g)]
        loss = F.mse_loss(vae.decode(vae.encode(batch).latent_dist.mode()).sample, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        vae.register_to_config(scaling_factor=1.0 / vae.encode(frames).latent_dist.mean.std().item())
    vae.save_pretrained(folder, safe_serialization=True)
    return folder


@torch.no_grad()
def write_vae_latents(folder: Path, vae_dir: Path) -> Path:
    """Every still encoded by the VAE at ``vae_dir`` (posterior mean x scaling_factor, as `nas data encode`
    does) as an image folder, the held-out stills last."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(vae_dir, use_safetensors=True, local_files_only=True)
    scaling = vae.config.scaling_factor
    latents = vae.encode(vae_frames()).latent_dist.mean * scaling
    text = torch.zeros(len(latents), 1, 4)  # captions play no part in decoding
    return write_latent_frames(
        folder, latents, text, height=FRAME, width=FRAME, scaling_factor=scaling, shift_factor=0.0
    )
