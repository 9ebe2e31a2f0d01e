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
    import yaml

    from nas.train import AdversarialConfig, DistillConfig, adversarial, distill, load_config

    flags = ["data", "out", *args.own, "max_steps", "batch_size", "lr", "seed", "mixed_precision"]
    flags += ["freeze_spatial"] if args.stage == "distill" else []
    overrides = {name: getattr(args, name) for name in flags if getattr(args, name) is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise NasError(f"--set {item}: expected KEY=VALUE")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise NasError(f"--set {item}: VALUE is not valid YAML") from None
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
