"""``nas generate``: text -> video with a trained run."""

from __future__ import annotations

from pathlib import Path

from nas.cli.aliases import deprecated_flag


def add_parser(commands) -> None:
    gen = commands.add_parser("generate", help="text -> video with a trained run (few steps, no guidance)")
    gen.add_argument("--model", type=Path, required=True, help="a finished `nas train` run folder")
    gen.add_argument("--text-encoder", type=Path, required=True, help="local CLIP text encoder (+ tokenizer) folder")
    gen.add_argument("--vae", type=Path, help="local AutoencoderKL folder (not needed with --latents-only)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--sampling-steps", type=int, default=4, help="denoising steps of the sampler")
    deprecated_flag(gen, "--steps", "--sampling-steps", type=int)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--fps", type=int, default=8)
    gen.add_argument("--device", default="cpu")
    gen.add_argument("--latents-only", action="store_true", help="write the latents (.safetensors), skip the VAE")
    gen.add_argument("-o", "--out", type=Path, required=True)
    gen.set_defaults(func=cmd_generate)


def cmd_generate(args) -> None:
    from nas.generate import generate

    out = generate(
        args.model,
        args.prompt,
        args.text_encoder,
        args.out,
        vae=args.vae,
        sampling_steps=args.sampling_steps,
        seed=args.seed,
        fps=args.fps,
        latents_only=args.latents_only,
        device=args.device,
    )
    print(f"wrote {out}")
