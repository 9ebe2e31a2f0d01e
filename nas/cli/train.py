"""``nas train distill|adversarial|decoder``: a training stage from a config YAML, flags overriding it."""

from __future__ import annotations

import json
from pathlib import Path

STAGES = {
    "distill": (
        "stage 1: the searched architecture into a full video model (+ teacher distillation)",
        ["space", "arch", "teacher", "spatial_weights"],
    ),
    "adversarial": ("stage 2: adversarial fine-tuning to a few-step generator", ["init"]),
    "decoder": ("recovery of a pruned VAE decoder (`nas prune --decoder`) by distillation", ["init", "teacher"]),
}
COMMON = (("max_steps", int), ("batch_size", int), ("lr", float), ("seed", int), ("mixed_precision", str))


def add_parser(commands) -> None:
    train = commands.add_parser("train", help="train a model").add_subparsers(dest="action", required=True)
    for stage, (help_text, own) in STAGES.items():
        sub = train.add_parser(stage, help=help_text)
        sub.add_argument("--config", type=Path, help="stage config YAML (see examples/); flags override it")
        for name in ["data", "out", *own]:
            sub.add_argument(f"--{name.replace('_', '-')}", dest=name)
        if stage == "distill":
            sub.add_argument("--freeze-spatial", action="store_const", const=True, dest="freeze_spatial")
        for name, kind in COMMON:
            sub.add_argument(
                f"--{name.replace('_', '-')}",
                dest=name,
                type=kind,
                help="overrides the config's value (examples/*.yaml list every key)",
            )
        sub.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override any config key (VALUE read as YAML); repeatable",
        )
        sub.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
        sub.add_argument(
            "--stop-after",
            type=int,
            metavar="STEP",
            help="checkpoint and stop after STEP (e.g. a time-limited job); --resume continues",
        )
        sub.set_defaults(func=cmd_train, stage=stage, own=own)


def cmd_train(args) -> None:
    from nas.options import key_values
    from nas.train.stage import train_stage

    flags = ["data", "out", *args.own, *(name for name, _ in COMMON)]
    flags += ["freeze_spatial"] if args.stage == "distill" else []
    overrides = {name: getattr(args, name) for name in flags if getattr(args, name) is not None}  # flags given
    overrides.update(key_values(args.set, "--set"))
    summary = train_stage(args.stage, args.config, overrides, resume=args.resume, stop_after=args.stop_after)
    print(json.dumps(summary, indent=1))
