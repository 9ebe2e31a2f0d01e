"""``none``: the choice of no temporal layer at a slot."""

from __future__ import annotations

import torch

from nas.ops.base import TemporalOp
from nas.ops.registry import register_op
from nas.ops.spec import OpCost


@register_op
class NoTemporalOp(TemporalOp):
    """No temporal layer: frames stay independent at this slot; costs nothing."""

    name = "none"

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        return hidden_states

    @classmethod
    def cost(cls, channels, frames, height, width, params) -> OpCost:
        return OpCost(params=0, flops=0)
