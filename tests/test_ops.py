"""Temporal ops: shapes, identity at initialisation, costs, keys and the registry."""

import pytest
import torch
from torch import nn

from nas.ops import OpKey, TemporalOp, get_op, list_ops, op_spec, register_op
from nas.space import SearchSpace

BUILT_IN = ["none", "conv1d", "conv3d", "attn1d", "attn3d"]


def test_built_in_ops_are_registered():
    assert set(BUILT_IN) <= set(list_ops())


@pytest.mark.parametrize("op_name", BUILT_IN)
def test_every_op_at_every_slot_shape_runs_forward_and_backward(tiny_space, op_name):
    op_cls = get_op(op_name)
    frames = tiny_space.video.frames
    for slot in tiny_space.slots:
        torch.manual_seed(0)
        layer = op_cls(
            slot.channels,
            frames,
            tiny_space.backbone["norm_num_groups"],
            **op_cls.defaults | {"heads": 4} if "heads" in op_cls.defaults else {},
        )
        x = torch.randn(2 * frames, slot.channels, slot.height, slot.width, requires_grad=True)
        y = layer(x, frames)
        assert y.shape == x.shape, slot.name
        torch.testing.assert_close(y, x)  # identity when fresh
        (y * torch.randn_like(y)).sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape
        for name, p in layer.named_parameters():
            assert p.grad is not None, f"{op_name} {name} got no gradient"


@pytest.mark.parametrize("op_name", ["conv1d", "conv3d", "attn1d", "attn3d"])
def test_trained_op_mixes_frames(op_name):
    """After its output layer moves off zero, the op must actually mix information across frames."""
    torch.manual_seed(0)
    layer = get_op(op_name)(16, 4, 4, **({"heads": 2} if "attn" in op_name else {}))
    for p in layer.parameters():
        nn.init.normal_(p, std=0.2)
    x = torch.randn(4, 16, 3, 3)
    y0 = layer(x, 4)
    x2 = x.clone()
    x2[3] += 1.0  # change only the last frame
    y1 = layer(x2, 4)
    assert (y1[0] - y0[0]).abs().max() > 1e-4, "frame 0 must see frame 3"


def test_frames_of_different_videos_do_not_mix():
    torch.manual_seed(0)
    layer = get_op("attn3d")(16, 4, 4, heads=2)
    for p in layer.parameters():
        nn.init.normal_(p, std=0.2)
    x = torch.randn(8, 16, 3, 3)  # two videos of 4 frames
    y0 = layer(x, 4)
    x[4:] += 1.0
    y1 = layer(x, 4)
    torch.testing.assert_close(y1[:4], y0[:4])


@pytest.mark.parametrize("op_name", BUILT_IN)
def test_cost_params_match_the_built_layer(op_name):
    op_cls = get_op(op_name)
    layer = op_cls(64, 8, 8)
    cost = op_cls.cost(64, 8, 6, 10, dict(op_cls.defaults))
    assert cost.params == sum(p.numel() for p in layer.parameters())


@pytest.mark.parametrize("op_name", BUILT_IN)
@pytest.mark.parametrize("channels, params", [(32, {}), (64, {"kernel": 5, "heads": 2}), (320, {"heads": 8})])
def test_closed_form_spec_matches_the_built_layer(op_name, channels, params):
    """nas cost counts the built-in ops' parameters and forms their keys without torch (nas.ops.spec)."""
    op_cls, spec = get_op(op_name), op_spec(op_name)
    assert spec is not op_cls and spec.defaults == op_cls.defaults
    params = {k: v for k, v in params.items() if k in op_cls.defaults}
    layer = op_cls(channels, 8, 8, **params)
    assert spec.param_count(channels, 8, 6, 10, params) == sum(p.numel() for p in layer.parameters())
    assert spec.key(channels, 8, 6, 10, params) == op_cls.key(channels, 8, 6, 10, params)
    bad = {"kernel": 2, "heads": 3}
    if op_cls.defaults:
        with pytest.raises(ValueError) as from_spec:
            spec.check_params(channels, {**op_cls.defaults, **{k: bad[k] for k in op_cls.defaults}})
        with pytest.raises(ValueError) as from_class:
            op_cls.check_params(channels, {**op_cls.defaults, **{k: bad[k] for k in op_cls.defaults}})
        assert str(from_spec.value) == str(from_class.value)


def test_flops_follow_the_attention_shapes():
    attn1d, attn3d, conv1d, conv3d = (get_op(n) for n in ("attn1d", "attn3d", "conv1d", "conv3d"))
    small = (64, 8, 8, 8)
    big = (64, 8, 16, 16)  # 4x the pixels
    heads = {"heads": 8}
    # attn1d: linear in pixels.
    assert attn1d.cost(*big, heads).flops == 4 * attn1d.cost(*small, heads).flops
    # attn3d: quadratic part in pixels, so more than 4x.
    assert attn3d.cost(*big, heads).flops > 6 * attn3d.cost(*small, heads).flops
    # conv3d's 3x3 spatial kernel: 9x conv1d's work.
    assert conv3d.cost(*small, {"kernel": 3}).flops == 9 * conv1d.cost(*small, {"kernel": 3}).flops
    assert get_op("none").cost(*small, {}).flops == 0


def test_key_carries_the_ops_parameters_with_defaults():
    key = get_op("attn1d").key(320, 16, 40, 64, {"heads": 8})
    assert key == OpKey("attn1d", 320, 16, 40, 64, "heads=8") and key.heads == 8 and key.kernel == 0
    assert get_op("conv3d").key(320, 16, 40, 64, {}).params == "kernel=3"  # the default is in the key
    assert OpKey.columns() == ["op", "channels", "frames", "height", "width", "params"]


def test_bad_params_are_rejected():
    with pytest.raises(ValueError, match="heads"):
        get_op("attn1d").check_params(64, {"heads": 5})
    with pytest.raises(ValueError, match="odd"):
        get_op("conv1d").check_params(64, {"kernel": 2})


class TemporalShift(TemporalOp):
    """A user op: shifts a fraction of channels one frame back (TSM), with a zero-init gate."""

    name = "test_shift"
    defaults = {"fold": 4}

    def __init__(self, channels, frames, norm_groups=32, **params):
        super().__init__(channels, frames, norm_groups, **params)
        self.gate = nn.Parameter(torch.zeros(channels))

    def forward(self, hidden_states, num_frames):
        bf, c, h, w = hidden_states.shape
        video = hidden_states.reshape(bf // num_frames, num_frames, c, h, w)
        shifted = torch.cat([video[:, 1:], video[:, -1:]], dim=1).reshape(bf, c, h, w)
        return hidden_states + self.gate.view(1, c, 1, 1) * shifted


def test_user_op_registers_and_builds_from_yaml(tiny_dict):
    register_op(TemporalShift)
    assert "test_shift" in list_ops()
    tiny_dict["choices"].append({"op": "test_shift", "fold": [2, 4]})
    tiny_dict.pop("architectures")
    space = SearchSpace.from_dict(tiny_dict)
    assert space.num_architectures == 7 ** len(space.slots)
    from nas.model import VideoUNet
    from nas.space import Architecture

    arch = Architecture.from_dict(space, {"slots": {s: {"op": "test_shift", "fold": 2} for s in space.slot_names}})
    model = VideoUNet.from_space(space, arch)
    assert len(model.temporal) == len(space.slots)
    assert get_op("test_shift").cost(32, 4, 8, 8, {"fold": 2}).params == 32
    # two fold values are two table rows
    from nas.cost.plan import table_plan

    folds = {k.param_dict["fold"] for k in table_plan(space) if k.op == "test_shift"}
    assert folds == {2, 4}


def test_registering_a_different_class_under_a_taken_name_fails():
    class Clash(TemporalOp):
        name = "conv1d"

    with pytest.raises(ValueError, match="already registered"):
        register_op(Clash)
