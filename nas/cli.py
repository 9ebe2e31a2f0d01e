"""The ``nas`` command: a thin layer over the Python API (every command has a function).

User mistakes (NasError) end as one line on stderr and exit code 2; argparse usage errors
also exit 2. Plugins (modules that register temporal ops) load with ``--plugin MODULE``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from nas.errors import NasError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        for module in args.plugin:
            _import_plugin(module)
        return args.func(args) or 0
    except NasError as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130


def _import_plugin(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise NasError(f"--plugin {module}: cannot import ({exc})") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Hardware-aware NAS for mobile video diffusion.")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it may register temporal ops); repeatable")
    commands = parser.add_subparsers(dest="command", required=True)

    space = commands.add_parser("space", help="inspect a search space").add_subparsers(dest="action", required=True)
    show = space.add_parser("show", help="slots, choices and number of architectures")
    show.add_argument("space", type=Path)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_space_show)
    sample = space.add_parser("sample", help="write a random valid architecture")
    sample.add_argument("space", type=Path)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("-o", "--out", type=Path, help="architecture YAML to write (default: print)")
    sample.set_defaults(func=cmd_space_sample)

    ops = commands.add_parser("ops", help="list the registered temporal op types")
    ops.add_argument("--json", action="store_true")
    ops.set_defaults(func=cmd_ops)

    build = commands.add_parser("build", help="build an architecture as a VideoUNet and report its size")
    build.add_argument("space", type=Path)
    build.add_argument("--arch", default="reference", help="a named architecture of the space or an ARCH.yaml")
    build.add_argument("--spatial-weights", type=Path, help="local diffusers UNet folder or .safetensors file")
    build.add_argument("--device", default="cpu",
                       help="where to build: cpu, cuda, mps, or meta (count only, allocates nothing)")
    build.add_argument("-o", "--out", type=Path, help="save the built model here (save_pretrained)")
    build.add_argument("--json", action="store_true")
    build.set_defaults(func=cmd_build)
    return parser


# -------------------------------------------------------------------- commands
def cmd_space_show(args) -> None:
    from nas.space import SearchSpace

    space = SearchSpace.load(args.space)
    summary = space.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    video = summary["video"]
    print(f"space {space.name} ({space.source}): {space.num_architectures:,} architectures")
    print(f"video {video['frames']} frames x {video['height']}x{video['width']} px "
          f"(latent {video['latent_height']}x{video['latent_width']}); spatial backbone {space.params_spatial:,} params")
    rows = [[s.name, s.path, s.level, s.position, s.channels, f"{s.height}x{s.width}", _choice_summary(s.choices)]
            for s in space.slots]
    _table(["slot", "path", "level", "pos", "channels", "size", "choices"], rows)
    if space.architectures:
        print("named architectures:", ", ".join(space.architectures))


def cmd_space_sample(args) -> None:
    from nas.space import SearchSpace
    from nas.space.yaml_io import dump_yaml

    space = SearchSpace.load(args.space)
    architecture = space.sample(args.seed)
    if args.out:
        architecture.save(args.out)
        print(f"wrote {args.out} (arch {architecture.id})")
    else:
        print(dump_yaml(architecture.to_dict()), end="")


def cmd_ops(args) -> None:
    from nas.ops import get_op, list_ops

    ops = {name: {"defaults": get_op(name).defaults, "doc": (get_op(name).__doc__ or "").strip().splitlines()[0]}
           for name in list_ops()}
    if args.json:
        print(json.dumps(ops, indent=2))
        return
    _table(["op", "parameters", "what"], [[n, json.dumps(o["defaults"]), o["doc"]] for n, o in ops.items()])


def cmd_build(args) -> None:
    import torch

    from nas.model import VideoUNet
    from nas.model.size import architecture_size
    from nas.space import SearchSpace

    space = SearchSpace.load(args.space)
    architecture = space.architecture(args.arch)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise NasError(f"--device {args.device}: not a torch device") from None
    if device.type == "meta" and (args.out or args.spatial_weights):
        raise NasError("--device meta builds nothing to save or load weights into; use cpu or cuda")
    with device:
        model = VideoUNet.from_space(space, architecture, spatial_weights=args.spatial_weights)
    report = architecture_size(space, architecture)
    built = sum(p.numel() for p in model.parameters())
    if built != report["params_total"]:  # the op cost functions and the model must agree
        raise RuntimeError(f"built model has {built} params, size report says {report['params_total']}")
    if args.out:
        model.save_pretrained(args.out)
        architecture.save(Path(args.out) / "architecture.yaml")
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"arch {architecture.id} of {space.name}: {architecture.describe()}")
    print(f"params_total {report['params_total']:,}  (spatial {report['params_spatial']:,}, "
          f"temporal {report['params_temporal']:,})")
    print(f"FLOPs per forward {_si(report['flops_total'])}  (spatial {_si(report['flops_spatial'])}, "
          f"temporal {_si(report['flops_temporal'])}) for one clip of {space.video.frames} frames")
    _table(["slot", "choice", "input (C,F,H,W)", "params", "FLOPs"],
           [[r["slot"], r["choice"], f"{r['channels']},{r['frames']},{r['height']},{r['width']}",
             f"{r['params']:,}", _si(r["flops"])] for r in report["slots"]])
    if args.out:
        print(f"saved to {args.out}")


def _choice_summary(choices) -> str:
    """``none, conv1d(kernel=3) x1|2, ...``: variants with their counts folded together."""
    counts: dict[str, list[int]] = {}
    for choice in choices:
        variant = choice.label.rsplit("x", 1)[0] if not choice.is_none else choice.label
        counts.setdefault(variant, []).append(choice.count)
    return ", ".join(v if v == "none" else f"{v} x{'|'.join(map(str, c))}" for v, c in counts.items())


def _si(value: float) -> str:
    """1234567 -> '1.23 G'-style short numbers for FLOP counts."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def _table(header: list[str], rows: list[list[Any]]) -> None:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
