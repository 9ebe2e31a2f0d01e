"""``nas prune``: a pretrained 2D UNet (e.g. SD1.5) cut down to a space's spatial backbone."""

from __future__ import annotations

import json
from pathlib import Path


def add_parser(commands) -> None:
    prune = commands.add_parser("prune", help="prune a pretrained 2D UNet (e.g. SD1.5) to a space's backbone")
    prune.add_argument("source", type=Path, help="a diffusers unet/ folder, a pipeline folder, or a .safetensors file")
    prune.add_argument("--space", type=Path, required=True, help="search space YAML (its backbone is the target)")
    prune.add_argument("-o", "--out", type=Path, required=True, help="new folder for the pruned UNet (safetensors)")
    prune.add_argument("--config", type=Path, help="the UNet config.json of a single .safetensors file")
    prune.add_argument(
        "--importance", choices=["l1", "taylor"], help="channel score (default: the space's prune_from, else l1)"
    )
    prune.add_argument("--calibration-batches", type=int, help="batches for the taylor score (default 2)")
    prune.add_argument("--no-compare", action="store_true", help="skip the output comparison (saves 3 forwards)")
    prune.add_argument("--json", action="store_true", help="print the whole report as JSON")
    prune.set_defaults(func=cmd_prune)


def cmd_prune(args) -> None:
    from nas.prune import prune_to_space

    _, report = prune_to_space(
        args.source,
        args.space,
        args.out,
        config=args.config,
        importance=args.importance,
        calibration_batches=args.calibration_batches,
        compare=not args.no_compare,
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(report["summary"])
        print(f"saved to {args.out} (report: {args.out / 'prune_report.json'})")
