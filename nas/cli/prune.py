"""``nas prune``: a pretrained 2D UNet (e.g. SD1.5) cut down to a space's backbone, or a VAE's decoder
(``--decoder``) cut down to given widths and depth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.errors import NasError


def add_parser(commands) -> None:
    prune = commands.add_parser(
        "prune", help="prune a pretrained 2D UNet (e.g. SD1.5) to a space's backbone, or a VAE's decoder"
    )
    prune.add_argument(
        "source", type=Path, help="a diffusers unet/ (vae/) folder, a pipeline folder, or a .safetensors file"
    )
    prune.add_argument(
        "--space", type=Path, help="search space YAML: its backbone is the target (with --decoder: its frame size)"
    )
    prune.add_argument("-o", "--out", type=Path, required=True, help="new folder for the pruned model (safetensors)")
    prune.add_argument("--config", type=Path, help="the config.json of a single .safetensors file")
    prune.add_argument(
        "--importance", choices=["l1", "taylor"], help="channel score (default: the space's prune_from, else l1)"
    )
    prune.add_argument("--calibration-batches", type=int, help="batches for the taylor score (default 2; VAE 1)")
    prune.add_argument("--no-compare", action="store_true", help="skip the output comparison (saves 3 forwards)")
    prune.add_argument("--json", action="store_true", help="print the whole report as JSON")
    vae = prune.add_argument_group("a VAE's decoder (an AutoencoderKL source)")
    vae.add_argument("--decoder", action="store_true", help="prune the decoder of an AutoencoderKL")
    vae.add_argument("--widths", type=_widths, help="the decoder's block_out_channels, e.g. 64,128,256,256")
    vae.add_argument("--layers-per-block", type=int, help="layers_per_block (the decoder has one more per up block)")
    vae.add_argument("--no-mid-attention", action="store_true", help="drop the mid block's attention")
    prune.set_defaults(func=cmd_prune)


def _widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated channel counts, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"positive channel counts, got {text!r}")
    return widths


def cmd_prune(args) -> None:
    from nas.prune import prune_decoder, prune_to_space

    if args.decoder:
        if args.widths is None:
            raise NasError("nas prune --decoder: --widths is needed (the decoder's block_out_channels)")
        target = {"block_out_channels": args.widths}
        if args.layers_per_block is not None:
            target["layers_per_block"] = args.layers_per_block
        if args.no_mid_attention:
            target["mid_block_add_attention"] = False
        _, report = prune_decoder(
            args.source,
            target,
            args.out,
            config=args.config,
            importance=args.importance or "l1",
            calibration_batches=args.calibration_batches or 1,
            space=args.space,
            compare=not args.no_compare,
        )
    elif args.space is None or args.widths is not None:
        raise NasError("nas prune: a UNet is pruned to --space's backbone; a VAE's decoder with --decoder --widths")
    else:
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
