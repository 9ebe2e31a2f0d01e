"""The Neural-Engine forms of the temporal ops compute today's function with today's parameters.

The reference is the pre-rewrite code (tests/reference_ops.py, rank-5 tensors and nn.Conv3d),
and a micro VideoUNet saved by that code (tests/data/pre_ane_videounet, see its make script).
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.flop_counter import FlopCounterMode

from nas.model.video_unet import VideoUNet
from nas.ops import get_op
from tests.reference_ops import reference_op

CASES = [
    ("conv1d", {"kernel": 3}),
    ("conv1d", {"kernel": 5}),
    ("conv3d", {"kernel": 3}),
    ("conv3d", {"kernel": 1}),
    ("attn1d", {"heads": 4}),
    ("attn3d", {"heads": 2}),
]
SAVED = Path(__file__).parent / "data" / "pre_ane_videounet"


def _pair(name, params, frames=5):
    torch.manual_seed(0)
    new = get_op(name)(16, frames, 4, **params)
    for p in new.parameters():
        torch.nn.init.normal_(p, std=0.2)
    old = reference_op(name, 16, frames, 4, **params)
    old.load_state_dict(new.state_dict(), strict=True)  # same names and shapes: old checkpoints load
    return new, old


@pytest.mark.parametrize(
    "name, params, attention",
    [
        (name, params, attention)
        for name, params in CASES
        for attention in (("sdpa", "split_einsum") if "attn" in name else ("",))
    ],
)
def test_ane_form_equals_the_rank5_op_forward_and_backward(name, params, attention):
    new, old = _pair(name, params)
    if "attn" in name:
        new.set_attention(attention)
    x = torch.randn(2 * 5, 16, 3, 4)  # two clips of 5 frames, non-square
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = new(xa, 5), old(xb, 5)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ya)
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=1e-5)
    old_grads = dict(old.named_parameters())
    for pname, p in new.named_parameters():
        torch.testing.assert_close(p.grad, old_grads[pname].grad, atol=1e-5, rtol=1e-5, msg=pname)


@pytest.mark.parametrize("name, params", CASES)
def test_ane_form_has_the_same_params_and_flops(name, params):
    new, old = _pair(name, params)
    assert [(n, p.shape) for n, p in new.named_parameters()] == [(n, p.shape) for n, p in old.named_parameters()]
    flops = []
    for layer in (new, old):  # counted on the meta device, as TemporalOp.cost does
        counter = FlopCounterMode(display=False)
        with torch.device("meta"), counter, torch.no_grad():
            layer.to("meta")(torch.empty(5, 16, 6, 4), 5)
        flops.append(counter.get_total_flops())
    assert flops[0] == flops[1] > 0
    assert get_op(name).cost(16, 5, 6, 4, params).flops == flops[0]


def test_video_unet_saved_before_the_rewrite_loads_and_gives_the_same_output():
    io = load_file(SAVED / "io.safetensors")
    model = VideoUNet.from_pretrained(SAVED, use_safetensors=True, local_files_only=True).eval()
    for attention in ("sdpa", "split_einsum"):
        model.set_attention(attention)
        with torch.no_grad():
            out = model(io["sample"], 500, io["encoder_hidden_states"]).sample
        torch.testing.assert_close(out, io["out"], atol=1e-5, rtol=1e-5)


def test_channels_first_processor_matches_diffusers_on_the_spatial_unet():
    model = VideoUNet.from_pretrained(SAVED, use_safetensors=True, local_files_only=True).eval()
    io = load_file(SAVED / "io.safetensors")
    x, text = io["sample"].permute(0, 2, 1, 3, 4)[0], io["encoder_hidden_states"].expand(3, -1, -1)
    with torch.no_grad():
        expected = model.spatial(x, 500, text).sample
        model.set_attention("split_einsum")
        got = model.spatial(x, 500, text).sample
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="attention must be one of"):
        model.set_attention("flash")
