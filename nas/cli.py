"""The ``nas`` command: a thin layer over the Python API (every command has a function).

User mistakes (NasError) end as one line on stderr and exit code 2; argparse usage errors
also exit 2. Plugins (modules that register temporal ops) load with ``--plugin MODULE``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from nas.errors import NasError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = "nas " + " ".join(shlex.quote(str(a)) for a in argv)
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
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


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

    table = commands.add_parser("table", help="device tables: plan, validate, check, import").add_subparsers(
        dest="action", required=True)
    plan = table.add_parser("plan", help="every key the space can need, once")
    plan.add_argument("space", type=Path)
    plan.add_argument("-o", "--out", type=Path, help="plan CSV to write (default: print)")
    plan.set_defaults(func=cmd_table_plan)
    validate = table.add_parser("validate", help="check tables and their sidecars (default: latency_tables/*.csv)")
    validate.add_argument("tables", type=Path, nargs="*")
    validate.set_defaults(func=cmd_table_validate)
    check = table.add_parser("check", help="predicted vs measured cost of random architectures")
    check.add_argument("space", type=Path)
    check.add_argument("--table", type=Path, required=True)
    check.add_argument("--samples", type=int, default=20)
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_table_check)
    time_ = table.add_parser("time", help="(macOS) time the packages of a Core ML export folder")
    time_.add_argument("export_dir", type=Path)
    time_.add_argument("--compute-units", default="CPU_AND_NE", help="CPU_AND_NE, CPU_AND_GPU, CPU_ONLY or ALL")
    time_.add_argument("--warmup", type=int, default=3, help="untimed predictions per package first")
    time_.add_argument("--repeats", type=int, default=20, help="timed predictions per package (p50, p90)")
    time_.set_defaults(func=cmd_table_time)
    imp = table.add_parser("import", help="make a table from a timed Core ML export folder")
    imp.add_argument("export_dir", type=Path)
    imp.add_argument("-o", "--out", type=Path, required=True)
    imp.set_defaults(func=cmd_table_import)
    estimate = table.add_parser("estimate", help="an estimated table from published chip figures (roofline)")
    estimate.add_argument("space", type=Path)
    estimate.add_argument("--chip", default="a18-pro-ne")
    estimate.add_argument("--calibrate-arch", default="reference", help="architecture of the published number")
    estimate.add_argument("--calibrate-ms", type=float, default=None, help="published ms per generation")
    estimate.add_argument("--steps", type=int, default=4, help="UNet passes in the published generation")
    estimate.add_argument("-o", "--out", type=Path, required=True)
    estimate.set_defaults(func=cmd_table_estimate)

    prof = commands.add_parser("profile", help="measure every key of a space into a device table")
    prof.add_argument("space", type=Path)
    prof.add_argument("--backend", default="torch", help="torch or coreml")
    prof.add_argument("-o", "--out", type=Path, help="table CSV (resumed if it exists)")
    prof.add_argument("--device", default="cpu", help="torch backend: cpu, cuda or mps")
    prof.add_argument("--precision", default=None, help="fp32, fp16 or bf16 (default fp32 torch, fp16 coreml)")
    prof.add_argument("--compute-units", default="CPU_AND_NE", help="coreml backend: CPU_AND_NE, CPU_AND_GPU, ...")
    prof.add_argument("--warmup", type=int, default=3)
    prof.add_argument("--repeats", type=int, default=50)
    prof.add_argument("--budget", type=float, default=10.0, help="seconds of timed calls per key (after 3)")
    prof.add_argument("--time-limit", type=float, default=30.0, help="seconds one call may take before 'timeout'")
    prof.add_argument("--memory-limit", type=float, default=None, help="MB a measurement may allocate ('oom' past it)")
    prof.add_argument("--plan", type=Path, help="measure only the keys of this plan CSV")
    prof.add_argument("--export-only", type=Path, metavar="DIR", help="coreml: write packages + manifest, no timing")
    prof.set_defaults(func=cmd_profile)

    cost = commands.add_parser("cost", help="latency and memory of an architecture from a device table")
    cost.add_argument("space", type=Path)
    cost.add_argument("--arch", default="reference")
    cost.add_argument("--table", type=Path, required=True)
    cost.add_argument("--steps", type=int, default=None, help="UNet passes per generation (default: the space's)")
    cost.add_argument("--json", action="store_true")
    cost.set_defaults(func=cmd_cost)

    find = commands.add_parser("search", help="joint latency-memory-quality search; writes the Pareto set")
    find.add_argument("space", type=Path)
    find.add_argument("--table", type=Path, required=True)
    find.add_argument("--latency-budget", type=float, metavar="MS", help="per generation (default: the space's)")
    find.add_argument("--memory-budget", type=float, metavar="MB", help="peak memory (default: the space's)")
    find.add_argument("--steps", type=int, help="UNet passes per generation (default: the space's)")
    find.add_argument("--proxy", default="params",
                      help="quality proxy: params, flops, gradnorm, distill (none: exhaustive only)")
    find.add_argument("--trials", type=int, default=200)
    find.add_argument("--sampler", default="nsga2", help="nsga2, tpe, random or exhaustive")
    find.add_argument("--proxy-option", action="append", default=[], metavar="KEY=VALUE",
                      help="option of the proxy, repeatable (distill: steps=40, clips=8, lr=1e-3, report_every=5, "
                           "data=DIR from `nas data encode`, spatial_weights=PATH)")
    find.add_argument("--pruner", default="median",
                      help="stops weak runs of a training proxy: median, halving, hyperband or none")
    find.add_argument("--screen", type=int, metavar="N",
                      help="nsga2: children bred per trial, of which the table picks one (default 64; 1: plain NSGA-II)")
    find.add_argument("--storage", help="optuna storage URL: sqlite:///F.db, journal:F.log, postgresql://..., memory "
                                        "(default: sqlite in --out)")
    find.add_argument("--study", help="study name (default: SPACE-TABLE)")
    find.add_argument("--workers", type=int, default=1)
    find.add_argument("--seed", type=int, default=0)
    find.add_argument("--out", type=Path, default=Path("runs/search"))
    find.add_argument("--json", action="store_true")
    find.set_defaults(func=cmd_search)

    proxy = commands.add_parser("proxy", help="quality proxies").add_subparsers(dest="action", required=True)
    pcheck = proxy.add_parser("check", help="Kendall tau of a proxy against longer training")
    pcheck.add_argument("space", type=Path)
    pcheck.add_argument("--proxy", default="distill")
    pcheck.add_argument("--samples", type=int, default=8)
    pcheck.add_argument("--steps", type=int, default=20, help="training steps of the distill proxy")
    pcheck.add_argument("--reference-factor", type=int, default=5, help="reference trains this many times longer")
    pcheck.add_argument("--proxy-option", action="append", default=[], metavar="KEY=VALUE",
                        help="as for `nas search`; data, clips, lr and spatial_weights also go to the reference")
    pcheck.add_argument("--seed", type=int, default=0)
    pcheck.add_argument("--json", action="store_true")
    pcheck.set_defaults(func=cmd_proxy_check)
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
    coreml.add_argument("--attention", choices=("split_einsum", "sdpa"), default="split_einsum",
                        help="attention form: split_einsum (Neural Engine, as apple/ml-stable-diffusion) or sdpa")
    coreml.add_argument("--json", action="store_true", help="print the summary as JSON")
    coreml.set_defaults(func=cmd_export_coreml)
    _data_parser(commands)
    _train_parser(commands)

    gen = commands.add_parser("generate", help="text -> video with a trained run (few steps, no guidance)")
    gen.add_argument("--model", type=Path, required=True, help="a finished `nas train` run folder")
    gen.add_argument("--text-encoder", type=Path, required=True, help="local CLIP text encoder (+ tokenizer) folder")
    gen.add_argument("--vae", type=Path, help="local AutoencoderKL folder (not needed with --latents-only)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--steps", type=int, default=4)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--fps", type=int, default=8)
    gen.add_argument("--device", default="cpu")
    gen.add_argument("--latents-only", action="store_true", help="write the latents (.safetensors), skip the VAE")
    gen.add_argument("-o", "--out", type=Path, required=True)
    gen.set_defaults(func=cmd_generate)
    return parser


def _data_parser(commands) -> None:
    data = commands.add_parser("data", help="make and encode training data").add_subparsers(dest="action", required=True)
    synth = data.add_parser("synth", help="write a small synthetic video-text set (moving/rotating shapes)")
    synth.add_argument("-o", "--out", type=Path, required=True)
    synth.add_argument("--clips", type=int, default=16)
    synth.add_argument("--images", type=int, default=4)
    synth.add_argument("--frames", type=int, default=16)
    synth.add_argument("--height", type=int, default=96)
    synth.add_argument("--width", type=int, default=128)
    synth.add_argument("--fps", type=int, default=8)
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=cmd_data_synth)
    encode = data.add_parser("encode", help="videos/images + captions.csv -> sharded latents and text embeddings")
    encode.add_argument("source", type=Path, help="folder of videos and images")
    encode.add_argument("--captions", type=Path, help="CSV with columns file, caption (default SOURCE/captions.csv)")
    encode.add_argument("--vae", type=Path, required=True)
    encode.add_argument("--text-encoder", type=Path, required=True)
    encode.add_argument("--space", type=Path, required=True, help="search space YAML: the video shape to encode to")
    encode.add_argument("-o", "--out", type=Path, required=True)
    encode.add_argument("--stride", type=int, default=1, help="take every STRIDE-th frame")
    encode.add_argument("--clips-per-video", type=int, default=1)
    encode.add_argument("--shard-size", type=int, default=256)
    encode.add_argument("--batch-frames", type=int, default=16)
    encode.add_argument("--device", default="cpu")
    encode.set_defaults(func=cmd_data_encode)


def _train_parser(commands) -> None:
    train = commands.add_parser("train", help="train a model").add_subparsers(dest="action", required=True)
    stages = {
        "distill": ("stage 1: the searched architecture into a full video model (+ teacher distillation)",
                    ["space", "arch", "teacher", "spatial_weights"]),
        "adversarial": ("stage 2: adversarial fine-tuning to a few-step generator", ["init"]),
    }
    for stage, (help_text, own) in stages.items():
        sub = train.add_parser(stage, help=help_text)
        sub.add_argument("--config", type=Path, help="stage config YAML (see examples/); flags override it")
        for name in ["data", "out", *own]:
            sub.add_argument(f"--{name.replace('_', '-')}", dest=name)
        if stage == "distill":
            sub.add_argument("--freeze-spatial", action="store_const", const=True, dest="freeze_spatial")
        for name, kind in (("max_steps", int), ("batch_size", int), ("lr", float), ("seed", int),
                           ("mixed_precision", str)):
            sub.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind)
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override any config key (VALUE read as YAML); repeatable")
        sub.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
        sub.add_argument("--stop-after", type=int, metavar="STEP",
                         help="checkpoint and stop after STEP (e.g. a time-limited job); --resume continues")
        sub.set_defaults(func=cmd_train, stage=stage, own=own)


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


def cmd_table_plan(args) -> None:
    from nas.cost.plan import plan_frame, table_plan
    from nas.space import SearchSpace

    frame = plan_frame(table_plan(SearchSpace.load(args.space)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)
        print(f"wrote {args.out} ({len(frame)} keys)")
    else:
        print(frame.to_csv(index=False), end="")


def cmd_table_validate(args) -> None:
    from nas.cost.table import LatencyTable

    tables = args.tables or sorted(Path("latency_tables").glob("*.csv"))
    if not tables:
        raise NasError("no tables given and none in latency_tables/")
    for path in tables:
        table = LatencyTable.load(path)
        counts = table.rows["status"].value_counts().to_dict()
        print(f"ok  {path}: {len(table.rows)} rows ({', '.join(f'{v} {k}' for k, v in counts.items())}), "
              f"{table.meta['provenance']} on {table.meta['device']} ({table.meta['backend']}, "
              f"{table.meta['precision']})")


def cmd_table_check(args) -> None:
    from nas.cost.check import check_table

    if args.samples < 2:
        raise NasError(f"--samples must be at least 2, got {args.samples}")
    report = check_table(args.space, args.table, args.samples, args.seed, progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['samples']} architectures of {report['space']} on {report['table']}")
    for what, prefix in (("latency", ""), ("memory", "memory_")):
        print(f"{what:8s} within 10%: {report[prefix + 'within_10pct']:.0%}  MAPE: {report[prefix + 'mape']:.1%}  "
              f"Kendall tau: {report[prefix + 'kendall_tau']:.3f}")


def cmd_table_time(args) -> None:
    from nas.profile.coreml_profiler import time_packages

    print(f"wrote {time_packages(args.export_dir, args.compute_units, warmup=args.warmup, repeats=args.repeats)}")


def cmd_table_import(args) -> None:
    from nas.profile.coreml_profiler import import_results

    table = import_results(args.export_dir, args.out, command=args.command_line)
    print(f"wrote {args.out} ({len(table.rows)} rows)")


def cmd_table_estimate(args) -> None:
    from nas.cost.roofline import chip, estimate_table
    from nas.space import SearchSpace

    space = SearchSpace.load(args.space)
    calibrate = None
    if args.calibrate_ms is not None:
        calibrate = (space.architecture(args.calibrate_arch), args.steps, args.calibrate_ms)
    table = estimate_table(space, chip(args.chip), calibrate, command=args.command_line)
    table.save(args.out)
    note = f", efficiency {table.meta['calibration']['efficiency']}" if calibrate else ""
    print(f"wrote {args.out} ({len(table.rows)} rows, estimated{note})")
    placement = table.meta["placement"]
    print(f"placement: {placement['rows_on_ne']} of {len(table.rows)} rows on the Neural Engine")
    for key, note in placement["off_ne"].items():
        print(f"  {key}: {note}")
    for point in (table.meta["calibration"] or {}).get("holdout", []):
        print(f"hold-out {point['point']} on {point['chip']}: predicted {point['predicted_ms']:,.1f} ms, "
              f"published {point['published_ms']:,.1f} ms ({point['error_pct']:+.1f}%)")


def cmd_profile(args) -> None:
    from nas.cost.table import KEY_COLUMNS
    from nas.ops import OpKey

    if args.backend == "coreml" and args.export_only:
        from nas.profile.coreml_profiler import export_packages

        manifest = export_packages(args.space, args.export_only, precision=args.precision or "fp16")
        print(f"wrote {manifest}; time it on a Mac: nas table time {args.export_only}")
        return
    if args.out is None:
        raise NasError("nas profile needs -o TABLE.csv (or --export-only DIR with --backend coreml)")
    keys = None
    if args.plan:
        import pandas as pd

        if not args.plan.is_file():
            raise NasError(f"{args.plan}: no such plan")
        frame = pd.read_csv(args.plan)
        if list(frame.columns) != KEY_COLUMNS:
            raise NasError(f"{args.plan}: a plan has the columns {', '.join(KEY_COLUMNS)}")
        keys = [OpKey(*row) for row in frame.itertuples(index=False)]
    from nas.profile.runner import profile

    options = {"warmup": args.warmup, "repeats": args.repeats, "budget_s": args.budget,
               "time_limit_s": args.time_limit}
    if args.backend == "torch":
        options.update(device=args.device, precision=args.precision or "fp32")
    elif args.backend == "coreml":
        options.update(compute_units=args.compute_units, precision=args.precision or "fp16")
    table = profile(args.space, args.backend, args.out, keys=keys, memory_limit_mb=args.memory_limit,
                    command=args.command_line, **options)
    counts = table.rows["status"].value_counts().to_dict()
    print(f"wrote {args.out}: {len(table.rows)} rows ({', '.join(f'{v} {k}' for k, v in counts.items())})")


def cmd_cost(args) -> None:
    from nas.cost.cost_model import CostModel
    from nas.cost.table import LatencyTable
    from nas.space import SearchSpace

    space = SearchSpace.load(args.space)
    architecture = space.architecture(args.arch)
    if args.steps is not None and args.steps < 1:
        raise NasError(f"--steps must be at least 1, got {args.steps}")
    table = LatencyTable.load(args.table)
    prediction = CostModel(space, table).predict(architecture, args.steps)
    if args.json:
        print(json.dumps({"arch_id": architecture.id, "table": str(args.table),
                          "provenance": table.meta["provenance"], **prediction.as_dict()}, indent=2))
        return
    p = prediction
    print(f"arch {architecture.id} on {args.table} ({table.meta['provenance']}, {table.meta['device']})")
    print(f"latency {p.latency_ms:,.1f} ms = {p.steps} x {p.unet_ms:,.1f} ms UNet + {p.fixed_ms:,.1f} ms fixed parts")
    print(f"memory  {p.memory_mb:,.1f} MB = {p.weights_mb:,.1f} MB weights + {p.activation_mb:,.1f} MB activations")
    if not p.runs:
        print("the table says this architecture cannot run on the device (see status)")
    print("coverage: " + ", ".join(f"{v} {k}" for k, v in p.coverage.items()))
    print("placement: " + ", ".join(f"{v} {k}" for k, v in p.placement.items()))
    _table(["slot", "choice", "latency_ms", "working_set_mb", "coverage", "status", "placement"],
           [[r["slot"], r["choice"], f"{r['latency_ms']:.2f}", f"{r['working_set_mb']:.1f}", r["coverage"],
             r["status"], r.get("placement", "-") or "-"] for r in p.slots])


def cmd_search(args) -> None:
    from nas.search.job import describe, search

    summary = search(args.space, args.table, args.out, latency_budget=args.latency_budget,
                     memory_budget=args.memory_budget, steps=args.steps, proxy=args.proxy, sampler=args.sampler,
                     trials=args.trials, storage=args.storage, study=args.study, workers=args.workers, seed=args.seed,
                     screen=args.screen, pruner=args.pruner, progress=not args.json,
                     proxy_options=_key_values(args.proxy_option, "--proxy-option"))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(describe(summary))
        print(f"wrote {args.out}/pareto.csv, pareto.png, pareto.html, architectures/")
    if not summary["feasible_front"]:
        raise NasError(f"{args.space}: no architecture meets the budgets; the {summary['pareto']} least-violating "
                       f"are in {args.out}/pareto.csv (feasible = False)")


def _key_values(items: list[str], flag: str) -> dict[str, Any]:
    """KEY=VALUE strings to a dict; values are read as YAML scalars (40 -> int, 1e-3 -> float)."""
    import yaml

    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise NasError(f"{flag} {item}: expected KEY=VALUE")
        try:
            values[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise NasError(f"{flag} {item}: VALUE is not valid YAML") from None
    return values


def cmd_proxy_check(args) -> None:
    from nas.search.proxies import check_options, get_proxy, proxy_check
    from nas.space import SearchSpace

    try:
        proxy_cls = get_proxy(args.proxy)
    except KeyError as exc:
        raise NasError(f"--proxy: {exc.args[0]}") from None
    if args.samples < 2 or args.steps < 1 or args.reference_factor < 1:
        raise NasError("--samples must be at least 2, --steps and --reference-factor at least 1")
    options = {"steps": args.steps} if args.proxy == "distill" else {}
    options.update(_key_values(args.proxy_option, "--proxy-option"))
    check_options(proxy_cls, options)
    report = proxy_check(SearchSpace.load(args.space), args.proxy, args.samples, args.seed,
                         reference_steps=args.steps * args.reference_factor, progress=not args.json, **options)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.proxy} on {report['space']}: Kendall tau {report['kendall_tau']:.3f} against {report['reference_steps']}-"
          f"step distill training over {report['samples']} architectures")
def cmd_export_coreml(args) -> None:
    from nas.export import export_coreml

    model = _load_or_build(args)
    summary = export_coreml(model, args.out, target=args.target, precision=args.precision, batch=args.batch,
                            palettize=args.palettize, palettize_mode=args.palettize_mode, chunks=args.chunks,
                            compute_units=args.compute_units, runs=args.runs, attention=args.attention)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"converted {summary['model']['space']} ({summary['model']['params']:,} params) for {summary['target']} "
          f"{summary['precision']} in {summary['convert_s']} s; peak RSS {summary['peak_rss_mb']:,} MB")
    _table(["package", "ops", "weights", "palettized", "inputs", "outputs"],
           [[p["path"], p["ops"], f"{p['weight_bytes'] / 2**20:,.1f} MiB", p["palettized_weights"],
             _features(p["inputs"]), _features(p["outputs"])] for p in summary["packages"]])
    for package in summary["packages"]:
        print(f"{package['path']}: max tensor rank {package['max_rank']}, {package['transposes']} transposes, "
              f"{package['reshapes']} reshapes, {package['conv3d']} 3D convs; ops by type: {_op_types(package)}")
    print(f"temporal ops ({summary['attention']}), each converted alone:")
    _table(["slots", "op", "input", "ops", "max rank", "transposes", "reshapes", "conv3d", "ops by type"],
           [[",".join(t["slots"]), t["op"], "x".join(map(str, t["input_shape"])), t["ops"], t["max_rank"],
             t["transposes"], t["reshapes"], t["conv3d"], _op_types(t)] for t in summary["temporal_ops"]])
    for package in summary["packages"]:
        for warning in package["warnings"]:
            print(f"warning: {package['path']}: {warning}")
    for warning in summary["warnings"]:
        print(f"warning: {warning}")
    if summary["timing"]:
        t = summary["timing"]
        print(f"{t['compute_units']}: {t['latency_ms_p50']} ms per call (median of {t['runs']}), load {t['load_s']} s")
    print(f"summary: {args.out.with_suffix('.json')}")


def _op_types(program: dict) -> str:
    return " ".join(f"{t}:{n}" for t, n in program["op_types"].items())


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
def cmd_data_synth(args) -> None:
    from nas.data import synth_dataset

    csv = synth_dataset(args.out, clips=args.clips, images=args.images, frames=args.frames, height=args.height,
                        width=args.width, fps=args.fps, seed=args.seed)
    print(f"wrote {args.clips} clips and {args.images} images to {args.out} (captions: {csv})")


def cmd_data_encode(args) -> None:
    from nas.data import encode_dataset
    from nas.space import SearchSpace

    manifest = encode_dataset(args.source, args.vae, args.text_encoder, args.out, SearchSpace.load(args.space),
                              captions=args.captions, stride=args.stride, clips_per_video=args.clips_per_video,
                              shard_size=args.shard_size, batch_frames=args.batch_frames, device=args.device)
    kinds = [s["kind"] for s in manifest["samples"]]
    print(f"encoded {kinds.count('video')} clips and {kinds.count('image')} images into {args.out} "
          f"({len(manifest['shards'])} shards); skipped {len(manifest['skipped'])}")
    for item in manifest["skipped"]:
        print(f"  skipped {item['file']}: {item['reason']}")


def cmd_train(args) -> None:
    from nas.train import AdversarialConfig, DistillConfig, adversarial, distill, load_config

    flags = ["data", "out", *args.own, "max_steps", "batch_size", "lr", "seed", "mixed_precision"]
    flags += ["freeze_spatial"] if args.stage == "distill" else []
    overrides = {name: getattr(args, name) for name in flags if getattr(args, name) is not None}
    overrides.update(_key_values(args.set, "--set"))
    cls, run = (DistillConfig, distill) if args.stage == "distill" else (AdversarialConfig, adversarial)
    config = load_config(cls, args.config, overrides)
    summary = run(config, resume=args.resume, stop_after=args.stop_after)
    print(json.dumps(summary, indent=1))


def cmd_generate(args) -> None:
    from nas.generate import generate

    out = generate(args.model, args.prompt, args.text_encoder, args.out, vae=args.vae, steps=args.steps,
                   seed=args.seed, fps=args.fps, latents_only=args.latents_only, device=args.device)
    print(f"wrote {out}")


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
