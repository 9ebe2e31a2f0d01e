"""Pruned spatial backbone vs SD1.5's UNet, side by side in one run: one image forward on this machine,
and the same pair priced by the estimated iPhone table's roofline.

Two shapes: 512x512 px (SD1.5's own, latent 64x64) and the space's frame size (320x512 for
snapgen_v, latent 40x64); batch 1, one timestep, fp32 on CPU. Both models run in this process
one after the other at each shape (random weights: time does not depend on them), so the ratio
is measured under the same machine load. The roofline prices the spatial key of each backbone
at one frame with the calibrated efficiency of the shipped iPhone 16 Pro Max table (estimated).

    python benchmarks/pruned_backbone.py --repeats 2
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
import yaml
from common import DEFAULT_SPACE, ROOT, SD15_UNET, machine, print_table, run_main, write_results
from diffusers import UNet2DConditionModel

from nas.cost.calibration import Fit, table_fit
from nas.cost.plan import spatial_key
from nas.cost.roofline import chip as get_chip
from nas.cost.roofline import key_work, roofline_ms
from nas.space import SearchSpace

TABLE = ROOT / "latency_tables" / "iphone16promax_ne_snapgen_v.yaml"


def sd15_backbone() -> dict:
    """SD1.5's UNet config in the space's backbone form (diffusers defaults + SD15_UNET)."""
    return {
        "block_out_channels": [320, 640, 1280, 1280],
        "layers_per_block": 2,
        "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        "norm_num_groups": 32,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "in_channels": 4,
        "out_channels": 4,
        **SD15_UNET,
    }


def image_space(space_path: Path, backbone: dict, height: int, width: int) -> SearchSpace:
    """The space with ``backbone``, one frame of ``height`` x ``width`` px (for its spatial table key)."""
    data = yaml.safe_load(space_path.read_text())
    data["backbone"] = {k: v for k, v in backbone.items() if k != "sample_size"}
    data["video"].update({"frames": 1, "height": height, "width": width})
    return SearchSpace.from_dict(copy.deepcopy(data), source=str(space_path))


def roofline_estimate(space: SearchSpace, fit: Fit) -> float:
    """The estimated table's price of the space's spatial key (placement and per-op dispatch included)."""
    chip = get_chip("a18-pro-ne")
    return roofline_ms(key_work(space, spatial_key(space), chip), chip, fit.efficiency, fit.dispatch_ms)


@torch.inference_mode()
def time_forward(model, height: int, width: int, repeats: int, text_dim: int) -> list[float]:
    sample = torch.randn(1, 4, height // 8, width // 8)
    text = torch.randn(1, 77, text_dim)
    t = torch.tensor([500])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(sample, t, text)
        times.append(round((time.perf_counter() - start) * 1000, 1))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=Path, default=DEFAULT_SPACE)
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per model and shape (min is reported)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "benchmarks" / "results" / "pruned_backbone_cpu.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    space = SearchSpace.load(args.space)
    fit = table_fit(yaml.safe_load(TABLE.read_text()))
    backbones = {"sd15": sd15_backbone(), "pruned": space.backbone}
    torch.manual_seed(0)
    models = {name: UNet2DConditionModel(**cfg).eval() for name, cfg in backbones.items()}
    shapes = [(512, 512), (space.video.height, space.video.width)]
    rows, results = (
        [],
        {
            "machine": machine(torch.device("cpu")),
            "space": str(args.space),
            "repeats": args.repeats,
            "iphone_table": str(TABLE.relative_to(ROOT)),
            "roofline": fit.as_dict(),
            "params": {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()},
            "shapes": [],
        },
    )
    for height, width in shapes:
        entry = {"height": height, "width": width}
        for name, model in models.items():
            times = time_forward(model, height, width, args.repeats, space.cross_attention_dim)
            entry[f"{name}_cpu_ms"] = min(times)
            entry[f"{name}_cpu_ms_all"] = times
            entry[f"{name}_iphone_ms_estimated"] = round(
                roofline_estimate(image_space(args.space, backbones[name], height, width), fit), 2
            )
        entry["cpu_speedup"] = round(entry["sd15_cpu_ms"] / entry["pruned_cpu_ms"], 2)
        entry["iphone_speedup_estimated"] = round(
            entry["sd15_iphone_ms_estimated"] / entry["pruned_iphone_ms_estimated"], 2
        )
        results["shapes"].append(entry)
        rows.append(
            [
                f"{height}x{width}",
                entry["sd15_cpu_ms"],
                entry["pruned_cpu_ms"],
                entry["cpu_speedup"],
                entry["sd15_iphone_ms_estimated"],
                entry["pruned_iphone_ms_estimated"],
                entry["iphone_speedup_estimated"],
            ]
        )
    print_table(
        [
            "px",
            "SD1.5 CPU ms",
            "pruned CPU ms",
            "CPU x",
            "SD1.5 iPhone ms (est.)",
            "pruned iPhone ms (est.)",
            "iPhone x (est.)",
        ],
        rows,
    )
    write_results(args.out, results)


if __name__ == "__main__":
    run_main(main)
