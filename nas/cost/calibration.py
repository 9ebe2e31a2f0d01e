"""Calibrating the roofline estimate on published on-device figures, and how well it holds out.

Every point is a figure someone published for a public model on an Apple chip, with its
settings and source: one UNet iteration of SD 2.1-base (512x512, 6-bit weights) and of SDXL's
iOS variant (768x768, 4.04-bit) from apple/ml-stable-diffusion's current benchmark tables, and
whole generations of SD 1.4 (50 steps, text encoder and image decoder included, fp16 weights)
from its first one. Each point's work is counted on the meta device as the estimate counts a
table key (:func:`nas.cost.roofline.workload_work`, attention as split_einsum) and priced on
its chip's published figures (:data:`nas.cost.roofline.CHIPS`).

The fit: the Neural Engine's efficiency (one share of the published rate, for every chip), its
cost per op, and one factor for the 2022 software stack of the first table (iOS 16.2 betas, the
first Core ML release of Stable Diffusion; Apple's later tables replaced it), by least squares
on log(predicted / published), so that a point 20% slow weighs as one 20% fast. Three
parameters for 17 points. Leave-one-out: each point is predicted by the fit on the others; the
mean absolute error of those predictions is the figure the sidecar reports.

What the points cannot say: none is a video model, and none runs on the A18 Pro except
SnapGen-V's own 4.12 s for a whole clip, whose model (ours is a reconstruction) and image
decoder are not public; it is reported as a check, outside the fit and the error.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nas.cost.roofline import CHIPS, KeyWork, roofline_ms, workload_work
from nas.errors import NasError
from nas.space.generation import SD15_TEXT_ENCODER, SD15_VAE

APPLE_README = "apple/ml-stable-diffusion README.md"
TABLE_2023 = (
    f"{APPLE_README}, Performance Benchmarks (current): stabilityai/stable-diffusion-2-1-base, 512x512, "
    "CPU_AND_NE, SPLIT_EINSUM_V2, 6-bit palettized weights, 20 steps with CFG (UNet batch 2); iOS/iPadOS 17.0 "
    "betas, August 2023; Diffusion Speed (iter/s), median of 5 runs"
)
TABLE_SDXL = (
    f"{APPLE_README}, Performance Benchmarks (current): stabilityai/stable-diffusion-xl-base-1.0-ios, 768x768, "
    "CPU_AND_NE, SPLIT_EINSUM, UNet mixed-bit palettized to 4.04 bits, 20 steps with CFG (UNet batch 2); "
    "iOS/iPadOS 17.0.2, September 2023; Diffusion Speed (iter/s), median of 5 runs"
)
TABLE_2022 = (
    f"{APPLE_README} at commit 940dba0 (Performance Benchmark of the first release, since replaced): "
    "CompVis/stable-diffusion-v1-4, 512x512, 50 steps with CFG (UNet batch 2), 77 tokens, fp16 weights and "
    "activations, CPU_AND_NE, SPLIT_EINSUM; iOS/iPadOS 16.2 and macOS 13.1 betas, November 2022; end-to-end "
    "latency in whole seconds, median of 3 runs"
)

# stabilityai/stable-diffusion-2-1-base unet/config.json (as apple/ml-stable-diffusion converts it)
SD21_BASE_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "norm_num_groups": 32,
}
# CompVis/stable-diffusion-v1-4 unet/config.json (SD 1.5's is the same network)
SD14_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "attention_head_dim": 8,
    "cross_attention_dim": 768,
    "norm_num_groups": 32,
}
# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
SDXL_BASE_UNET = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "norm_num_groups": 32,
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}


@dataclass(frozen=True)
class UNetCall:
    """One UNet call of a published pipeline: its config, batch, latent side, weight bits."""

    config: dict
    batch: int
    latent: int
    bits: float
    text_embeds: int = 0  # SDXL's pooled text width (its added conditioning); 0: none


WORKLOADS: dict[str, Any] = {
    "sd21_unet": UNetCall(SD21_BASE_UNET, 2, 64, 6),
    "sdxl_ios_unet": UNetCall(SDXL_BASE_UNET, 2, 96, 4.04, text_embeds=1280),
    "sd14_unet": UNetCall(SD14_UNET, 2, 64, 16),
    "sd15_vae_decoder_512": ("decoder", 64),
    "clip_l_text_encoder": ("text_encoder", 77),
}


@dataclass(frozen=True)
class PublishedPoint:
    """A published on-device figure: ``ms`` for ``calls`` ((workload, count), ...) on ``chip``; ``stack`` names the
    software it ran on (``2022``: the first release, its own factor in the fit)."""

    name: str
    chip: str
    ms: float
    calls: tuple[tuple[str, int], ...]
    stack: str
    what: str
    source: str


def _sd21(name: str, device: str, chip: str, its: float) -> PublishedPoint:
    return PublishedPoint(
        name,
        chip,
        1000 / its,
        (("sd21_unet", 1),),
        "2023",
        f"SD 2.1-base UNet, one iteration ({its} it/s), {device}",
        TABLE_2023,
    )


def _sdxl(name: str, device: str, chip: str, its: float) -> PublishedPoint:
    return PublishedPoint(
        name,
        chip,
        1000 / its,
        (("sdxl_ios_unet", 1),),
        "2023",
        f"SDXL-iOS UNet, one iteration ({its} it/s), {device}",
        TABLE_SDXL,
    )


def _sd14(name: str, device: str, chip: str, seconds: float) -> PublishedPoint:
    return PublishedPoint(
        name,
        chip,
        1000 * seconds,
        (("clip_l_text_encoder", 2), ("sd14_unet", 50), ("sd15_vae_decoder_512", 1)),
        "2022",
        f"SD 1.4 whole generation ({seconds:g} s: text encoder for prompt and negative prompt, 50 UNet "
        f"iterations, image decoder), {device}",
        TABLE_2022,
    )


POINTS = (
    _sd21("sd21-iphone12mini", "iPhone 12 Mini", "a14-ne", 1.44),
    _sd21("sd21-iphone12promax", "iPhone 12 Pro Max", "a14-ne", 1.45),
    _sd21("sd21-iphone13", "iPhone 13", "a15-ne", 2.53),
    _sd21("sd21-iphone13promax", "iPhone 13 Pro Max", "a15-ne", 2.55),
    _sd21("sd21-iphone14", "iPhone 14 (A15)", "a15-ne", 2.57),
    _sd21("sd21-iphone14promax", "iPhone 14 Pro Max", "a16-ne", 2.69),
    _sd21("sd21-ipadpro-m1", "iPad Pro (M1)", "m1-ne", 2.19),
    _sd21("sd21-ipadpro-m2", "iPad Pro (M2)", "m2-ne", 3.07),
    _sdxl("sdxl-iphone12pro", "iPhone 12 Pro", "a14-ne", 0.50),
    _sdxl("sdxl-iphone13promax", "iPhone 13 Pro Max", "a15-ne", 0.68),
    _sdxl("sdxl-iphone14promax", "iPhone 14 Pro Max", "a16-ne", 0.83),
    _sdxl("sdxl-iphone15promax", "iPhone 15 Pro Max", "a17-pro-ne", 0.85),
    _sdxl("sdxl-ipadpro-m1", "iPad Pro (M1)", "m1-ne", 0.69),
    _sdxl("sdxl-ipadpro-m2", "iPad Pro (M2)", "m2-ne", 0.98),
    _sd14("sd14-macbookpro-m2", "MacBook Pro (M2)", "m2-ne", 23),
    _sd14("sd14-macbookpro-m1", "MacBook Pro (M1)", "m1-ne", 35),
    _sd14("sd14-ipadpro-m1", "iPad Pro (5th gen, M1)", "m1-ne", 38),
)
SNAPGEN_V_MS = 4120.0  # SnapGen-V (arXiv 2412.10494), 0.6B UNet, 4 steps, a 5 s clip on an iPhone 16 Pro Max


@dataclass(frozen=True)
class Fit:
    """The fitted parameters: Neural Engine efficiency, its cost per op, the 2022 stack's factor."""

    efficiency: float
    dispatch_ms: float
    stack_2022: float = 1.0

    def as_dict(self) -> dict[str, float]:
        return {
            "efficiency": round(self.efficiency, 4),
            "dispatch_ms": round(self.dispatch_ms, 4),
            "stack_2022": round(self.stack_2022, 4),
        }


# names, starting values and bounds of the fitted parameters (the stack factor only where 2022 points are fitted)
PARAMETERS = (("efficiency", 0.3, 1e-3, 1.0), ("dispatch_ms", 0.05, 0.0, 1.0), ("stack_2022", 1.0, 0.25, 4.0))


@functools.cache
def workload(name: str, fallback_unit: str = "cpu") -> KeyWork:
    """The work of one published workload, counted on the meta device (fp16), weights at their published width."""
    spec = WORKLOADS[name]
    with torch.device("meta"):
        if isinstance(spec, UNetCall):
            module, inputs, params = _unet(spec)
            return workload_work(module, inputs, fallback_unit, params * spec.bits / 8, spec.bits / 16)
        from nas.cost.workload import fixed_part_module
        from nas.space.generation import FixedPart

        kind, size = spec
        config = SD15_VAE if kind == "decoder" else SD15_TEXT_ENCODER
        module = fixed_part_module(FixedPart(kind, "sd15", dict(config))).to(torch.float16)
        inputs = (
            (torch.empty(1, 4, size, size, dtype=torch.float16),)
            if kind == "decoder"
            else (torch.zeros(1, size, dtype=torch.long),)
        )
        return workload_work(module, inputs, fallback_unit, sum(p.numel() for p in module.parameters()) * 2)


class _UNet(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, text, *added):
        extra = {"added_cond_kwargs": {"text_embeds": added[0], "time_ids": added[1]}} if added else {}
        return self.unet(sample, timestep, text, return_dict=False, **extra)[0]


def _unet(spec: UNetCall):
    from diffusers import UNet2DConditionModel

    from nas.ops.ane import ChannelsFirstAttnProcessor

    unet = UNet2DConditionModel(**spec.config).to(torch.float16)
    unet.set_attn_processor(ChannelsFirstAttnProcessor("split_einsum"))
    b, half = spec.batch, torch.float16
    inputs = [
        torch.empty(b, 4, spec.latent, spec.latent, dtype=half),
        torch.full((b,), 500.0),
        torch.empty(b, 77, spec.config["cross_attention_dim"], dtype=half),
    ]
    if spec.text_embeds:
        inputs += [torch.empty(b, spec.text_embeds, dtype=half), torch.empty(b, 6, dtype=half)]
    return _UNet(unet), tuple(inputs), sum(p.numel() for p in unet.parameters())


def predict_point(point: PublishedPoint, fit: Fit, work: Callable[[str], KeyWork] = workload) -> float:
    """The roofline's ms for ``point`` with ``fit``'s parameters."""
    chip = CHIPS[point.chip]
    total = sum(count * roofline_ms(work(name), chip, fit.efficiency, fit.dispatch_ms) for name, count in point.calls)
    return total * (fit.stack_2022 if point.stack == "2022" else 1.0)


def fit_points(points: Sequence[PublishedPoint], work: Callable[[str], KeyWork] = workload) -> Fit:
    """Least squares on log(predicted / published) over ``points``; never more parameters than points."""
    from scipy.optimize import least_squares

    names = [p for p in PARAMETERS if p[0] != "stack_2022" or any(q.stack == "2022" for q in points)]
    if len(names) > len(points):
        raise NasError(f"calibration: {len(points)} points cannot fit {len(names)} parameters")
    published = np.log([p.ms for p in points])

    def residuals(x: np.ndarray) -> np.ndarray:
        fit = Fit(**dict(zip((n for n, *_ in names), x)))
        return np.log([predict_point(p, fit, work) for p in points]) - published

    best = None
    for start in (0.1, 0.3, 0.9):  # the efficiency axis has local minima where ops turn memory-bound
        x0 = [start if name == "efficiency" else value for name, value, *_ in names]
        result = least_squares(residuals, x0, bounds=([lo for *_, lo, _ in names], [hi for *_, hi in names]))
        if best is None or result.cost < best.cost:
            best = result
    return Fit(**{name: float(value) for (name, *_), value in zip(names, best.x)})


def calibrate_published(
    points: Sequence[PublishedPoint] = POINTS, work: Callable[[str], KeyWork] = workload
) -> tuple[Fit, dict[str, Any]]:
    """The fit on every point, and the sidecar's ``calibration`` block: each point's published, fitted and
    leave-one-out ms with its error, and the mean absolute leave-one-out error."""
    fit = fit_points(points, work)
    rows, errors = [], []
    for i, point in enumerate(points):
        held_out = fit_points([p for j, p in enumerate(points) if j != i], work)
        loo = float(predict_point(point, held_out, work))
        error = 100 * (loo - point.ms) / point.ms
        errors.append(abs(error))
        rows.append(
            {
                "point": point.name,
                "chip": point.chip,
                "published_ms": round(point.ms, 1),
                "fitted_ms": round(float(predict_point(point, fit, work)), 1),
                "held_out_ms": round(loo, 1),
                "held_out_error_pct": round(error, 1),
                "what": point.what,
                "source": point.source,
            }
        )
    block = {
        "method": (
            "least squares on log(predicted / published) over every point; leave-one-out: each point predicted by "
            "the fit on the others"
        ),
        "fitted": fit.as_dict(),
        "parameters": len([p for p in PARAMETERS if p[0] != "stack_2022" or any(q.stack == "2022" for q in points)]),
        "points": rows,
        "leave_one_out_mean_abs_error_pct": round(float(np.mean(errors)), 1),
        "leave_one_out_max_abs_error_pct": round(float(np.max(errors)), 1),
        "note": (
            "apple/ml-stable-diffusion's 2023 SD 2.1 figures used SPLIT_EINSUM_V2 (query chunks), modelled as "
            "SPLIT_EINSUM; the 2022 stack factor is fitted on its three whole-generation points only and not applied "
            "to the table"
        ),
    }
    return fit, block


def table_fit(meta: dict[str, Any], chip_name: str = "a18-pro-ne") -> Fit:
    """The roofline parameters an estimated table's sidecar was made with (its ``calibration`` block): the fit on
    published points, or an efficiency fitted to one figure (the chip's own cost per op), or none (efficiency 1)."""
    calibration = meta.get("calibration") or {}
    if "fitted" in calibration:
        return Fit(**calibration["fitted"])
    return Fit(float(calibration.get("efficiency", 1.0)), CHIPS[chip_name].dispatch_ms)


def estimated_ms(space, key, meta: dict[str, Any]) -> float:
    """What an estimated table (its sidecar ``meta``) would price ``key`` of ``space`` at, without the row: e.g. a
    pruned decoder's ``fixed_part_key`` on the iPhone table, counted on the meta device with the table's fit."""
    from nas.cost.roofline import key_work

    chip = CHIPS[meta.get("chip", "a18-pro-ne")]
    fit = table_fit(meta, chip.name)
    return roofline_ms(key_work(space, key, chip), chip, fit.efficiency, fit.dispatch_ms)


def calibrate_to(total: Callable[[float], float], target_ms: float) -> float:
    """Efficiency in (0, 1] whose predicted total matches ``target_ms`` (bisection; total falls as it grows)."""
    low, high = 1e-3, 1.0
    if total(high) > target_ms:
        raise NasError(f"the roofline cannot reach {target_ms} ms even at full efficiency (memory-bound)")
    for _ in range(60):
        middle = math.sqrt(low * high)
        if total(middle) > target_ms:
            low = middle
        else:
            high = middle
    return high
