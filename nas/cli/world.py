"""``nas world make``: the tiny world that quality proxies are checked on."""

from __future__ import annotations

import json
from pathlib import Path

from nas.cli.aliases import deprecated_flag


def add_parser(commands) -> None:
    world = commands.add_parser("world", help="the tiny world proxies are checked on").add_subparsers(
        dest="action", required=True
    )
    wmake = world.add_parser(
        "make",
        help="synthetic clips with known motion, tiny VAE + text encoder, latents, "
        "and a spatial backbone trained as an image model",
    )
    wmake.add_argument("out", type=Path, help="new folder")
    wmake.add_argument("--space", type=Path, default=Path("search_spaces/world.yaml"))
    wmake.add_argument("--clips", type=int, default=96, help="search-pool clips")
    wmake.add_argument("--test-clips", type=int, default=16, help="held-out clips (each an unseen caption)")
    wmake.add_argument(
        "--position-clips", type=int, default=16, help="held-out clips (seen captions, unseen starting positions)"
    )
    wmake.add_argument(
        "--content", default="both", help="shapes, digits (scikit-learn's handwritten digits) or both (default)"
    )
    wmake.add_argument("--digits", type=int, default=10, help="digit classes drawn (0 .. N-1, at most 10)")
    wmake.add_argument("--backbone-train-steps", type=int, default=1200, help="optimizer steps of the spatial backbone")
    deprecated_flag(wmake, "--backbone-steps", "--backbone-train-steps", type=int)
    wmake.add_argument("--seed", type=int, default=0)
    wmake.add_argument("--json", action="store_true")
    wmake.set_defaults(func=cmd_world_make)


def cmd_world_make(args) -> None:
    from nas.data.world import WorldRecipe, make_world
    from nas.space import SearchSpace

    recipe = WorldRecipe(
        clips=args.clips,
        test_clips=args.test_clips,
        position_clips=args.position_clips,
        content=args.content,
        digits=args.digits,
        backbone_train_steps=args.backbone_train_steps,
        seed=args.seed,
    )
    info = make_world(args.out, SearchSpace.load(args.space), recipe, progress=not args.json)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    b, m = info["backbone"], info["motion_calibration"]
    print(
        f"world {args.out}: {info['search_clips']} search clips, {info['test_clips']} test clips with unseen "
        f"captions, {info['position_clips']} at unseen starting positions; backbone held-out loss {b['held_out_loss_before']} -> {b['held_out_loss_after']} "
        f"({b['train_steps']} steps); latent trajectory vs true motion: error {m['mean_error_latent_px']} of "
        f"{m['mean_true_travel_latent_px']} latent px travel, direction cosine {m['direction_cosine']}; "
        f"{info['seconds']} s"
    )
