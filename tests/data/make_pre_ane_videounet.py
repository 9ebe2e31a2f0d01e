"""Writes tests/data/pre_ane_videounet/: a micro VideoUNet saved by the code BEFORE the Neural
Engine rewrite of the temporal ops (commit 2b2420c), with an input and the output that code gave.

Run once from a checkout of that commit: ``PYTHONPATH=<checkout> python tests/data/make_pre_ane_videounet.py``.
test_ane_ops.py loads the folder with today's code and must get the same output.
"""

from pathlib import Path

import torch
from safetensors.torch import save_file

from nas.model.video_unet import VideoUNet

OUT = Path(__file__).parent / "pre_ane_videounet"
BACKBONE = {
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [8, 16],
    "layers_per_block": 1,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "cross_attention_dim": 8,
    "attention_head_dim": 2,
    "norm_num_groups": 4,
    "sample_size": 4,
}
SLOTS = [
    {"name": "down0", "path": "down", "level": 0, "position": 0},
    {"name": "down1", "path": "down", "level": 1, "position": 0},
    {"name": "mid", "path": "mid", "level": 1, "position": 0},
    {"name": "up1", "path": "up", "level": 1, "position": 0},
]
ARCH = {
    "down0": {"op": "conv1d", "count": 1, "kernel": 3},
    "down1": {"op": "conv3d", "count": 1, "kernel": 3},
    "mid": {"op": "attn3d", "count": 1, "heads": 2},
    "up1": {"op": "attn1d", "count": 1, "heads": 4},
}

if __name__ == "__main__":
    torch.manual_seed(0)
    model = VideoUNet(
        backbone=BACKBONE,
        frames=3,
        sample_height=4,
        sample_width=4,
        slots=SLOTS,
        architecture=ARCH,
        text_tokens=5,
        space_name="micro",
    ).eval()
    with torch.no_grad():
        for p in model.temporal.parameters():  # trained-looking temporal layers, not the identity of a fresh one
            p.normal_(std=0.2)
        sample, text = torch.randn(1, 4, 3, 4, 4), torch.randn(1, 5, 8)
        out = model(sample, 500, text).sample
    model.save_pretrained(OUT)
    save_file({"sample": sample, "encoder_hidden_states": text, "out": out.contiguous()}, OUT / "io.safetensors")
