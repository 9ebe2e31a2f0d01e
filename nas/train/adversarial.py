"""Stage 2, ``nas train adversarial``: latent adversarial fine-tuning to a few-step generator.

The generator is the stage-1 model. At every step it gets a data clip noised to one of a fixed
set of timesteps -- the ``sampling_steps`` timesteps the few-step sampler visits (4: 999, 749, 499, 249)
-- and makes one-step clean estimates of it. The discriminator (a frozen copy of the stage-1
encoder with trainable heads, see ``discriminator.py``) sees real and estimated latents re-noised
to a random t' < ``disc_max_timestep``, with the text. Losses, each weighted in the config:

- generator: ``loss_adversarial`` = -D(fake) (hinge generator loss), plus ``loss_reconstruction``
  = MSE of the clean estimate to the data clip, which keeps early training anchored;
- discriminator: ``loss_disc`` = relu(1 - D(real)) + relu(1 + D(fake)) (hinge), averaged over heads.

Image and video batches are mixed (``image_ratio``). ``eval_sample_mse`` measures what the stage
is for on clips it never trains on: the generator's ``sampling_steps``-step samples (no guidance) for the
captions of the held-out clips (the last ``holdout`` of the data), as latent MSE to the clip each
caption belongs to; its value at step 0 is the stage-1 model's. (Training clips would reward
memorising them.) It is a regression metric, so it favours the reconstruction term; whether the
adversarial term helps is judged by ``benchmarks/four_step.py`` (motion and distribution distance).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from diffusers import DDPMScheduler

from nas.data import LatentDataset
from nas.errors import NasError
from nas.model import VideoUNet
from nas.model.loading import load_pretrained
from nas.pipeline import few_step_scheduler, sample_latents
from nas.train.config import AdversarialConfig, save_config
from nas.train.discriminator import Discriminator
from nas.train.ema import EMA
from nas.train.loop import RunState, train_loop
from nas.train.runtime import (
    adamw,
    draw_batch,
    finish_run,
    global_randint,
    global_randn,
    lr_at,
    make_accelerator,
    prepare_run_folder,
    set_lr,
)


def adversarial(config: AdversarialConfig, resume: bool = False, stop_after: int | None = None) -> dict:
    """Run (or resume) the adversarial stage; writes ``out/model`` (a ``sampling_steps``-step generator) and friends."""
    accelerator = make_accelerator(config)
    out = prepare_run_folder(config, resume)
    set_seed(config.seed)
    init = Path(config.init)
    if not (init / "model").is_dir() or not (init / "scheduler").is_dir():
        raise NasError(f"{init}: not a finished distill run (needs model/ and scheduler/)")
    model = load_pretrained(VideoUNet, init / "model")
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    noise_schedule = DDPMScheduler.from_pretrained(init / "scheduler", local_files_only=True)
    sampler = few_step_scheduler(noise_schedule.config)
    sampler.set_timesteps(config.sampling_steps)
    fixed_timesteps = sampler.timesteps.clone()  # the generator trains exactly where it will sample
    data = LatentDataset(config.data)
    unet = model.spatial.config
    data.check_model(
        model.config.frames,
        unet.in_channels,
        model.config.sample_height,
        model.config.sample_width,
        unet.cross_attention_dim,
        model.config.text_tokens,
        what=f"{init / 'model'}",
    )
    train_clips, held_out = data.split(config.holdout)
    discriminator = Discriminator(model, unet.cross_attention_dim, config.disc_heads)

    opt_g = adamw(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    opt_d = adamw(discriminator.trainable_parameters(), lr=config.disc_lr, weight_decay=config.weight_decay)
    generator_ddp, discriminator_ddp, opt_g, opt_d = accelerator.prepare(model, discriminator, opt_g, opt_d)
    gen, disc = accelerator.unwrap_model(generator_ddp), accelerator.unwrap_model(discriminator_ddp)
    ema = EMA(gen, config.ema_decay) if config.ema_decay is not None else None
    evaluated = copy.deepcopy(gen) if ema else gen
    alphas = noise_schedule.alphas_cumprod.to(accelerator.device)
    rng = torch.Generator().manual_seed(config.seed)
    state = RunState(
        {"generator": gen, "discriminator_heads": disc.heads},
        {"generator": opt_g, "discriminator": opt_d},
        {"generator": ema} if ema else {},
        rng,
    )
    step = state.resume(out) if resume else 0
    if accelerator.is_main_process:
        save_config(config, out / "config.yaml", "adversarial")
        noise_schedule.save_pretrained(out / "scheduler")
    prompts = held_out[: config.eval_samples]  # never in train_clips: the batches draw from those only

    def train_step(step: int) -> dict[str, torch.Tensor]:
        batch = draw_batch(data, train_clips, rng, config, accelerator)
        real, text, pooled = batch["latents"], batch["text"], batch["text_pooled"]
        b = real.shape[0]
        t = fixed_timesteps[global_randint(len(fixed_timesteps), b, rng, accelerator).cpu()].to(accelerator.device)
        noisy = noise_schedule.add_noise(real, global_randn(tuple(real.shape), rng, accelerator), t)
        t_disc = global_randint(config.disc_max_timestep, b, rng, accelerator)
        noise_disc = global_randn(tuple(real.shape), rng, accelerator)

        # generator: one step to a clean estimate, judged by the (unchanging) discriminator
        disc.heads.requires_grad_(False)
        with accelerator.autocast():
            eps = generator_ddp(noisy, t, text).sample.float()
            a = alphas[t].view(-1, 1, 1, 1, 1)
            fake = (noisy - (1 - a).sqrt() * eps) / a.sqrt()
            fake_noisy = noise_schedule.add_noise(fake, noise_disc, t_disc)
            logits = disc(fake_noisy, t_disc, text, pooled)
            loss_adversarial = -torch.stack([l.float().mean() for l in logits]).mean()
            loss_reconstruction = F.mse_loss(fake, real)
            loss_g = config.loss_adversarial * loss_adversarial + config.loss_reconstruction * loss_reconstruction
        accelerator.backward(loss_g)
        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        set_lr(opt_g, lr_at(step, config))
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        disc.heads.requires_grad_(True)

        # discriminator: real and fake clips, noised alike, in one batch
        real_noisy = noise_schedule.add_noise(real, noise_disc, t_disc)
        with accelerator.autocast():
            logits = discriminator_ddp(
                torch.cat([real_noisy, fake_noisy.detach()]),
                t_disc.repeat(2),
                text.repeat(2, 1, 1),
                pooled.repeat(2, 1),
            )
            loss_disc = torch.stack(
                [
                    F.relu(1 - l[: len(l) // 2].float()).mean() + F.relu(1 + l[len(l) // 2 :].float()).mean()
                    for l in logits
                ]
            ).mean()
        accelerator.backward(loss_disc)
        accelerator.clip_grad_norm_(disc.trainable_parameters(), config.max_grad_norm)
        set_lr(opt_d, lr_at(step, config, config.disc_lr))
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)
        if ema:
            ema.update(gen, step)
        return {
            "loss_adversarial": loss_adversarial,
            "loss_reconstruction": loss_reconstruction,
            "loss_disc": loss_disc,
        }

    def evaluate() -> dict[str, float]:
        if ema:
            ema.copy_to(evaluated)
        mse = held_out_sample_mse(evaluated, sampler, data, prompts, config.sampling_steps, accelerator)
        return {"eval_sample_mse": mse}

    run = train_loop(
        "adversarial",
        config,
        accelerator,
        out,
        state,
        step,
        train_step,
        evaluate if prompts else None,
        shown=("loss_disc", "loss_reconstruction"),
        stop_after=stop_after,
    )
    summary = run.summary(
        "adversarial",
        accelerator.num_processes,
        ("eval_sample_mse",),
        sampling_steps=config.sampling_steps,
        timesteps=fixed_timesteps.tolist(),
    )
    summary = finish_run(accelerator, out, evaluated, ema, summary, {"model": evaluated})
    return summary


@torch.no_grad()
def held_out_sample_mse(
    model: VideoUNet, sampler, data: LatentDataset, clips: list[int], steps: int, accelerator
) -> float:
    """Mean over held-out ``clips`` of the latent MSE between the ``steps``-step sample (no guidance,
    noise fixed by seed 0) for a clip's caption and that clip: lower means samples of unseen clips'
    captions lie closer to them."""
    generator = torch.Generator().manual_seed(0)
    distances = []
    for index in clips:
        item = data.get([index])
        clip = item["latents"].to(accelerator.device)
        noise = torch.randn(clip.shape, generator=generator).to(accelerator.device)
        with accelerator.autocast():
            sample = sample_latents(model, sampler, item["text"].to(accelerator.device), steps, noise)
        distances.append((sample.float() - clip).square().mean().item())
    return sum(distances) / len(distances)
