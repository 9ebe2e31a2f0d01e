"""What both training stages share: the accelerator, batches, noise, LR, and writing the result.

Randomness: every process holds the same ``torch.Generator`` and draws the *global* batch
(indices, noise, timesteps for all processes), then keeps its own slice. So the processes see
different data, stay in lock-step without communicating, and the generator's state in the
checkpoint is all it takes to resume on exactly the same batches.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from nas import outputs
from nas.data import LatentDataset
from nas.errors import NasError
from nas.train.config import TrainConfig


def make_accelerator(config: TrainConfig) -> Accelerator:
    """An accelerate Accelerator: one process here, or one per device under ``accelerate launch``."""
    try:
        return Accelerator(mixed_precision=config.mixed_precision)
    except ValueError as exc:  # e.g. bf16/fp16 asked for on a device without support
        raise NasError(f"mixed_precision {config.mixed_precision}: {str(exc).splitlines()[0]}") from None


CONFIG, SUMMARY = "config.yaml", "summary.json"
RUN_FILES = ("log.csv", "loss.png", "model_index.json", "checkpoints", "model", "spatial", "scheduler")
is_config = outputs.yaml_keys("stage")
is_summary = outputs.json_keys("stage", "finished")


def run_outputs(out: str | Path) -> list[outputs.Derived]:
    """What a training run writes in its folder: its config and summary (nas's by their keys) and the rest, nas's
    where either of those is."""
    out = Path(out)
    run = outputs.any_of(outputs.ours_if(out / CONFIG, is_config), outputs.ours_if(out / SUMMARY, is_summary))
    return [
        outputs.Derived(out / CONFIG, "the run's config.yaml", is_config),
        outputs.Derived(out / SUMMARY, "the run's summary", is_summary),
        *(outputs.Derived(out / name, f"the run's {name}", run) for name in RUN_FILES),
    ]


def run_inputs(config: TrainConfig) -> list[Path]:
    """The files a run reads (data, teacher, weights, the distill run an adversarial one starts from, its space)."""
    names = ("data", "teacher", "spatial_weights", "init", "space", "arch")
    return outputs.files_of(*(getattr(config, n, None) or None for n in names))


def prepare_run_folder(config: TrainConfig, resume: bool) -> Path:
    """The run folder; refuses to train over a finished or started run unless resuming."""
    out = Path(config.out)
    if not resume and (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
        raise NasError(f"{out}: already holds a run (pass --resume to continue it, or choose another --out)")
    if resume and not (out / "checkpoints").is_dir():
        raise NasError(f"{out}: nothing to resume (no checkpoints/ folder)")
    outputs.claim(run_outputs(out), run_inputs(config))
    out.mkdir(parents=True, exist_ok=True)
    return out


FUSED_ADAMW_DEVICES = ("cpu", "cuda")  # where torch has a fused AdamW kernel that every torch build ships


def adamw(params, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over ``params``, with torch's fused kernel when they all lie on a CPU or CUDA device.

    The default on CPU updates one tensor at a time from Python; a UNet has hundreds of small tensors,
    so on the tiny test models the optimizer step took as long as a forward pass (tiny VideoUNet: ~50 ms
    a step, ~10 ms fused). The update is AdamW's either way, to within a float's last bit."""
    params = list(params)
    fused = bool(params) and all(p.device.type in FUSED_ADAMW_DEVICES for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def lr_at(step: int, config: TrainConfig, base: float | None = None) -> float:
    """Linear warm-up to the base rate, then constant (so a run can be extended by raising max_steps)."""
    base = config.lr if base is None else base
    return base * min(1.0, step / config.warmup_steps) if config.warmup_steps else base


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def draw_batch(
    data: LatentDataset,
    pool: list[int],
    generator: torch.Generator,
    config: TrainConfig,
    accelerator: Accelerator,
    kind: str | None = None,
) -> dict[str, torch.Tensor]:
    """This process's slice of a global batch: all videos, or (with probability image_ratio) all images;
    ``kind`` "frame": always one frame per sample of ``pool`` (an image model)."""
    if kind is None:
        kind = "image" if torch.rand(1, generator=generator).item() < config.image_ratio else "video"
    indices, frames = data.draw(generator, config.batch_size * accelerator.num_processes, kind, pool)
    mine = slice(accelerator.process_index * config.batch_size, (accelerator.process_index + 1) * config.batch_size)
    batch = data.get(indices[mine], frames[mine] if frames else None)
    return {k: v.to(accelerator.device) for k, v in batch.items()}


def image_split(data: LatentDataset, holdout: int) -> tuple[list[int], list[int]]:
    """(train, held out) over all samples (stills and clips alike), for an image model; the last
    ``holdout`` are held out."""
    samples = list(range(len(data)))
    if holdout < 0 or holdout >= len(samples):
        raise NasError(f"{data.folder}: cannot hold out {holdout} of {len(samples)} sample(s)")
    return samples[: len(samples) - holdout], samples[len(samples) - holdout :]


def global_randn(shape: tuple[int, ...], generator: torch.Generator, accelerator: Accelerator) -> torch.Tensor:
    """Normal noise for the global batch (first dim = per-process batch), this process's slice."""
    b = shape[0]
    noise = torch.randn((b * accelerator.num_processes, *shape[1:]), generator=generator)
    return noise[accelerator.process_index * b : (accelerator.process_index + 1) * b].to(accelerator.device)


def global_randint(high: int, batch: int, generator: torch.Generator, accelerator: Accelerator) -> torch.Tensor:
    values = torch.randint(high, (batch * accelerator.num_processes,), generator=generator)
    return values[accelerator.process_index * batch : (accelerator.process_index + 1) * batch].to(accelerator.device)


def fingerprint(module: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes: equal across processes iff they hold the same weights."""
    digest = hashlib.sha256()
    for name, param in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    outputs.write_text(out / SUMMARY, json.dumps(summary, indent=1))


def finish_run(
    accelerator: Accelerator,
    out: Path,
    model: torch.nn.Module,
    ema,
    summary: dict[str, Any],
    saved: dict[str, Any],
    pipeline: bool = True,
) -> dict[str, Any]:
    """End a stage the same way in every process: EMA weights in, fingerprints gathered, and on
    the main process the summary written and, for a finished run, ``saved`` (folder -> object
    with save_pretrained) saved under ``out`` (``pipeline``: with the index that opens it as a
    VideoPipeline); then the process group is closed."""
    if ema:
        ema.copy_to(model)
    summary = {
        **summary,
        "weights_fingerprints": gather_object([fingerprint(model)]),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if accelerator.is_main_process:
        if summary["finished"]:
            for folder, item in saved.items():
                item.save_pretrained(out / folder)
            if pipeline:
                from nas.pipeline import write_pipeline_index

                write_pipeline_index(out)  # the run opens as a diffusers pipeline (VideoPipeline)
        write_summary(out, summary)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # also ends the process group, so launched processes exit cleanly
    return summary
