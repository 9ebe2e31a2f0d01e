"""The loop both training stages run: step, log, evaluate, checkpoint, stop -- written once.

As in nanoGPT, the loop reads top to bottom in one screen. The stages differ only in what one
step does (their losses) and what an evaluation measures, so each hands those two functions to
:func:`train_loop`; the schedule around them (log every ``log_every`` steps, evaluate at the
start, every ``eval_every`` steps and at the end, checkpoint every ``checkpoint_every`` steps, at
the end and at ``stop_after``) and the exact resume are the same for both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from tqdm import tqdm

from nas.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from nas.train.config import TrainConfig
from nas.train.log import LossLog
from nas.train.runtime import lr_at


@dataclass
class RunState:
    """What a checkpoint holds and a resume restores: modules, optimizers and EMAs by name, and the
    generator every batch and noise draw comes from."""

    modules: dict[str, nn.Module]
    optimizers: dict[str, Any]
    emas: dict[str, Any]
    generator: torch.Generator

    def resume(self, out: Path) -> int:
        """Restore the run's latest checkpoint; the step to continue from (0 when there is none)."""
        checkpoint = latest_checkpoint(out / "checkpoints")
        if checkpoint is None:
            return 0
        return load_checkpoint(checkpoint, self.modules, self.optimizers, self.emas, self.generator)

    def save(self, out: Path, step: int) -> None:
        save_checkpoint(out / "checkpoints", step, self.modules, self.optimizers, self.emas, self.generator)


@dataclass
class Run:
    """Where a loop stopped: the step, whether that is ``max_steps``, the loss log, seconds per step."""

    step: int
    finished: bool
    log: LossLog
    s_per_step: float

    def summary(self, stage: str, processes: int, evaluated: tuple[str, ...], **more: Any) -> dict[str, Any]:
        """The head of a stage's ``summary.json``: where it stopped, its speed, the first and last value
        of each ``evaluated`` metric (``NAME_first``, ``NAME_last``), then ``more``."""
        head = {"stage": stage, "step": self.step, "finished": self.finished, "processes": processes}
        head["s_per_step"] = self.s_per_step
        for name in evaluated:
            head[f"{name}_first"], head[f"{name}_last"] = self.log.first(name), self.log.last(name)
        return {**head, **more}


class StepTimer:
    """Seconds per step over the steps of this invocation (excluding evaluation and checkpoints)."""

    def __init__(self):
        self.seconds, self.steps, self._start = 0.0, 0, 0.0

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self._start
        self.steps += 1

    @property
    def per_step(self) -> float:
        return self.seconds / max(self.steps, 1)


def train_loop(
    stage: str,
    config: TrainConfig,
    accelerator: Accelerator,
    out: Path,
    state: RunState,
    step: int,
    train_step: Callable[[int], dict[str, torch.Tensor]],
    evaluate: Callable[[], dict[str, float]] | None,
    shown: tuple[str, ...],
    stop_after: int | None = None,
) -> Run:
    """From ``step`` (0, or where :meth:`RunState.resume` left off), run ``train_step(step)`` -- one
    optimizer step, returning its losses by name -- up to ``config.max_steps``.

    ``evaluate()`` returns named metrics (``eval_...``) for the log, or is None when there is
    nothing to evaluate on; ``shown`` names the losses the progress bar shows. ``stop_after``
    checkpoints and stops at that step (``--stop-after``: a run cut short, to be resumed).
    """
    log = LossLog(out, step)
    if step == 0 and evaluate is not None:
        log.add(0, **evaluate())
    timer = StepTimer()
    bar = tqdm(total=config.max_steps, initial=step, desc=stage, disable=not accelerator.is_main_process)
    while step < config.max_steps:
        step += 1
        with timer:
            losses = train_step(step)
        bar.update(1)
        last = step == config.max_steps

        if step % config.log_every == 0 or last:
            values = {name: accelerator.reduce(value.detach(), "mean").item() for name, value in losses.items()}
            bar.set_postfix({name: f"{values[name]:.4f}" for name in shown})
            log.add(step, lr=lr_at(step, config), **values)
        if evaluate is not None and (last or (config.eval_every and step % config.eval_every == 0)):
            log.add(step, **evaluate())
        if step % config.checkpoint_every == 0 or last or step == stop_after:
            if accelerator.is_main_process:
                state.save(out, step)
                log.save()
            accelerator.wait_for_everyone()
        if step == stop_after:
            break
    bar.close()
    return Run(step, step == config.max_steps, log, timer.per_step)
