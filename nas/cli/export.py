"""``nas export coreml``: a whole VideoUNet as a Core ML package, with what the conversion made of it."""

from __future__ import annotations

import json
from pathlib import Path

from nas.cli.format import print_table


def add_parser(commands) -> None:
    export = commands.add_parser("export", help="export a model to a device format").add_subparsers(
        dest="format", required=True
    )
    coreml = export.add_parser(
        "coreml",
        help="convert a whole VideoUNet to a Core ML package (mlprogram)",
        description="Convert at the model's clip shape; verify the program; write "
        "NAME.json next to the package. Timing needs macOS.",
    )
    source = coreml.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="a VideoUNet save_pretrained folder (e.g. from nas build -o)")
    source.add_argument("--space", type=Path, help="build --arch of this search space (random init)")
    coreml.add_argument("--arch", help="with --space: a named architecture or an ARCH.yaml (default: reference)")
    coreml.add_argument("-o", "--out", type=Path, required=True, help="NAME.mlpackage to write")
    coreml.add_argument(
        "--target",
        choices=("iOS17", "iOS18"),
        default="iOS18",
        help="minimum deployment target (iOS18 keeps attention as one SDPA op)",
    )
    coreml.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    coreml.add_argument("--batch", type=int, default=1, help="clips per call (1: no CFG)")
    coreml.add_argument("--palettize", type=int, choices=(4, 6, 8), help="palettize weights to this many bits")
    coreml.add_argument(
        "--palettize-mode",
        choices=("kmeans", "uniform"),
        default=None,
        help="default: kmeans if scikit-learn is installed, else uniform",
    )
    coreml.add_argument(
        "--chunks",
        type=int,
        default=1,
        help="split into this many packages (power of two) for the Neural Engine's ~1 GB limit",
    )
    coreml.add_argument("--compute-units", help="time the package on CPU_AND_NE, CPU_AND_GPU, CPU_ONLY or ALL (macOS)")
    coreml.add_argument("--runs", type=int, default=5, help="timed predictions after one warm-up")
    coreml.add_argument(
        "--attention",
        choices=("split_einsum", "sdpa"),
        default="split_einsum",
        help="attention form: split_einsum (Neural Engine, as apple/ml-stable-diffusion) or sdpa",
    )
    coreml.add_argument("--json", action="store_true", help="print the summary as JSON")
    coreml.set_defaults(func=cmd_export_coreml)


def cmd_export_coreml(args) -> None:
    from nas.export import export_coreml
    from nas.export.package import claim_export
    from nas.model.build import load_or_build

    claim_export(args.out, args.chunks, [args.model, args.space, args.arch])  # before the model is loaded
    model = load_or_build(model=args.model, space=args.space, arch=args.arch)
    summary = export_coreml(
        model,
        args.out,
        target=args.target,
        precision=args.precision,
        batch=args.batch,
        palettize=args.palettize,
        palettize_mode=args.palettize_mode,
        chunks=args.chunks,
        compute_units=args.compute_units,
        runs=args.runs,
        attention=args.attention,
        space_path=args.space,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"converted {summary['model']['space']} ({summary['model']['params']:,} params) for {summary['target']} "
        f"{summary['precision']} in {summary['convert_s']} s; peak RSS {summary['peak_rss_mb']:,} MB"
    )
    print_table(
        ["package", "ops", "weights", "palettized", "inputs", "outputs"],
        [
            [
                p["path"],
                p["ops"],
                f"{p['weight_bytes'] / 2**20:,.1f} MiB",
                p["palettized_weights"],
                _features(p["inputs"]),
                _features(p["outputs"]),
            ]
            for p in summary["packages"]
        ],
    )
    if summary["palettize"] and summary["palettize"].get("note"):
        print(f"note: {summary['palettize']['note']}")
    for package in summary["packages"]:
        print(
            f"{package['path']}: max tensor rank {package['max_rank']}, {package['transposes']} transposes, "
            f"{package['reshapes']} reshapes, {package['conv3d']} 3D convs; ops by type: {_op_types(package)}"
        )
    print(f"temporal ops ({summary['attention']}), each converted alone:")
    print_table(
        ["slots", "op", "input", "ops", "max rank", "transposes", "reshapes", "conv3d", "ops by type"],
        [
            [
                ",".join(t["slots"]),
                t["op"],
                "x".join(map(str, t["input_shape"])),
                t["ops"],
                t["max_rank"],
                t["transposes"],
                t["reshapes"],
                t["conv3d"],
                _op_types(t),
            ]
            for t in summary["temporal_ops"]
        ],
    )
    for package in summary["packages"]:
        for warning in package["warnings"]:
            print(f"warning: {package['path']}: {warning}")
    for warning in summary["warnings"]:
        print(f"warning: {warning}")
    if summary["timing"]:
        t = summary["timing"]
        print(
            f"{t['compute_units']}: {t['latency_p50_ms']:.1f} ms per call (p50 of {t['samples']}, p90 "
            f"{t['latency_p90_ms']:.1f}), load {t['load_s']} s"
        )
    print(f"summary: {args.out.with_suffix('.json')}; Mac kit: {args.out.parent} (nas table time {args.out.parent})")


def _op_types(program: dict) -> str:
    return " ".join(f"{t}:{n}" for t, n in program["op_types"].items())


def _features(features) -> str:
    return ", ".join(f"{f['name']}{tuple(f['shape'])}" for f in features)
