"""``VideoPipeline``: a trained run as a diffusers ``DiffusionPipeline`` (text -> frames in a few steps).

A finished ``nas train`` run folder is a diffusers pipeline folder: ``model/`` (the VideoUNet,
safetensors), ``scheduler/`` and a ``model_index.json`` naming this class, so diffusers' own
``DiffusionPipeline.from_pretrained`` loader (inherited, not rewritten) opens it::

    from nas.pipeline import VideoPipeline
    pipe = VideoPipeline.from_pretrained(RUN, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer)
    frames = pipe("a red square moving left", num_inference_steps=4).frames[0]   # (F, H, W, 3) in [0, 1]

(``DiffusionPipeline.from_pretrained(RUN)`` itself looks the class name up in the diffusers
package, which only knows its own classes, or runs code from the folder with
``trust_remote_code``; a run folder carries no code, so the class is named by the import.)

The VAE and text encoder are optional components: a run does not copy them, so they are passed
in (or put as ``vae/``, ``text_encoder/``, ``tokenizer/`` folders into the run).

The denoising loop is written out in :func:`sample_latents`: start from Gaussian noise, and at
each of the scheduler's timesteps predict the noise and let the diffusers scheduler (DDIM,
"trailing" timestep spacing, so 4 steps are t = 999, 749, 499, 249) step to the next latent.
No classifier-free guidance: one UNet pass per step, which is what the adversarial stage
trains for (it samples with the same loop); ``nas generate`` (:mod:`nas.generate`) runs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, DiffusionPipeline
from diffusers.utils import BaseOutput

from nas.errors import NasError
from nas.model import VideoUNet  # imported here: diffusers resolves the model's module from sys.modules


def few_step_scheduler(config) -> DDIMScheduler:
    """DDIM over the run's training noise schedule; trailing spacing starts at the last timestep."""
    return DDIMScheduler.from_config(config, timestep_spacing="trailing", set_alpha_to_one=True)


@torch.no_grad()
def sample_latents(
    model: VideoUNet,
    scheduler: DDIMScheduler,
    text: torch.Tensor,
    steps: int,
    noise: torch.Tensor,
    guidance: float = 1.0,
    empty_text: torch.Tensor | None = None,
) -> torch.Tensor:
    """Denoise ``noise`` (B, C, F, h, w) conditioned on ``text`` (B, T, D) in ``steps`` model passes.

    With ``guidance`` != 1, classifier-free guidance against ``empty_text`` (the empty caption's
    embedding, broadcast to ``text``): two model calls a step. The deployed 4-step model runs without;
    the quality checks compare against a guided many-step sampler.
    """
    scheduler.set_timesteps(steps)
    latents = noise * scheduler.init_noise_sigma
    empty = empty_text.expand_as(text) if guidance != 1.0 else None
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        timestep = t.to(latents.device)
        noise_pred = model(model_input, timestep, text).sample
        if empty is not None:
            unconditional = model(model_input, timestep, empty).sample
            noise_pred = unconditional + guidance * (noise_pred - unconditional)
        latents = scheduler.step(noise_pred, t, latents).prev_sample
    return latents


@dataclass
class VideoPipelineOutput(BaseOutput):
    """``frames``: (B, F, H, W, 3) floats in [0, 1] (``output_type="np"``), or the latents (B, C, F, h, w)."""

    frames: np.ndarray | torch.Tensor


class VideoPipeline(DiffusionPipeline):
    """Few-step text-to-video with a VideoUNet; components as in diffusers' text-to-video pipelines."""

    model_cpu_offload_seq = "text_encoder->model->vae"
    _optional_components = ["vae", "text_encoder", "tokenizer"]

    def __init__(self, model, scheduler, vae=None, text_encoder=None, tokenizer=None):
        super().__init__()
        self.register_modules(
            model=model,
            scheduler=few_step_scheduler(scheduler.config),
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
        )

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        num_inference_steps: int = 4,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
    ):
        """Denoise from Gaussian noise (``generator`` on the CPU, as ``nas generate --seed``) in ``num_inference_steps``."""
        from nas.data.pretrained import encode_text, vae_scale

        if self.text_encoder is None or self.tokenizer is None:
            raise NasError("VideoPipeline: no text_encoder/tokenizer (pass them to from_pretrained)")
        if num_inference_steps < 1:
            raise NasError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        config, device = self.model.config, self.model.device
        width = self.model.spatial.config.cross_attention_dim
        if self.text_encoder.config.hidden_size != width:
            raise NasError(f"text width {self.text_encoder.config.hidden_size}, the model cross-attends to {width}")
        text, _ = encode_text(self.tokenizer, self.text_encoder, prompts, config.text_tokens)
        if latents is None:
            latents = torch.randn(
                len(prompts),
                self.model.spatial.config.in_channels,
                config.frames,
                config.sample_height,
                config.sample_width,
                generator=generator,
            )
        latents = sample_latents(self.model, self.scheduler, text.to(device), num_inference_steps, latents.to(device))
        if output_type == "latent":
            frames = latents
        elif self.vae is None:
            raise NasError("VideoPipeline: no vae to decode with (pass one, or output_type='latent')")
        else:
            scaling, shift = vae_scale(self.vae)
            videos = []
            for clip in latents:
                scaled = clip.permute(1, 0, 2, 3).to(self.vae.device, self.vae.dtype) / scaling + shift  # (F, C, h, w)
                pixels = torch.cat([self.vae.decode(chunk).sample for chunk in scaled.split(8)])
                videos.append(((pixels.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu())
            frames = torch.stack(videos)
            frames = frames.numpy() if output_type == "np" else frames
        self.maybe_free_model_hooks()
        return VideoPipelineOutput(frames=frames) if return_dict else (frames,)


def write_pipeline_index(run: str | Path) -> None:
    """Make a run folder (``model/`` + ``scheduler/``) loadable by ``DiffusionPipeline.from_pretrained``.

    The model's entry is its full module path, as diffusers' ``save_pretrained`` records a component
    defined outside the libraries it knows."""
    import diffusers

    run = Path(run)
    scheduler = json.loads((run / "scheduler" / "scheduler_config.json").read_text())["_class_name"]
    index = {
        "_class_name": VideoPipeline.__name__,
        "_diffusers_version": diffusers.__version__,
        "model": [VideoUNet.__module__, VideoUNet.__name__],
        "scheduler": ["diffusers", scheduler],
        "vae": [None, None],
        "text_encoder": [None, None],
        "tokenizer": [None, None],
    }
    (run / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
