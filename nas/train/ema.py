"""Exponential moving average of the trainable weights: the weights a run saves as its model.

Kept as a plain name -> tensor dict, so it checkpoints to safetensors like everything else.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """``shadow = d * shadow + (1 - d) * weight`` after optimizer step ``step``, with
    ``d = min(decay, (1 + step) / (10 + step))`` (as diffusers' EMAModel): early steps average over a
    short window, so a short run's EMA is not stuck at the initial weights."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {n: p.detach().clone().float() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for name, param in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(param.detach().float(), 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged weights into ``model`` (a copy of the trained one)."""
        for name, param in model.named_parameters():
            if name in self.shadow:
                param.copy_(self.shadow[name].to(param.dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.shadow):
            raise ValueError("EMA checkpoint does not match the model's trainable weights")
        for name, tensor in state.items():
            self.shadow[name].copy_(tensor)
