"""VideoUNet: shapes, identity when fresh, frozen backbone, save/load, checkpointing, 2D weights."""

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

from nas.errors import NasError
from nas.model import VideoUNet
from nas.space import Architecture
from tests.conftest import clip_inputs


def uniform(space, op):
    """Every slot holds ``op`` with the slot's first variant of it (so every op is at every slot)."""
    slots = {}
    for slot in space.slots:
        slots[slot.name] = next(c for c in slot.choices if c.op == op).as_dict()
    return Architecture.from_dict(space, {"slots": slots})


def per_frame(unet: UNet2DConditionModel, sample, timesteps, text):
    b, c, f, h, w = sample.shape
    frames = sample.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    out = unet(frames, timesteps.repeat_interleave(f), text.repeat_interleave(f, 0)).sample
    return out.reshape(b, f, -1, h, w).permute(0, 2, 1, 3, 4)


@pytest.mark.parametrize("op", ["conv1d", "conv3d", "attn1d", "attn3d", "none"])
def test_every_op_at_every_slot_trains(tiny_space, op):
    torch.manual_seed(0)
    model = VideoUNet.from_space(tiny_space, uniform(tiny_space, op))
    sample, timesteps, text = clip_inputs(tiny_space)
    out = model(sample, timesteps, text).sample
    assert out.shape == sample.shape
    out.square().mean().backward()
    expected = 0 if op == "none" else len(tiny_space.slots)
    assert len(model.temporal) == expected
    for name, layers in model.temporal.items():
        grads = [p.grad for p in layers.parameters()]
        assert all(g is not None for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), f"{name}: all-zero gradients"


@pytest.mark.parametrize("arch_name", ["reference", "sample"])
def test_fresh_temporal_layers_are_an_identity(tiny_space, arch_name):
    torch.manual_seed(0)
    arch = tiny_space.architecture("reference") if arch_name == "reference" else tiny_space.sample(11)
    model = VideoUNet.from_space(tiny_space, arch).eval()
    sample, timesteps, text = clip_inputs(tiny_space)
    with torch.no_grad():
        video = model(sample, timesteps, text).sample
        frames = per_frame(model.spatial, sample, timesteps, text)
    torch.testing.assert_close(video, frames, rtol=1e-5, atol=1e-5)


def test_trained_temporal_layers_change_the_output(tiny_space):
    torch.manual_seed(0)
    model = VideoUNet.from_space(tiny_space, tiny_space.architecture("reference")).eval()
    for p in model.temporal.parameters():
        torch.nn.init.normal_(p, std=0.05)
    sample, timesteps, text = clip_inputs(tiny_space)
    with torch.no_grad():
        assert not torch.allclose(
            model(sample, timesteps, text).sample, per_frame(model.spatial, sample, timesteps, text)
        )


def test_frozen_spatial_part_gets_no_gradients(tiny_space):
    model = VideoUNet.from_space(tiny_space, tiny_space.architecture("reference"), freeze_spatial=True)
    sample, timesteps, text = clip_inputs(tiny_space)
    model(sample, timesteps, text).sample.square().mean().backward()
    spatial = dict(model.spatial.named_parameters())
    assert spatial and all(p.grad is None and not p.requires_grad for p in spatial.values())
    temporal = model.temporal_parameters()
    assert temporal and all(p.grad is not None for p in temporal)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in temporal}


def test_save_and_load_give_identical_outputs(tiny_space, tmp_path):
    torch.manual_seed(0)
    model = VideoUNet.from_space(tiny_space, tiny_space.sample(5)).eval()
    for p in model.temporal.parameters():
        torch.nn.init.normal_(p, std=0.05)
    model.save_pretrained(tmp_path / "m")
    loaded = VideoUNet.from_pretrained(tmp_path / "m").eval()
    sample, timesteps, text = clip_inputs(tiny_space)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(sample, timesteps, text).sample, model(sample, timesteps, text).sample, rtol=0, atol=0
        )
    read_back = Architecture.from_dict(tiny_space, {"slots": loaded.config.architecture})
    assert dict(read_back.choices) == dict(tiny_space.sample(5).choices)
    assert (tmp_path / "m" / "diffusion_pytorch_model.safetensors").is_file()


def test_gradient_checkpointing_gives_the_same_gradients(tiny_space):
    torch.manual_seed(0)
    model = VideoUNet.from_space(tiny_space, tiny_space.architecture("reference"))
    for p in model.temporal.parameters():
        torch.nn.init.normal_(p, std=0.05)
    sample, timesteps, text = clip_inputs(tiny_space)

    def grads():
        model.zero_grad()
        model(sample, timesteps, text).sample.square().mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    plain = grads()
    model.enable_gradient_checkpointing()
    assert model.gradient_checkpointing
    checkpointed = grads()
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_spatial_weights_load_from_a_diffusers_folder(tiny_space, tmp_path):
    torch.manual_seed(1)
    pretrained = UNet2DConditionModel(**tiny_space.backbone)
    pretrained.save_pretrained(tmp_path / "unet")
    model = VideoUNet.from_space(tiny_space, tiny_space.architecture("reference"), spatial_weights=tmp_path / "unet")
    sample, timesteps, text = clip_inputs(tiny_space)
    with torch.no_grad():
        torch.testing.assert_close(
            model(sample, timesteps, text).sample, per_frame(pretrained, sample, timesteps, text), rtol=1e-5, atol=1e-5
        )


def test_spatial_weights_with_extra_layers_load_and_missing_ones_fail(tiny_space, tmp_path):
    state = UNet2DConditionModel(**tiny_space.backbone).state_dict()
    save_file({**state, "down_blocks.0.resnets.1.conv1.weight": torch.zeros(1)}, str(tmp_path / "extra.safetensors"))
    model = VideoUNet.from_space(tiny_space, tiny_space.architecture("reference"))
    from nas.model.spatial_weights import load_spatial_weights

    assert load_spatial_weights(model.spatial, tmp_path / "extra.safetensors") == [
        "down_blocks.0.resnets.1.conv1.weight"
    ]
    state.pop("conv_in.weight")
    save_file(state, str(tmp_path / "short.safetensors"))
    with pytest.raises(NasError, match="missing, e.g. conv_in.weight"):
        load_spatial_weights(model.spatial, tmp_path / "short.safetensors")
    (tmp_path / "w.ckpt").write_bytes(b"\x80\x04")
    with pytest.raises(NasError, match="only .safetensors"):
        load_spatial_weights(model.spatial, tmp_path / "w.ckpt")
