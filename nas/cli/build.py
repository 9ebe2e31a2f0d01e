"""``nas build``: an architecture of a space as a VideoUNet, with its size report."""

from __future__ import annotations

import json
from pathlib import Path

from nas.cli.format import print_table, si


def add_parser(commands) -> None:
    build = commands.add_parser("build", help="build an architecture as a VideoUNet and report its size")
    build.add_argument("space", type=Path)
    build.add_argument("--arch", default="reference", help="a named architecture of the space or an ARCH.yaml")
    build.add_argument("--spatial-weights", type=Path, help="local diffusers UNet folder or .safetensors file")
    build.add_argument(
        "--device", default="cpu", help="where to build: cpu, cuda, mps, or meta (count only, allocates nothing)"
    )
    build.add_argument("-o", "--out", type=Path, help="save the built model here (save_pretrained)")
    build.add_argument("--json", action="store_true")
    build.set_defaults(func=cmd_build)


def cmd_build(args) -> None:
    from nas.space import SearchSpace

    space = SearchSpace.load(args.space)  # a bad space is one line before the model code is even imported
    from nas.model.build import build

    built = build(space, args.arch, spatial_weights=args.spatial_weights, device=args.device, out=args.out)
    report, architecture = built.report, built.architecture
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"arch {architecture.id} of {built.space.name}: {architecture.describe()}")
    print(
        f"params_total {report['params_total']:,}  (spatial {report['params_spatial']:,}, "
        f"temporal {report['params_temporal']:,})"
    )
    print(
        f"FLOPs per forward {si(report['flops_total'])}  (spatial {si(report['flops_spatial'])}, "
        f"temporal {si(report['flops_temporal'])}) for one clip of {built.space.video.frames} frames"
    )
    print_table(
        ["slot", "choice", "input (C,F,H,W)", "params", "FLOPs"],
        [
            [
                r["slot"],
                r["choice"],
                f"{r['channels']},{r['frames']},{r['height']},{r['width']}",
                f"{r['params']:,}",
                si(r["flops"]),
            ]
            for r in report["slots"]
        ],
    )
    if args.out:
        print(f"saved to {args.out}")
