"""Stage 1, ``nas train distill``: train the searched architecture into a full video model.

The student is the VideoUNet of one architecture (its spatial part optionally initialised from
2D weights and frozen). Its losses, each weighted in the config:

- ``loss_denoise``: MSE between the predicted and the true noise (plain diffusion training);
- ``loss_output``: MSE between the student's and the teacher's predictions (output distillation);
- ``loss_feature``: sum over blocks of the MSE between the student's (projected) block outputs
  and the teacher's (feature distillation, as in BK-SDM).

``eval_denoise`` is the denoising loss on held-out clips at fixed noise and timesteps: the same
number at every evaluation, so its curve shows learning, not sampling noise.

With a plain 2D teacher (a UNet2DConditionModel such as SD1.5's) the run is the recovery of a
pruned backbone (BK-SDM): the student is the space's backbone alone (every slot ``none``, one
frame), trained on images (stills and single frames of the data's clips), and the result is also
saved as ``spatial/``, a UNet2DConditionModel folder the video stages take as spatial weights.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed

from nas.data import LatentDataset
from nas.data.schedule import noise_scheduler
from nas.errors import NasError
from nas.model import VideoUNet
from nas.space import SearchSpace
from nas.train.config import DistillConfig, save_config
from nas.train.ema import EMA
from nas.train.loop import RunState, train_loop
from nas.train.runtime import (
    adamw,
    draw_batch,
    finish_run,
    global_randint,
    global_randn,
    image_split,
    lr_at,
    make_accelerator,
    prepare_run_folder,
    set_lr,
)
from nas.train.teacher import Student, load_teacher

EVAL_TIMESTEPS = (50, 200, 350, 500, 650, 800, 950)


def distill(config: DistillConfig, resume: bool = False, stop_after: int | None = None) -> dict:
    """Run (or resume) stage 1; writes ``out/model``, ``out/scheduler``, log, plot and summary."""
    accelerator = make_accelerator(config)
    out = prepare_run_folder(config, resume)
    set_seed(config.seed)
    space = SearchSpace.load(config.space)
    data = LatentDataset(config.data)
    video = space.video
    teacher = load_teacher(config.teacher).to(accelerator.device) if config.teacher else None
    images = teacher is not None and teacher.is_2d
    data.check_model(
        data.frames if images else video.frames,
        video.latent_channels,
        video.latent_height,
        video.latent_width,
        space.cross_attention_dim,
        space.text_tokens,
        what=space.source,
    )
    if images:
        if config.freeze_spatial:
            raise NasError(f"{config.teacher}: a 2D teacher trains the backbone itself; drop freeze_spatial")
        train_clips, held_out = image_split(data, config.holdout)
        model = backbone_student(space, config.spatial_weights)
    else:
        train_clips, held_out = data.split(config.holdout)
        model = VideoUNet.from_space(
            space, space.architecture(config.arch), config.spatial_weights, config.freeze_spatial
        )
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    student = Student(model, teacher if config.loss_feature else None)
    weights = {
        "loss_denoise": config.loss_denoise,
        "loss_output": config.loss_output,
        "loss_feature": config.loss_feature,
    }
    scheduler = noise_scheduler()
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = adamw(params, lr=config.lr, weight_decay=config.weight_decay)
    student, optimizer = accelerator.prepare(student, optimizer)
    raw = accelerator.unwrap_model(student)
    ema = EMA(raw.model, config.ema_decay) if config.ema_decay is not None else None
    evaluated = copy.deepcopy(raw.model) if ema else raw.model  # what gets saved: EMA weights if any
    generator = torch.Generator().manual_seed(config.seed)
    state = RunState({"student": raw}, {"student": optimizer}, {"student": ema} if ema else {}, generator)
    step = state.resume(out) if resume else 0
    if accelerator.is_main_process:
        save_config(config, out / "config.yaml", "distill")
    alphas = scheduler.alphas_cumprod.to(accelerator.device)

    def train_step(step: int) -> dict[str, torch.Tensor]:
        batch = draw_batch(data, train_clips, generator, config, accelerator, "frame" if images else None)
        clean, text = batch["latents"], batch["text"]
        noise = global_randn(tuple(clean.shape), generator, accelerator)
        t = global_randint(scheduler.config.num_train_timesteps, clean.shape[0], generator, accelerator)
        noisy = scheduler.add_noise(clean, noise, t)
        with accelerator.autocast():
            pred, features = student(noisy, t, text, features=teacher is not None and config.loss_feature > 0)
            losses = {"loss_denoise": F.mse_loss(pred.float(), noise)}
            if teacher is not None:
                teacher_pred, teacher_features = teacher(noisy, t, text)
                losses["loss_output"] = F.mse_loss(pred.float(), teacher_pred.float())
                if features:
                    losses["loss_feature"] = sum(
                        F.mse_loss(f.float(), teacher_features[n].float()) for n, f in features.items()
                    )
            loss = sum(weights[name] * value for name, value in losses.items())
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, config.max_grad_norm)
        set_lr(optimizer, lr_at(step, config))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema:
            ema.update(raw.model, step)
        return {"loss": loss, **losses}

    def evaluate() -> dict[str, float]:
        if ema:
            ema.copy_to(evaluated)
        return {
            "eval_denoise": held_out_denoise(
                evaluated, data, held_out, alphas, config.batch_size, accelerator, one_frame=images
            )
        }

    run = train_loop(
        "distill",
        config,
        accelerator,
        out,
        state,
        step,
        train_step,
        evaluate if held_out else None,
        shown=("loss_denoise",),
        stop_after=stop_after,
    )
    summary = run.summary(
        "distill",
        accelerator.num_processes,
        ("eval_denoise",),
        loss_last=run.log.last("loss"),
        student="backbone (images)" if images else "video",
    )
    saved = {"model": evaluated, "scheduler": scheduler}
    if images:
        saved["spatial"] = evaluated.spatial  # the recovered backbone as a plain UNet2DConditionModel folder
    summary = finish_run(accelerator, out, evaluated, ema, summary, saved)
    return summary


def backbone_student(space: SearchSpace, spatial_weights) -> VideoUNet:
    """The space's backbone with no temporal layer, one frame: an image model."""
    from nas.model.spatial_weights import load_spatial_weights

    model = VideoUNet(
        backbone=space.backbone,
        frames=1,
        sample_height=space.video.latent_height,
        sample_width=space.video.latent_width,
        slots=[s.placement() for s in space.slots],
        architecture={s.name: {"op": "none"} for s in space.slots},
        text_tokens=space.text_tokens,
        space_name=space.name,
    )
    if spatial_weights is not None:
        load_spatial_weights(model.spatial, spatial_weights, space)
    return model


@torch.no_grad()
def held_out_denoise(
    model: VideoUNet,
    data: LatentDataset,
    clips: list[int],
    alphas: torch.Tensor,
    batch: int,
    accelerator,
    one_frame: bool = False,
) -> float:
    """Mean noise-prediction MSE over held-out clips x EVAL_TIMESTEPS, with noise fixed by seed 0
    (``one_frame``: the first frame of each, for an image model)."""
    generator = torch.Generator().manual_seed(0)
    pairs = [(c, t) for c in clips for t in EVAL_TIMESTEPS]
    total = 0.0
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        item = data.get([c for c, _ in chunk], [0] * len(chunk) if one_frame else None)
        clean, text = item["latents"].to(accelerator.device), item["text"].to(accelerator.device)
        noise = torch.randn(clean.shape, generator=generator).to(accelerator.device)
        t = torch.tensor([t for _, t in chunk], device=accelerator.device)
        a = alphas[t].view(-1, 1, 1, 1, 1)
        noisy = a.sqrt() * clean + (1 - a).sqrt() * noise
        with accelerator.autocast():
            pred = model(noisy, t, text).sample
        total += F.mse_loss(pred.float(), noise, reduction="sum").item() / noise[0].numel()
    return total / len(pairs)
