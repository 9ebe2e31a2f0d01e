"""``nas space show|sample``: what a search space holds."""

from __future__ import annotations

import json
from pathlib import Path

from nas.cli.format import print_table


def add_parser(commands) -> None:
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


def cmd_space_show(args) -> None:
    from nas.space import SearchSpace
    from nas.space.choice import summarize_choices

    space = SearchSpace.load(args.space)
    summary = space.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    video = summary["video"]
    print(f"space {space.name} ({space.source}): {space.num_architectures:,} architectures")
    print(
        f"video {video['frames']} frames x {video['height']}x{video['width']} px "
        f"(latent {video['latent_height']}x{video['latent_width']}); spatial backbone {space.params_spatial:,} params"
    )
    generation = summary["generation"]
    print(
        f"generation: text encoder {generation.get('text_encoder', 'sd15')}, decoder {generation.get('decoder', 'sd15')}"
        f" ({generation.get('decode', 'per_frame').replace('_', ' ')})"
    )
    rows = [
        [s.name, s.path, s.level, s.position, s.channels, f"{s.height}x{s.width}", summarize_choices(s.choices)]
        for s in space.slots
    ]
    print_table(["slot", "path", "level", "pos", "channels", "size", "choices"], rows)
    if space.architectures:
        print("named architectures:", ", ".join(space.architectures))


def cmd_space_sample(args) -> None:
    from nas.outputs import claim
    from nas.space import SearchSpace
    from nas.space.yaml_io import dump_yaml

    claim((), [args.space], named=[args.out])
    architecture = SearchSpace.load(args.space).sample(args.seed)
    if args.out:
        architecture.save(args.out)
        print(f"wrote {args.out} (arch {architecture.id})")
    else:
        print(dump_yaml(architecture.to_dict()), end="")
