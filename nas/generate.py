"""``nas generate``: text -> video with a trained run, in a few steps and without guidance.

The run opens as its diffusers pipeline (:class:`nas.pipeline.VideoPipeline`, whose denoising
loop is :func:`nas.pipeline.sample_latents`); the latents are decoded frame by frame by the VAE
and written as H.264 .mp4, or kept as a .safetensors of latents.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import DDIMScheduler
from safetensors.torch import save_file

from nas import outputs
from nas.errors import NasError
from nas.model import VideoUNet
from nas.model.loading import load_pretrained
from nas.options import renamed_kwargs


def load_pipeline(run: str | Path, text_encoder: str | Path, vae: str | Path | None = None):
    """The run as a ``VideoPipeline`` (diffusers' loader), with the VAE and text encoder from local folders."""
    from nas.data.pretrained import load_text_encoder, load_vae
    from nas.pipeline import VideoPipeline

    run = Path(run)
    for part in ("model", "scheduler"):
        if not (run / part).is_dir():
            raise NasError(f"{run}: no {part}/ folder (is this a finished `nas train` run?)")
    model = load_pretrained(VideoUNet, run / "model").eval()  # first: pickles, truncated files, other classes
    tokenizer, encoder = load_text_encoder(text_encoder)
    if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") == "1":  # hub convention; nas sets it unless -v
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
    parts = {
        "model": model,
        "vae": load_vae(vae) if vae is not None else None,
        "text_encoder": encoder,
        "tokenizer": tokenizer,
    }
    try:
        if (run / "model_index.json").is_file():
            pipe = VideoPipeline.from_pretrained(run, **parts, local_files_only=True, use_safetensors=True)
        else:  # a run from before runs were pipeline folders: built from its parts, its folder left as it is
            pipe = VideoPipeline(scheduler=DDIMScheduler.from_pretrained(run / "scheduler"), **parts)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise NasError(f"{run}: cannot load the run ({str(exc).strip().splitlines()[0]})") from None
    width = pipe.model.spatial.config.cross_attention_dim
    if encoder.config.hidden_size != width:
        raise NasError(f"{text_encoder}: text width {encoder.config.hidden_size}, the model cross-attends to {width}")
    return pipe


@renamed_kwargs(steps="sampling_steps")
def generate(
    model: str | Path,
    prompt: str,
    text_encoder: str | Path,
    out: str | Path,
    vae: str | Path | None = None,
    sampling_steps: int = 4,
    seed: int = 0,
    fps: int = 8,
    latents_only: bool = False,
    device: str = "cpu",
) -> Path:
    """Write ``out``: an .mp4 (needs ``vae``) or, with ``latents_only``, a .safetensors of the latents.

    The same frames as ``VideoPipeline.from_pretrained(model, ...)(prompt, sampling_steps,
    generator=torch.Generator().manual_seed(seed))``: this is that call, then the file."""
    from nas.data.media import write_video

    if sampling_steps < 1:
        raise NasError(f"--sampling-steps must be at least 1, got {sampling_steps}")
    if not latents_only and vae is None:
        raise NasError("--vae is needed to decode a video (or pass --latents-only)")
    outputs.claim((), outputs.files_of(model, text_encoder, vae), named=[out])
    pipe = load_pipeline(model, text_encoder, None if latents_only else vae).to(device)
    result = pipe(
        prompt,
        num_inference_steps=sampling_steps,
        generator=torch.Generator().manual_seed(seed),
        output_type="latent" if latents_only else "np",
    ).frames
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if latents_only:
        save_file({"latents": result.cpu().contiguous()}, str(out))
    else:
        write_video(out, (result[0] * 255).round().astype("uint8"), fps=fps)
    return out
