"""`nas prune`: a pretrained 2D UNet -> a space's backbone, and its recovery by distillation.

The teacher (tests/prune_models.py) is SD1.5-shaped at toy size and trained briefly, so that how much
of its function a pruned student keeps is measurable: the student must start at least 2x closer to
it than a random-init student of the same shape, and recovery distillation (`nas train distill` with
the 2D teacher on an image folder) must halve that distance again within a CPU-minute budget.
"""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

from nas.errors import NasError
from nas.model import VideoUNet
from nas.prune import prune_unet
from nas.space import SearchSpace
from tests.prune_models import (
    BACKBONE,
    HOLDOUT,
    TEACHER,
    mse_to_teacher,
    one_line_error,
    train_teacher,
    write_frames,
    write_image_space,
)


@pytest.fixture(scope="session")
def pruned_chain(tmp_path_factory):
    """Teacher, space, frames, `nas prune` result, and the student distances, made once."""
    from nas.cli import main

    root = tmp_path_factory.mktemp("prune")
    teacher_dir = train_teacher(root / "sd" / "unet")  # a pipeline-like folder: root/sd holds unet/
    space = write_image_space(root)
    frames = write_frames(root / "frames")
    assert main(["prune", str(root / "sd"), "--space", str(space), "-o", str(root / "pruned")]) == 0
    teacher = UNet2DConditionModel.from_pretrained(teacher_dir, use_safetensors=True, local_files_only=True)
    pruned = UNet2DConditionModel.from_pretrained(root / "pruned", use_safetensors=True, local_files_only=True)
    torch.manual_seed(1)
    random = UNet2DConditionModel(**SearchSpace.load(space).backbone)
    return {
        "root": root,
        "teacher_dir": teacher_dir,
        "space": space,
        "frames": frames,
        "teacher": teacher,
        "mse_pruned": mse_to_teacher(teacher, pruned),
        "mse_random": mse_to_teacher(teacher, random),
    }


def test_inherited_weights_start_at_least_2x_closer_to_the_teacher_than_random_init(pruned_chain):
    assert pruned_chain["mse_pruned"] * 2 <= pruned_chain["mse_random"], pruned_chain


def test_report_has_sizes_levels_and_function_against_random(pruned_chain):
    report = json.loads((pruned_chain["root"] / "pruned" / "prune_report.json").read_text())
    assert report["params_before"] > 2 * report["params_after"]
    assert [(lv["width_after"], lv["layers_after"]) for lv in report["levels"]] == [(24, 1), (48, 1)]
    assert report["levels"][0]["attention_after"] == [False, False]
    f = report["function"]
    assert f["mse_pruned"] < f["mse_random"] and f["cosine_pruned"] > f["cosine_random"]
    # BK-SDM depth: the first layer of each down block; first and last of each up block
    assert {(lay["block"], lay["target"], lay["source"]) for lay in report["layers"]} >= {
        ("down_blocks.0", 0, 0),
        ("up_blocks.0", 0, 0),
        ("up_blocks.0", 1, 2),
    }


def test_recovery_distillation_halves_the_distance_again(pruned_chain, cli):
    root = pruned_chain["root"]
    code, out, err = cli(
        "train",
        "distill",
        "--space",
        pruned_chain["space"],
        "--data",
        pruned_chain["frames"],
        "--teacher",
        root / "sd",
        "--spatial-weights",
        root / "pruned",
        "--out",
        root / "run",
        "--max-steps",
        50,
        "--batch-size",
        4,
        "--lr",
        1e-3,
        "--set",
        "ema_decay=null",
        "--set",
        f"holdout={HOLDOUT}",
        "--set",
        "checkpoint_every=1000",
    )
    assert code == 0, err
    recovered = UNet2DConditionModel.from_pretrained(
        root / "run" / "spatial", use_safetensors=True, local_files_only=True
    )
    mse = mse_to_teacher(pruned_chain["teacher"], recovered)
    print(
        f"output MSE to the teacher: random init {pruned_chain['mse_random']:.4f}, pruned "
        f"{pruned_chain['mse_pruned']:.4f}, recovered {mse:.4f}"
    )
    assert mse * 2 <= pruned_chain["mse_pruned"], (mse, pruned_chain["mse_pruned"])
    # the video stages start from the recovered backbone: its spatial/ folder, the run's model/ or the run itself
    space = SearchSpace.load(pruned_chain["space"])
    for weights in (root / "run" / "spatial", root / "run" / "model", root / "run"):
        model = VideoUNet.from_space(space, space.architecture("reference"), spatial_weights=weights)
        assert torch.equal(model.spatial.conv_in.weight, recovered.conv_in.weight)


def test_pruning_to_the_same_shape_is_exact(tmp_path):
    torch.manual_seed(0)
    config = {**TEACHER, "block_out_channels": [16, 32], "norm_num_groups": 4}
    UNet2DConditionModel(**config).save_pretrained(tmp_path / "unet")
    model, report = prune_unet(tmp_path / "unet", config, sample_size=(8, 8))
    assert report["function"]["mse_pruned"] < 1e-10


def test_mid_block_removal_and_single_file_source(pruned_chain, tmp_path):
    """A single .safetensors file + its config; a target without a mid block; Taylor importance."""
    file = pruned_chain["teacher_dir"] / "diffusion_pytorch_model.safetensors"
    config = pruned_chain["teacher_dir"] / "config.json"
    model, report = prune_unet(
        file,
        {**BACKBONE, "mid_block_type": None},
        tmp_path / "out",
        config=config,
        importance="taylor",
        calibration_batches=1,
        sample_size=(8, 8),
    )
    assert model.mid_block is None and report["function"]["mse_pruned"] < report["function"]["mse_random"]
    assert (tmp_path / "out" / "diffusion_pytorch_model.safetensors").is_file()


def test_bad_sources_are_one_line_errors_naming_the_file(pruned_chain, cli, tmp_path):
    space = pruned_chain["space"]
    (tmp_path / "empty").mkdir()
    assert "no UNet here" in one_line_error(cli, "prune", tmp_path / "empty", "--space", space, "-o", tmp_path / "o")
    for suffix in (".bin", ".ckpt"):
        pickle = tmp_path / f"unet{suffix}"
        pickle.write_bytes(b"not even a pickle: it must never be opened")
        assert str(pickle) in one_line_error(cli, "prune", pickle, "--space", space, "-o", tmp_path / "o")
    folder = tmp_path / "binonly"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TEACHER))
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"x")
    assert "pickled" in one_line_error(cli, "prune", folder, "--space", space, "-o", tmp_path / "o")
    ldm = tmp_path / "ldm"
    ldm.mkdir()
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, str(ldm / "sd.safetensors"))
    (ldm / "config.json").write_text(json.dumps(TEACHER))
    err = one_line_error(cli, "prune", ldm / "sd.safetensors", "--space", space, "-o", tmp_path / "o")
    assert "LDM" in err and "sd.safetensors" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"block_out_channels": [40, 48]}, "wider"),
        ({"layers_per_block": 3}, "deeper"),
        (
            {
                "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                "block_out_channels": [24, 48, 48],
            },
            "levels",
        ),
        ({"norm_num_groups": 8}, "groups"),
    ],
)
def test_targets_the_source_cannot_give_are_one_line_errors(pruned_chain, cli, tmp_path, change, message):
    space = write_image_space(tmp_path, **change)
    if "levels" == message:  # the space needs slots for its third level; a plain config is the target then
        with pytest.raises(NasError, match="levels"):
            prune_unet(pruned_chain["teacher_dir"], {**BACKBONE, **change}, compare=False)
        return
    err = one_line_error(cli, "prune", pruned_chain["teacher_dir"], "--space", space, "-o", tmp_path / "o")
    assert message in err and "diffusion_pytorch_model.safetensors" in err


def test_unpruned_weights_end_with_one_line_naming_nas_prune(pruned_chain, cli, tmp_path):
    space = pruned_chain["space"]
    err = one_line_error(cli, "build", space, "--arch", "reference", "--spatial-weights", pruned_chain["teacher_dir"])
    assert "nas prune" in err and str(space) in err and "test teacher" in err
    err = one_line_error(
        cli,
        "train",
        "distill",
        "--space",
        space,
        "--data",
        pruned_chain["frames"],
        "--teacher",
        pruned_chain["teacher_dir"],
        "--spatial-weights",
        pruned_chain["teacher_dir"],
        "--out",
        tmp_path / "run",
    )
    assert "nas prune" in err


def test_space_prune_from_is_validated(write_yaml, tiny_dict, cli):
    tiny_dict["prune_from"] = {"model": "SD1.5", "importance": "magnitude"}
    err = one_line_error(cli, "space", "show", write_yaml(tiny_dict))
    assert "prune_from.importance" in err
