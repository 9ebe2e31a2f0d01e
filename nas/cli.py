"""The ``nas`` command: a thin layer over the Python API (every command has a function).

User mistakes (NasError) end as one line on stderr and exit code 2; argparse usage errors
also exit 2. Plugins (modules that register temporal ops) load with ``--plugin MODULE``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from nas import plugins
from nas.errors import NasError, NasWarning
from nas.quiet import third_party_quiet


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = "nas " + " ".join(shlex.quote(str(a)) for a in argv)
    warnings.showwarning = _show_warning
    try:
        with third_party_quiet(args.verbose):
            plugins.load(args.plugin)
            return args.func(args) or 0
    except NasError as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # nas.errors.Interrupted says what was kept and how to resume
        print(f"nas: interrupted: {exc}" if str(exc) else "nas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """NasWarnings as one line, like errors; other warnings as Python prints them."""
    if issubclass(category, NasWarning):
        print(f"nas: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Hardware-aware NAS for mobile video diffusion.")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it may register temporal ops, proxies, profilers); repeatable")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show third-party warnings as they come (default: one line counting them)")
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

    for noun, func, what in (("ops", cmd_ops, "temporal op types"), ("proxies", cmd_proxies, "quality proxies"),
                             ("profilers", cmd_profilers, "profiler backends")):
        listing = commands.add_parser(noun, help=f"list the registered {what}: name, source, description")
        listing.add_argument("--json", action="store_true")
        listing.set_defaults(func=func)

    build = commands.add_parser("build", help="build an architecture as a VideoUNet and report its size")
    build.add_argument("space", type=Path)
    build.add_argument("--arch", default="reference", help="a named architecture of the space or an ARCH.yaml")
    build.add_argument("--spatial-weights", type=Path, help="local diffusers UNet folder or .safetensors file")
    build.add_argument("--device", default="cpu",
                       help="where to build: cpu, cuda, mps, or meta (count only, allocates nothing)")
    build.add_argument("-o", "--out", type=Path, help="save the built model here (save_pretrained)")
    build.add_argument("--json", action="store_true")
    build.set_defaults(func=cmd_build)

    prune = commands.add_parser("prune", help="prune a pretrained 2D UNet (e.g. SD1.5) to a space's backbone")
    prune.add_argument("source", type=Path, help="a diffusers unet/ folder, a pipeline folder, or a .safetensors file")
    prune.add_argument("--space", type=Path, required=True, help="search space YAML (its backbone is the target)")
    prune.add_argument("-o", "--out", type=Path, required=True, help="new folder for the pruned UNet (safetensors)")
    prune.add_argument("--config", type=Path, help="the UNet config.json of a single .safetensors file")
    prune.add_argument("--importance", choices=["l1", "taylor"], help="channel score (default: the space's prune_from, else l1)")
    prune.add_argument("--calibration-batches", type=int, help="batches for the taylor score (default 2)")
    prune.add_argument("--no-compare", action="store_true", help="skip the output comparison (saves 3 forwards)")
    prune.add_argument("--json", action="store_true", help="print the whole report as JSON")
    prune.set_defaults(func=cmd_prune)

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
    check.add_argument("--warmup", type=int, default=5, help="untimed calls per architecture before timing")
    check.add_argument("--repeats", type=int, default=100,
                       help="timed calls per architecture (at least 3; spread over rounds when models are small)")
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
                      help="option of the proxy, repeatable (distill: steps=20, clips=8, lr=1e-3, report_every=5, "
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
    pcheck = proxy.add_parser("check", help="rank correlation of proxies with a ground truth on a tiny world",
                              description="Kendall tau and Spearman rho (bootstrap intervals) of each proxy against "
                                          "the world's ground truth: long training with another seed and data order, "
                                          "scored on test clips no proxy sees. Writes check.json, architectures.csv, "
                                          "results.csv and scatter.png to --out.")
    pcheck.add_argument("space", type=Path, nargs="?", help="search space (default: the world's)")
    pcheck.add_argument("--world", type=Path, help="a `nas world make` folder (needed by the ground truth)")
    pcheck.add_argument("--proxy", action="append", help="proxy to check, repeatable (default: params, flops, gradnorm, "
                                                         "synflow, naswot, tsens, distill; combo is fitted on the cheap ones)")
    pcheck.add_argument("--samples", type=int, default=14, help="architectures (extremes and named ones first)")
    pcheck.add_argument("--steps", default="5,10,20", help="distill proxy step counts, comma-separated")
    pcheck.add_argument("--reference", default="ground-truth", choices=["ground-truth", "replay"],
                        help="ground-truth (default) or replay: the distill proxy itself trained longer with the same "
                             "seed, clips and batch order (self-referential: only says a learning curve keeps its order)")
    pcheck.add_argument("--reference-steps", type=int, help="default 10x the longest proxy run (replay: 5x)")
    pcheck.add_argument("--proxy-option", action="append", default=[], metavar="KEY=VALUE",
                        help="option of the checked proxies, repeatable; goes to every proxy that takes KEY")
    pcheck.add_argument("--reference-option", action="append", default=[], metavar="KEY=VALUE",
                        help="of the ground truth: lr, batch, eval_timesteps, sample_steps, samples_per_caption, "
                             "guidance, whole_model (true: train the whole model, not only temporal layers)")
    pcheck.add_argument("--cache", type=Path, help="score cache folder (default WORLD/check-cache; 'none': off)")
    pcheck.add_argument("--seed", type=int, default=0)
    pcheck.add_argument("--out", type=Path, default=Path("runs/proxy-check"))
    pcheck.add_argument("--json", action="store_true")
    pcheck.set_defaults(func=cmd_proxy_check)
    world = commands.add_parser("world", help="the tiny world proxies are checked on").add_subparsers(
        dest="action", required=True)
    wmake = world.add_parser("make", help="synthetic clips with known motion, tiny VAE + text encoder, latents, "
                                          "and a spatial backbone trained as an image model")
    wmake.add_argument("out", type=Path, help="new folder")
    wmake.add_argument("--space", type=Path, default=Path("search_spaces/world.yaml"))
    wmake.add_argument("--clips", type=int, default=64, help="search-pool clips")
    wmake.add_argument("--test-clips", type=int, default=16, help="held-out clips (each an unseen caption)")
    wmake.add_argument("--backbone-steps", type=int, default=300)
    wmake.add_argument("--seed", type=int, default=0)
    wmake.add_argument("--json", action="store_true")
    wmake.set_defaults(func=cmd_world_make)
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
    coreml.add_argument("--palettize-mode", choices=("kmeans", "uniform"), default=None,
                        help="default: kmeans if scikit-learn is installed, else uniform")
    coreml.add_argument("--chunks", type=int, default=1,
                        help="split into this many packages (power of two) for the Neural Engine's ~1 GB limit")
    coreml.add_argument("--compute-units", help="time the package on CPU_AND_NE, CPU_AND_GPU, CPU_ONLY or ALL (macOS)")
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
    tiny = data.add_parser("tiny-models", help="write a tiny random VAE + CLIP text encoder/tokenizer (no download)",
                           description="Toy-size AutoencoderKL, CLIPTextModel and CLIPTokenizer as a local "
                                       "pipeline-style folder (vae/, text_encoder/, tokenizer/), fitted to a space: "
                                       "for demos and tests, where SD1.5's own would be used for real.")
    tiny.add_argument("--space", type=Path, required=True, help="search space YAML: text width, tokens, latent channels")
    tiny.add_argument("--calibrate", type=Path, metavar="DIR",
                      help="folder of videos (e.g. from nas data synth) that sets the VAE's scaling_factor")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("-o", "--out", type=Path, required=True)
    tiny.set_defaults(func=cmd_data_tiny_models)
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
            sub.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind,
                             help="overrides the config's value (examples/*.yaml list every key)")
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
    from nas.ops import describe_ops

    _listing("op", describe_ops(), args.json)


def cmd_proxies(args) -> None:
    from nas.search.proxies import describe_proxies

    _listing("proxy", describe_proxies(), args.json)


def cmd_profilers(args) -> None:
    from nas.profile.base import describe_profilers

    _listing("profiler", describe_profilers(), args.json)


def _listing(noun: str, rows: list[dict[str, Any]], as_json: bool) -> None:
    """A registry's rows (name, then the other columns) as JSON keyed by name, or as a table."""
    if as_json:
        print(json.dumps({row["name"]: {k: v for k, v in row.items() if k != "name"} for row in rows}, indent=2))
        return
    columns = [k for k in rows[0] if k != "name"] if rows else []
    cells = [[row["name"], *(v if isinstance(v, str) else json.dumps(v) for v in (row[c] for c in columns))]
             for row in rows]
    _table([noun, *columns], cells)


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


def cmd_prune(args) -> None:
    from nas.prune import prune_unet
    from nas.space import SearchSpace

    space = SearchSpace.load(args.space)
    origin = space.prune_from or {}
    batches = args.calibration_batches or origin.get("calibration_batches", 2)
    if batches < 1:
        raise NasError(f"--calibration-batches must be at least 1, got {batches}")
    _, report = prune_unet(args.source, space.backbone, args.out, config=args.config,
                           importance=args.importance or origin.get("importance", "l1"), calibration_batches=batches,
                           sample_size=(space.video.latent_height, space.video.latent_width),
                           text_tokens=space.text_tokens, compare=not args.no_compare)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(report["summary"])
        print(f"saved to {args.out} (report: {args.out / 'prune_report.json'})")


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
    from nas.cost.table import KEY_COLUMNS, LatencyTable
    from nas.ops import OpKey

    tables = args.tables or sorted(Path("latency_tables").glob("*.csv"))
    if not tables:
        raise NasError("no tables given and none in latency_tables/")
    for path in tables:
        table = LatencyTable.load(path)
        counts = table.rows["status"].value_counts().to_dict()
        print(f"ok  {path}: {len(table.rows)} rows ({', '.join(f'{v} {k}' for k, v in counts.items())}), "
              f"{table.meta['provenance']} on {table.meta['device']} ({table.meta['backend']}, "
              f"{table.meta['precision']})")
        for row in table.rows[table.rows["status"] == "error"].to_dict("records"):
            key = OpKey(*(row[c] for c in KEY_COLUMNS))
            print(f"    error {key.text()}: {row['message'] or 'no message'} (measured again by the next nas profile)")


def cmd_table_check(args) -> None:
    from nas.profile.check import check_table

    if args.samples < 2:
        raise NasError(f"--samples must be at least 2, got {args.samples}")
    if args.warmup < 0 or args.repeats < 1:
        raise NasError(f"--warmup must be >= 0 and --repeats >= 1, got {args.warmup} and {args.repeats}")
    report = check_table(args.space, args.table, args.samples, args.seed, warmup=args.warmup, repeats=args.repeats,
                         progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['samples']} architectures of {report['space']} on {report['table']}")
    for what, prefix in (("latency", ""), ("memory", "memory_")):
        print(f"{what:8s} within 10%: {report[prefix + 'within_10pct']:.0%}  MAPE: {report[prefix + 'mape']:.1%}  "
              f"Kendall tau: {report[prefix + 'kendall_tau']:.3f}  "
              f"predicted/measured: {report[prefix + 'mean_ratio']:.3f} on average")


def cmd_table_time(args) -> None:
    from nas.profile.coreml_kit import time_packages

    print(f"wrote {time_packages(args.export_dir, args.compute_units, warmup=args.warmup, repeats=args.repeats)}")


def cmd_table_import(args) -> None:
    from nas.profile.coreml_kit import import_results

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
    from nas.ops.key import parse_params

    if args.backend == "coreml" and args.export_only:
        from nas.profile.coreml_kit import export_packages

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
        frame = pd.read_csv(args.plan, dtype=str, keep_default_na=False)
        if list(frame.columns) != KEY_COLUMNS:
            raise NasError(f"{args.plan}: a plan has the columns {', '.join(KEY_COLUMNS)}")
        try:
            keys = [OpKey.of(op, c, f, h, w, parse_params(params))
                    for op, c, f, h, w, params in frame.itertuples(index=False)]
        except ValueError as exc:
            raise NasError(f"{args.plan}: {exc}") from None
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
    if args.json:  # what cannot run has no price: null, never a stand-in number (nor JSON's non-standard Infinity)
        print(json.dumps(_no_infinity({"arch_id": architecture.id, "table": str(args.table),
                                       "provenance": table.meta["provenance"], **prediction.as_dict()}), indent=2))
        return
    p = prediction
    print(f"arch {architecture.id} on {args.table} ({table.meta['provenance']}, {table.meta['device']})")
    if p.runs:
        print(f"latency {p.latency_ms:,.1f} ms = {p.steps} x {p.unet_ms:,.1f} ms UNet + {p.fixed_ms:,.1f} ms fixed parts")
        fixed = (f" + {p.fixed_mb:,.1f} MB fixed parts ({', '.join(p.fixed_parts)}: weights and working set, resident)"
                 if p.fixed_parts else " (no fixed parts in the table: VAE decoder and text encoder not counted)")
        print(f"memory  {p.memory_mb:,.1f} MB = {p.weights_mb:,.1f} MB weights + {p.activation_mb:,.1f} MB activations"
              + fixed)
    else:
        print("the table says this architecture cannot run on the device (see status): no latency or memory")
    print("coverage: " + ", ".join(f"{v} {k}" for k, v in p.coverage.items()))
    print("placement: " + ", ".join(f"{v} {k}" for k, v in p.placement.items()))
    _table(["slot", "choice", "latency_ms", "working_set_mb", "coverage", "status", "placement"],
           [[r["slot"], r["choice"], f"{r['latency_ms']:.2f}" if r["status"] == "ok" else "-",
             f"{r['working_set_mb']:.1f}" if r["status"] == "ok" else "-", r["coverage"],
             r["status"], r.get("placement", "-") or "-"] for r in p.slots])
    for r in p.slots:
        if r["status"] == "error":
            print(f"{r['slot']}: {r['choice']} failed to measure: {r['message'] or 'no message'} "
                  "(fix the op and re-run nas profile: error rows are measured again)")


def _no_infinity(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _no_infinity(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_infinity(v) for v in value]
    return value


def cmd_search(args) -> None:
    from nas.search.job import describe, search
    from nas.search.picks import describe_picks

    summary = search(args.space, args.table, args.out, latency_budget=args.latency_budget,
                     memory_budget=args.memory_budget, steps=args.steps, proxy=args.proxy, sampler=args.sampler,
                     trials=args.trials, storage=args.storage, study=args.study, workers=args.workers, seed=args.seed,
                     screen=args.screen, pruner=args.pruner, progress=not args.json,
                     proxy_options=_key_values(args.proxy_option, "--proxy-option"))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(describe(summary))
        written = ["pareto.csv", "architectures/", "picks/" if summary["picks"] else "",
                   "trials.csv" if "trials" in summary else "", "pareto.png", "pareto.html", "summary.json"]
        print(f"wrote {args.out}/: {', '.join(w for w in written if w)}")
        if summary["picks"]:
            print("picks (the next commands build and distill each):")
            print(describe_picks(summary["picks"]))
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
    import inspect

    from nas.search.proxies import check_options, get_proxy
    from nas.search.proxy_check import PROXIES, proxy_check, write_outputs
    from nas.space import SearchSpace

    proxies = tuple(args.proxy or PROXIES)
    for name in proxies:
        try:
            get_proxy(name)
        except KeyError as exc:
            raise NasError(f"--proxy: {exc.args[0]}") from None
    try:
        steps = tuple(int(s) for s in args.steps.split(","))
    except ValueError:
        raise NasError(f"--steps {args.steps}: expected comma-separated step counts, e.g. 5,10,20") from None
    given = _key_values(args.proxy_option, "--proxy-option")
    if "steps" in given:  # the distill proxy's steps: the reference's follow unless --reference-steps says otherwise
        value = given.pop("steps")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise NasError(f"--proxy-option steps={value}: expected a positive whole number")
        steps = (value,)
    options: dict[str, dict[str, Any]] = {name: {} for name in proxies}
    for key, value in given.items():
        takers = []
        for name in proxies:
            try:
                takes = key in inspect.signature(get_proxy(name).__init__).parameters
            except KeyError as exc:
                raise NasError(f"--proxy: {exc.args[0]}") from None
            if takes:
                options[name][key] = value
                takers.append(name)
        if not takers:
            raise NasError(f"--proxy-option {key}: none of the checked proxies ({', '.join(proxies)}) takes it")
    options = {name: check_options(get_proxy(name), values) for name, values in options.items()}
    cache = None if str(args.cache) == "none" else args.cache or (args.world / "check-cache" if args.world else None)
    report = proxy_check(SearchSpace.load(args.space) if args.space else None, args.world, proxies, args.samples,
                         args.seed, steps, args.reference, args.reference_steps, options, cache,
                         progress=not args.json,
                         reference_options=_key_values(args.reference_option, "--reference-option"))
    paths = write_outputs(report, args.out)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    ref = report["reference"]
    print(f"{len(report['architectures'])} architectures of {report['space']}; reference: {ref['kind']}, "
          f"{ref['steps']} steps, seed {ref['provenance']['seed']}")
    if report["independence_problems"]:
        print(f"warning: the reference is not independent of the proxy: {'; '.join(report['independence_problems'])}")
    _table(["proxy", "metric", "tau", "tau 90% CI", "rho", "rho 90% CI", "cost vs reference"],
           [[r["proxy"], r["metric"], r["kendall_tau"], r["tau_ci90"], r["spearman_rho"], r["rho_ci90"],
             f"{r['relative_cost']:.4f}"] for r in report["results"]])
    best = report["recommended"]
    print("recommended (<= 1/10 of the reference's cost, best tau on held-out denoising): " +
          ("none" if best is None else f"{best['proxy']}, tau {best['kendall_tau']}"))
    print(f"outputs: {paths['json'].parent}")


def cmd_world_make(args) -> None:
    from nas.data.world import WorldRecipe, make_world
    from nas.space import SearchSpace

    recipe = WorldRecipe(clips=args.clips, test_clips=args.test_clips, backbone_steps=args.backbone_steps,
                         seed=args.seed)
    info = make_world(args.out, SearchSpace.load(args.space), recipe, progress=not args.json)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    b, m = info["backbone"], info["motion_calibration"]
    print(f"world {args.out}: {info['search_clips']} search clips, {info['test_clips']} test clips with unseen "
          f"captions; backbone held-out loss {b['held_out_loss_before']} -> {b['held_out_loss_after']} "
          f"({b['steps']} steps); latent trajectory vs true motion: error {m['mean_error_latent_px']} of "
          f"{m['mean_true_travel_latent_px']} latent px travel, direction cosine {m['direction_cosine']}; "
          f"{info['seconds']} s")


def cmd_export_coreml(args) -> None:
    from nas.export import export_coreml

    model = _load_or_build(args)
    summary = export_coreml(model, args.out, target=args.target, precision=args.precision, batch=args.batch,
                            palettize=args.palettize, palettize_mode=args.palettize_mode, chunks=args.chunks,
                            compute_units=args.compute_units, runs=args.runs, attention=args.attention,
                            space_path=args.space)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"converted {summary['model']['space']} ({summary['model']['params']:,} params) for {summary['target']} "
          f"{summary['precision']} in {summary['convert_s']} s; peak RSS {summary['peak_rss_mb']:,} MB")
    _table(["package", "ops", "weights", "palettized", "inputs", "outputs"],
           [[p["path"], p["ops"], f"{p['weight_bytes'] / 2**20:,.1f} MiB", p["palettized_weights"],
             _features(p["inputs"]), _features(p["outputs"])] for p in summary["packages"]])
    if summary["palettize"] and summary["palettize"].get("note"):
        print(f"note: {summary['palettize']['note']}")
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
        print(f"{t['compute_units']}: {t['latency_p50_ms']:.1f} ms per call (p50 of {t['samples']}, p90 "
              f"{t['latency_p90_ms']:.1f}), load {t['load_s']} s")
    print(f"summary: {args.out.with_suffix('.json')}; Mac kit: {args.out.parent} (nas table time {args.out.parent})")


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
    from nas.model.loading import load_pretrained

    return load_pretrained(VideoUNet, args.model)


def _features(features) -> str:
    return ", ".join(f"{f['name']}{tuple(f['shape'])}" for f in features)
def cmd_data_synth(args) -> None:
    from nas.data import synth_dataset

    csv = synth_dataset(args.out, clips=args.clips, images=args.images, frames=args.frames, height=args.height,
                        width=args.width, fps=args.fps, seed=args.seed)
    print(f"wrote {args.clips} clips and {args.images} images to {args.out} (captions: {csv})")


def cmd_data_tiny_models(args) -> None:
    from nas.data.tiny_models import calibration_frames, write_tiny_models
    from nas.space import SearchSpace

    space = SearchSpace.load(args.space)
    video = space.video
    if video.latent_scale != 8:
        raise NasError(f"{args.space}: the tiny VAE downsamples 8x, the space's latent_scale is {video.latent_scale}")
    images = calibration_frames(args.calibrate, video.height, video.width) if args.calibrate else None
    write_tiny_models(args.out, width=space.cross_attention_dim, tokens=space.text_tokens,
                      latent_channels=video.latent_channels, images=images, seed=args.seed)
    print(f"wrote {args.out}/vae, text_encoder, tokenizer (text width {space.cross_attention_dim}, random weights)")


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
