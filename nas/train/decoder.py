"""``nas train decoder``: recover a pruned VAE decoder by distillation from the decoder it was pruned from.

The student is the AutoencoderKL that ``nas prune --decoder`` wrote (``init``); only its decoder
(with post_quant_conv) trains, its encoder stays as pruned. The teacher is the source VAE. Both
decode the same latents: single frames of an encoded folder (stills and frames of clips, made by
``nas data encode`` with the source VAE). The losses, each weighted in the config:

- ``loss_output``: MSE of the student's frames to the teacher's;
- ``loss_feature``: sum over the decoder's mid block and up blocks of the MSE between the student's
  block outputs (a trainable 1x1 convolution maps a narrower block to the teacher's width) and the
  teacher's, as the UNet's recovery distils block features (BK-SDM).

``eval_psnr`` and ``eval_ssim`` compare the student's frames with the teacher's on every frame of the
held-out samples (the last ``holdout``), never trained on; at step 0 they are the pruned decoder's.
The summary sets them beside a random-init decoder of the student's shape on the same frames.
The run writes ``vae/``: the recovered AutoencoderKL, with the pruned folder's ``prune_report.json``
(the encoder still marked as not recovered) plus a ``recovery`` entry.
"""

from __future__ import annotations

import copy
import json

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from diffusers import AutoencoderKL
from torch import nn

from nas.data import LatentDataset
from nas.data.pretrained import load_vae
from nas.errors import NasError
from nas.model.loading import PRUNE_REPORT, pruned_part
from nas.prune.report import decode, psnr, ssim
from nas.train.config import DecoderConfig, save_config
from nas.train.ema import EMA
from nas.train.loop import RunState, train_loop
from nas.train.runtime import (
    adamw,
    draw_batch,
    finish_run,
    image_split,
    lr_at,
    make_accelerator,
    prepare_run_folder,
    set_lr,
)
from nas.train.teacher import BlockOutputs, Projections, block_channels, same_levels


class Decoding(nn.Module):
    """An AutoencoderKL's decoding of scaled latents, with the outputs of its decoder's mid and up
    blocks (projected to ``teacher``'s widths where given: the student; none: the teacher)."""

    def __init__(self, vae: AutoencoderKL, teacher: dict[str, int] | None = None):
        super().__init__()
        self.vae = vae
        self.channels = decoder_channels(vae)
        if teacher is not None:
            same_levels(self.channels, teacher, "up")
        self.projections = Projections(self.channels, teacher or {})
        self._blocks = BlockOutputs(vae.decoder, self.channels)

    def forward(self, latents: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        frames = decode(self.vae, latents)
        features = self._blocks.take()
        return frames, self.projections.project(features) if len(self.projections) else features


def decoder_channels(vae: AutoencoderKL) -> dict[str, int]:
    """Output width of the decoder's mid block and each up block, by diffusers block name."""
    names = block_channels(list(vae.config.block_out_channels), has_mid=True)
    return {name: width for name, width in names.items() if not name.startswith("down")}


def decoder(config: DecoderConfig, resume: bool = False, stop_after: int | None = None) -> dict:
    """Run (or resume) the decoder's recovery; writes ``out/vae`` (the recovered AutoencoderKL) and friends."""
    accelerator = make_accelerator(config)
    out = prepare_run_folder(config, resume)
    set_seed(config.seed)
    data = LatentDataset(config.data)
    teacher_vae = load_vae(config.teacher).to(accelerator.device)
    vae = load_vae(config.init)
    _check(config, data, teacher_vae, vae)
    vae.requires_grad_(False)
    for part in (vae.decoder, vae.post_quant_conv):
        part.requires_grad_(True).train()
    # what gets saved: the EMA weights if any (a copy made before the student's hooks are set)
    evaluated = copy.deepcopy(vae).eval() if config.ema_decay is not None else vae
    teacher = Decoding(teacher_vae).to(accelerator.device)
    student = Decoding(vae, teacher.channels if config.loss_feature else None)
    train_pool, held_out = image_split(data, config.holdout)
    held_latents = held_out_frames(data, held_out, accelerator.device)
    with torch.no_grad():  # the teacher's frames of the held-out latents: the same at every evaluation
        held_reference = [teacher(z)[0] for z in held_latents.split(config.batch_size)] if held_out else []
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = adamw(params, lr=config.lr, weight_decay=config.weight_decay)
    student_ddp, optimizer = accelerator.prepare(student, optimizer)
    raw = accelerator.unwrap_model(student_ddp)
    ema = EMA(raw.vae, config.ema_decay) if config.ema_decay is not None else None
    generator = torch.Generator().manual_seed(config.seed)
    state = RunState({"student": raw}, {"student": optimizer}, {"student": ema} if ema else {}, generator)
    weights = {"loss_output": config.loss_output, "loss_feature": config.loss_feature}

    def train_step(step: int) -> dict[str, torch.Tensor]:
        latents = draw_batch(data, train_pool, generator, config, accelerator, "frame")["latents"][:, :, 0]
        with torch.no_grad():
            reference, reference_features = teacher(latents)
        with accelerator.autocast():
            frames, features = student_ddp(latents)
            losses = {"loss_output": F.mse_loss(frames.float(), reference.float())}
            if config.loss_feature:
                losses["loss_feature"] = sum(
                    F.mse_loss(f.float(), reference_features[n].float()) for n, f in features.items()
                )
            loss = sum(weights[name] * value for name, value in losses.items())
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, config.max_grad_norm)
        set_lr(optimizer, lr_at(step, config))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema:
            ema.update(raw.vae, step)
        return {"loss": loss, **losses}

    def evaluate(model: AutoencoderKL | None = None) -> dict[str, float]:
        if model is None:
            model = evaluated
            if ema:
                ema.copy_to(evaluated)
        with torch.no_grad():
            frames = torch.cat([decode(model, z) for z in held_latents.split(config.batch_size)])
        reference = torch.cat(held_reference)
        return {"eval_psnr": psnr(frames, reference), "eval_ssim": ssim(frames, reference)}

    random = {}
    if held_out:
        with torch.random.fork_rng():  # the run's own random state stays as set_seed left it
            torch.manual_seed(config.seed + 1)
            random = evaluate(AutoencoderKL.from_config(vae.config).to(accelerator.device).eval())
    step = state.resume(out) if resume else 0
    if accelerator.is_main_process:
        save_config(config, out / "config.yaml", "decoder")
    run = train_loop(
        "decoder",
        config,
        accelerator,
        out,
        state,
        step,
        train_step,
        evaluate if held_out else None,
        shown=("loss_output",),
        stop_after=stop_after,
    )
    summary = run.summary(
        "decoder",
        accelerator.num_processes,
        ("eval_psnr", "eval_ssim"),
        eval_psnr_random=random.get("eval_psnr"),
        eval_ssim_random=random.get("eval_ssim"),
        held_out_frames=len(held_latents) if held_out else 0,
        loss_last=run.log.last("loss"),
    )
    summary = finish_run(accelerator, out, evaluated, ema, summary, {"vae": evaluated}, pipeline=False)
    if accelerator.is_main_process and run.finished:
        report = pruned_part(config.init) or {}
        report["recovery"] = {"run": str(out), "teacher": config.teacher, "data": config.data, **summary}
        (out / "vae" / PRUNE_REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return summary


def _check(config: DecoderConfig, data: LatentDataset, teacher: AutoencoderKL, student: AutoencoderKL) -> None:
    """One line, before training, where the data, the teacher and the student do not decode alike."""
    m = data.manifest
    for what, vae in ((config.teacher, teacher), (config.init, student)):
        if vae.config.latent_channels != m["latent_channels"]:
            raise NasError(
                f"{what}: {vae.config.latent_channels} latent channels, the data in {config.data} "
                f"{m['latent_channels']} (a decoder of another latent width)"
            )
    scaling = m.get("scaling_factor", teacher.config.scaling_factor)
    if abs(scaling - teacher.config.scaling_factor) > 1e-6 * abs(scaling):
        raise NasError(
            f"{config.data}: latents scaled by {scaling}, the teacher's scaling_factor is "
            f"{teacher.config.scaling_factor} (encode the data with the teacher VAE)"
        )
    if student.config.scaling_factor != teacher.config.scaling_factor:
        raise NasError(
            f"{config.init}: scaling_factor {student.config.scaling_factor}, the teacher's "
            f"{teacher.config.scaling_factor} (not a decoder pruned from it)"
        )


def held_out_frames(data: LatentDataset, samples: list[int], device) -> torch.Tensor | None:
    """Every frame of the ``samples`` (a still has one) as latents (N, C, h, w); None for no samples."""
    if not samples:
        return None
    indices, frames = [], []
    for i in samples:
        count = data.frames if data.samples[i]["kind"] == "video" else 1
        indices += [i] * count
        frames += list(range(count))
    return data.get(indices, frames)["latents"][:, :, 0].to(device)
