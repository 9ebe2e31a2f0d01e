"""``nas generate``: text -> video with a trained run, in a few steps and without guidance.

The denoising loop is written out in :func:`sample_latents`: start from Gaussian noise, and at
each of the scheduler's timesteps predict the noise and let the diffusers scheduler (DDIM,
"trailing" timestep spacing, so 4 steps are t = 999, 749, 499, 249) step to the next latent.
No classifier-free guidance: one UNet pass per step, which is what the adversarial stage
trains for. The latents are decoded frame by frame by the VAE and written as H.264 .mp4.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDIMScheduler
from safetensors.torch import save_file

from nas.errors import NasError
from nas.model import VideoUNet
from nas.model.loading import load_pretrained


def few_step_scheduler(config) -> DDIMScheduler:
    """DDIM over the run's training noise schedule; trailing spacing starts at the last timestep."""
    return DDIMScheduler.from_config(config, timestep_spacing="trailing", set_alpha_to_one=True)


@torch.no_grad()
def sample_latents(model: VideoUNet, scheduler: DDIMScheduler, text: torch.Tensor, steps: int,
                   noise: torch.Tensor) -> torch.Tensor:
    """Denoise ``noise`` (B, C, F, h, w) conditioned on ``text`` (B, T, D) in ``steps`` model passes."""
    scheduler.set_timesteps(steps)
    latents = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        noise_pred = model(model_input, t.to(latents.device), text).sample
        latents = scheduler.step(noise_pred, t, latents).prev_sample
    return latents


def load_run(run: str | Path) -> tuple[VideoUNet, DDIMScheduler]:
    """The model (``run/model``) and few-step scheduler (``run/scheduler``) of a finished run."""
    run = Path(run)
    for part in ("model", "scheduler"):
        if not (run / part).is_dir():
            raise NasError(f"{run}: no {part}/ folder (is this a finished `nas train` run?)")
    model = load_pretrained(VideoUNet, run / "model").eval()
    return model, few_step_scheduler(DDIMScheduler.load_config(run / "scheduler"))


def generate(model: str | Path, prompt: str, text_encoder: str | Path, out: str | Path, vae: str | Path | None = None,
             steps: int = 4, seed: int = 0, fps: int = 8, latents_only: bool = False, device: str = "cpu") -> Path:
    """Write ``out``: an .mp4 (needs ``vae``) or, with ``latents_only``, a .safetensors of the latents."""
    from nas.data.media import to_uint8, write_video
    from nas.data.pretrained import encode_text, load_text_encoder, load_vae, vae_scale

    if steps < 1:
        raise NasError(f"--steps must be at least 1, got {steps}")
    if not latents_only and vae is None:
        raise NasError("--vae is needed to decode a video (or pass --latents-only)")
    unet, scheduler = load_run(model)
    unet.to(device)
    config = unet.config
    tokenizer, encoder = load_text_encoder(text_encoder)
    if encoder.config.hidden_size != unet.spatial.config.cross_attention_dim:
        raise NasError(f"{text_encoder}: text width {encoder.config.hidden_size}, the model cross-attends to "
                       f"{unet.spatial.config.cross_attention_dim}")
    text, _ = encode_text(tokenizer, encoder, [prompt], config.text_tokens)
    channels = unet.spatial.config.in_channels
    noise = torch.randn(1, channels, config.frames, config.sample_height, config.sample_width,
                        generator=torch.Generator().manual_seed(seed))
    latents = sample_latents(unet, scheduler, text.to(device), steps, noise.to(device))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if latents_only:
        save_file({"latents": latents.cpu().contiguous()}, str(out))
        return out
    autoencoder = load_vae(vae).to(device)
    scaling, shift = vae_scale(autoencoder)
    frames = latents[0].permute(1, 0, 2, 3) / scaling + shift  # (F, C, h, w)
    with torch.no_grad():
        pixels = torch.cat([autoencoder.decode(chunk).sample for chunk in frames.split(8)])
    write_video(out, to_uint8(pixels), fps=fps)
    return out
