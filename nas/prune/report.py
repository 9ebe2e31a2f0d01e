"""How much of the source UNet's function a pruned UNet keeps, against a random backbone of its shape."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

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
