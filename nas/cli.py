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

    export = commands.add_parser("export", help="export a model to a device format").add_subparsers(
        dest="format", required=True)
    coreml = export.add_parser("coreml", help="convert a whole VideoUNet to a Core ML package (mlprogram)",
                               description="Convert at the model's clip shape; verify the program; write "
                                           "NAME.json next to the package. Timing needs macOS.")
    source = coreml.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="a VideoUNet save_pretrained folder (e.g. from nas build -o)")
    source.add_argument("--space", type=Path, help="build --arch of this search space (random init)")
    coreml.add_argument("--arch", help="with --space: a named architecture or an ARCH.yaml (default: reference)")
    coreml.add_argument("-o", "--out", type=Path, required=True, help="NAME.mlpackage to write")
    coreml.add_argument("--target", choices=("iOS17", "iOS18"), default="iOS18",
                        help="minimum deployment target (iOS18 keeps attention as one SDPA op)")
    coreml.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    coreml.add_argument("--batch", type=int, default=1, help="clips per call (1: no CFG)")
    coreml.add_argument("--palettize", type=int, choices=(4, 6, 8), help="palettize weights to this many bits")
    coreml.add_argument("--palettize-mode", choices=("kmeans", "uniform"), default="kmeans")
    coreml.add_argument("--chunks", type=int, default=1,
                        help="split into this many packages (power of two) for the Neural Engine's ~1 GB limit")
    coreml.add_argument("--compute-units", choices=("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE"),
                        help="time the package on these units (macOS only)")
    coreml.add_argument("--runs", type=int, default=5, help="timed predictions after one warm-up")
    coreml.add_argument("--json", action="store_true", help="print the summary as JSON")
    coreml.set_defaults(func=cmd_export_coreml)
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


def cmd_export_coreml(args) -> None:
    from nas.export import export_coreml

    model = _load_or_build(args)
    summary = export_coreml(model, args.out, target=args.target, precision=args.precision, batch=args.batch,
                            palettize=args.palettize, palettize_mode=args.palettize_mode, chunks=args.chunks,
                            compute_units=args.compute_units, runs=args.runs)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"converted {summary['model']['space']} ({summary['model']['params']:,} params) for {summary['target']} "
          f"{summary['precision']} in {summary['convert_s']} s; peak RSS {summary['peak_rss_mb']:,} MB")
    _table(["package", "ops", "weights", "palettized", "inputs", "outputs"],
           [[p["path"], p["ops"], f"{p['weight_bytes'] / 2**20:,.1f} MiB", p["palettized_weights"],
             _features(p["inputs"]), _features(p["outputs"])] for p in summary["packages"]])
    for package in summary["packages"]:
        for warning in package["warnings"]:
            print(f"warning: {package['path']}: {warning}")
    if summary["timing"]:
        t = summary["timing"]
        print(f"{t['compute_units']}: {t['latency_ms_p50']} ms per call (median of {t['runs']}), load {t['load_s']} s")
    print(f"summary: {args.out.with_suffix('.json')}")


def _load_or_build(args):
    from nas.model import VideoUNet
    from nas.space import SearchSpace

    if args.space:
        space = SearchSpace.load(args.space)
        return VideoUNet.from_space(space, space.architecture(args.arch or "reference"))
    if args.arch:
        raise NasError(f"--arch {args.arch}: goes with --space; a --model folder already fixes its architecture")
    if not (args.model / "config.json").is_file():
        raise NasError(f"{args.model}: not a VideoUNet folder (no config.json; make one with nas build -o)")
    try:
        return VideoUNet.from_pretrained(args.model)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise NasError(f"{args.model}: cannot load a VideoUNet ({str(exc).splitlines()[0]})") from None


def _features(features) -> str:
    return ", ".join(f"{f['name']}{tuple(f['shape'])}" for f in features)


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
