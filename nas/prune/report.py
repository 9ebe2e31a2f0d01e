"""How much of the source's function a pruned model keeps, against a random model of its shape.

A UNet's by output MSE and cosine; a VAE decoder's by PSNR and SSIM of its frames to the source
decoder's (both clamped to [-1, 1] and read on [0, 1], as a pipeline shows them), which is also
how the decoder's recovery (``nas train decoder``) is evaluated.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel

TIMESTEPS = (250, 750)


@torch.no_grad()
def compare_outputs(
    source, pruned, target_config: dict[str, Any], size: tuple[int, int], tokens: int, seed: int
) -> dict[str, float]:
    """Output MSE and cosine of ``pruned`` and of a random-init model of the same config vs ``source``
    on fixed random latents and text (one sample per timestep in TIMESTEPS)."""
    generator = torch.Generator().manual_seed(seed)
    batch = len(TIMESTEPS)
    latents = torch.randn(batch, source.config.in_channels, *size, generator=generator)
    text = torch.randn(batch, tokens, source.config.cross_attention_dim, generator=generator)
    t = torch.tensor(TIMESTEPS)
    reference = source(latents, t, text).sample
    torch.manual_seed(seed + 1)  # not the seed a user's own random source may have been made with
    random = UNet2DConditionModel.from_config(target_config).eval()
    out = {}
    for name, model in (("pruned", pruned.eval()), ("random", random)):
        pred = model(latents, t, text).sample
        out[f"mse_{name}"] = F.mse_loss(pred, reference).item()
        out[f"cosine_{name}"] = F.cosine_similarity(pred.flatten(1), reference.flatten(1)).mean().item()
    out["source_output_power"] = reference.pow(2).mean().item()
    out["latent_size"] = list(size)
    return out


def psnr(frames: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of ``frames`` to ``reference`` ((N, C, H, W) in [-1, 1]), over all
    pixels, at most 100 dB."""
    mse = F.mse_loss(_unit(frames), _unit(reference)).item()
    return 10 * math.log10(1 / max(mse, 1e-10))  # 100 dB for identical frames (JSON has no infinity)


def ssim(frames: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
    data range 1, per channel, valid positions only) of ``frames`` to ``reference`` ((N, C, H, W) in [-1, 1])."""
    x, y = _unit(frames).double(), _unit(reference).double()
    size = min(11, x.shape[-2], x.shape[-1])
    g = torch.exp(-((torch.arange(size, dtype=torch.double) - (size - 1) / 2) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(x.shape[1], 1, size, size)

    def blur(t):
        return F.conv2d(t, window, groups=x.shape[1])

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean().item()


def _unit(frames: torch.Tensor) -> torch.Tensor:
    return (frames.float().clamp(-1, 1) + 1) / 2


def decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """Frames (N, C, H, W) of scaled latents (N, c, h, w), as a pipeline decodes: unscale, then decode."""
    shift = vae.config.shift_factor or 0.0
    return vae.decode(latents / vae.config.scaling_factor + shift).sample


@torch.no_grad()
def compare_decoders(
    source, pruned, target_config: dict[str, Any], latent_size: tuple[int, int], frames: int, seed: int
) -> dict[str, float]:
    """PSNR and SSIM of the frames of ``pruned`` and of a random-init AutoencoderKL of ``target_config``
    to the source's, decoding ``frames`` random latents (standard normal, as a sampler ends near)."""
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(frames, source.config.latent_channels, *latent_size, generator=generator)
    reference = decode(source, latents)
    torch.manual_seed(seed + 1)  # not the seed a user's own random source may have been made with
    random = AutoencoderKL.from_config(target_config).eval()
    out: dict[str, Any] = {}
    for name, model in (("pruned", pruned.eval()), ("random", random)):
        made = decode(model, latents)
        out[f"psnr_{name}"] = round(psnr(made, reference), 3)
        out[f"ssim_{name}"] = round(ssim(made, reference), 4)
    out["frames"] = frames
    out["latent_size"] = list(latent_size)
    return out


def decoder_summary_line(report: dict[str, Any]) -> str:
    widths = "/".join(str(level["width_after"]) for level in report["levels"])
    layers = report["levels"][0]["layers_after"]
    h, w = report["frame_size"]
    line = (
        f"decoder params {report['params_before'] / 1e6:.1f}M -> {report['params_after'] / 1e6:.1f}M, "
        f"widths {widths}, layers per block {layers} ({layers + 1} per up block), "
        f"mid attention {'kept' if report['mid_attention'][1] else 'removed'}; GFLOPs per {h}x{w} frame "
        f"{report['flops_per_frame_before'] / 1e9:,.1f} -> {report['flops_per_frame_after'] / 1e9:,.1f} "
        f"({report['flops_ratio']:.3f} of the source's)"
    )
    if "function" in report:
        f = report["function"]
        line += (
            f"; frames vs the source's: PSNR {f['psnr_pruned']:.2f} dB (random decoder {f['psnr_random']:.2f} dB), "
            f"SSIM {f['ssim_pruned']:.3f} (random {f['ssim_random']:.3f})"
        )
    return line


def summary_line(report: dict[str, Any]) -> str:
    widths = "/".join(str(level["width_after"]) for level in report["levels"])
    layers = "/".join(str(level["layers_after"]) for level in report["levels"])
    line = (
        f"params {report['params_before'] / 1e6:.1f}M -> {report['params_after'] / 1e6:.1f}M, "
        f"widths {widths}, layers per block {layers}"
    )
    if "function" in report:
        f = report["function"]
        line += (
            f"; output MSE to the source {f['mse_pruned']:.4g} (random init {f['mse_random']:.4g}), "
            f"cosine {f['cosine_pruned']:.3f} (random {f['cosine_random']:.3f})"
        )
    return line
