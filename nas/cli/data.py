"""``nas data synth|tiny-models|encode``: make and encode training data."""

from __future__ import annotations

from pathlib import Path


def add_parser(commands) -> None:
    data = commands.add_parser("data", help="make and encode training data").add_subparsers(
        dest="action", required=True
    )
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
    tiny = data.add_parser(
        "tiny-models",
        help="write a tiny random VAE + CLIP text encoder/tokenizer (no download)",
        description="Toy-size AutoencoderKL, CLIPTextModel and CLIPTokenizer as a local "
        "pipeline-style folder (vae/, text_encoder/, tokenizer/), fitted to a space: "
        "for demos and tests, where SD1.5's own would be used for real.",
    )
    tiny.add_argument(
        "--space", type=Path, required=True, help="search space YAML: text width, tokens, latent channels"
    )
    tiny.add_argument(
        "--calibrate",
        type=Path,
        metavar="DIR",
        help="folder of videos (e.g. from nas data synth) that sets the VAE's scaling_factor",
    )
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


def cmd_data_synth(args) -> None:
    from nas.data import synth_dataset

    csv = synth_dataset(
        args.out,
        clips=args.clips,
        images=args.images,
        frames=args.frames,
        height=args.height,
        width=args.width,
        fps=args.fps,
        seed=args.seed,
    )
    print(f"wrote {args.clips} clips and {args.images} images to {args.out} (captions: {csv})")


def cmd_data_tiny_models(args) -> None:
    from nas.data.tiny_models import tiny_models_for_space
    from nas.space import SearchSpace

    space = SearchSpace.load(args.space)
    tiny_models_for_space(args.out, space, calibrate=args.calibrate, seed=args.seed)
    print(f"wrote {args.out}/vae, text_encoder, tokenizer (text width {space.cross_attention_dim}, random weights)")


def cmd_data_encode(args) -> None:
    from nas.data import encode_dataset
    from nas.space import SearchSpace

    manifest = encode_dataset(
        args.source,
        args.vae,
        args.text_encoder,
        args.out,
        SearchSpace.load(args.space),
        captions=args.captions,
        stride=args.stride,
        clips_per_video=args.clips_per_video,
        shard_size=args.shard_size,
        batch_frames=args.batch_frames,
        device=args.device,
    )
    kinds = [s["kind"] for s in manifest["samples"]]
    print(
        f"encoded {kinds.count('video')} clips and {kinds.count('image')} images into {args.out} "
        f"({len(manifest['shards'])} shards); skipped {len(manifest['skipped'])}"
    )
    for item in manifest["skipped"]:
        print(f"  skipped {item['file']}: {item['reason']}")
