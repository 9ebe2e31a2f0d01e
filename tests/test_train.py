"""The training chain end to end on CPU with tiny models built here: synth -> encode -> distill ->
adversarial -> generate, and the acceptance checks on it: learning is real (held-out denoising loss,
4-step samples vs. data), resume is exact, data-parallel processes agree, teachers distil."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from nas.data.media import read_video
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import train_chain  # noqa: E402  (the chain is defined once, with its speed benchmark)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Runs the whole chain once through the CLI (benchmarks/train_chain.py times the same chain)."""
    root = tmp_path_factory.mktemp("chain")
    train_chain.run_chain(root)
    return {"root": root, "space": root / "space.yaml"}


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_chain_writes_a_playable_video_and_latents(chain):
    """(Its speed target, under 3 minutes on a quiet 2-core CPU, is benchmarks/train_chain.py's.)"""
    root = chain["root"]
    video = read_video(root / "out.mp4")
    assert video.shape == (4, 64, 64, 3)  # the space's frames and pixel size
    latents = load_file(str(root / "out.safetensors"))["latents"]
    assert latents.shape == (1, 4, 4, 8, 8) and torch.isfinite(latents).all()


def test_encode_writes_shards_and_lists_what_it_skipped(chain):
    manifest = json.loads((chain["root"] / "latents" / "manifest.json").read_text())
    kinds = [s["kind"] for s in manifest["samples"]]
    assert kinds.count("video") == 10 and kinds.count("image") == 4
    assert {s["file"] for s in manifest["skipped"]} == {"broken.mp4", "missing.mp4"}
    shard = load_file(str(chain["root"] / "latents" / "videos-00000.safetensors"))
    assert shard["latents"].shape == (10, 4, 4, 8, 8) and shard["text"].shape == (10, 77, 32)
    assert load_file(str(chain["root"] / "latents" / "images-00000.safetensors"))["latents"].shape == (4, 4, 1, 8, 8)


def test_distill_at_least_halves_held_out_denoising_loss(chain):
    result = summary(chain["root"] / "run1")
    assert result["finished"] and result["step"] == 40
    assert result["eval_denoise_last"] <= 0.5 * result["eval_denoise_first"], result
    log = pd.read_csv(chain["root"] / "run1" / "log.csv")
    assert {"loss", "loss_denoise", "eval_denoise", "lr"} <= set(log.columns)
    assert (chain["root"] / "run1" / "loss.png").stat().st_size > 0


def test_adversarial_4_step_samples_are_closer_to_the_data_than_stage_1s(chain):
    """Metric: latent MSE of each 4-step sample (no guidance) of a held-out clip's caption to that clip, mean
    over the held-out clips; the value at step 0 is the stage-1 model's."""
    result = summary(chain["root"] / "run2")
    assert result["timesteps"] == [999, 749, 499, 249]
    assert result["eval_sample_mse_last"] < 0.8 * result["eval_sample_mse_first"], result
    log = pd.read_csv(chain["root"] / "run2" / "log.csv")
    assert {"loss_adversarial", "loss_reconstruction", "loss_disc"} <= set(log.columns)


def test_runs_hold_no_pickles(chain):
    files = [p for run in ("run1", "run2") for p in (chain["root"] / run).rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pt", ".pth", ".bin", ".pkl", ".ckpt")]
    checkpoint = chain["root"] / "run2" / "checkpoints" / "step_000030"
    assert {
        "generator.safetensors",
        "discriminator_heads.safetensors",
        "optimizer_generator.safetensors",
        "optimizer_discriminator.safetensors",
        "ema_generator.safetensors",
        "rng.safetensors",
        "state.json",
    } <= {p.name for p in checkpoint.iterdir()}


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(chain, cli):
    root = chain["root"]
    common = [
        "train",
        "distill",
        "--space",
        chain["space"],
        "--data",
        root / "latents",
        "--max-steps",
        6,
        "--batch-size",
        2,
        "--set",
        "checkpoint_every=100",
        "--set",
        "ema_decay=0.9",
        "--set",
        "warmup_steps=2",
    ]
    assert cli(*common, "--out", root / "whole")[0] == 0
    assert cli(*common, "--out", root / "parts", "--stop-after", 3)[0] == 0
    assert not (root / "parts" / "model").exists() and summary(root / "parts")["step"] == 3
    assert cli(*common, "--out", root / "parts", "--resume")[0] == 0
    whole = load_file(str(root / "whole" / "model" / "diffusion_pytorch_model.safetensors"))
    parts = load_file(str(root / "parts" / "model" / "diffusion_pytorch_model.safetensors"))
    assert whole.keys() == parts.keys() and all(torch.equal(whole[k], parts[k]) for k in whole)
    log = pd.read_csv(root / "parts" / "log.csv")
    assert log["step"].tolist() == pd.read_csv(root / "whole" / "log.csv")["step"].tolist()
    # and a run does not silently train over another one
    code, _, err = cli(*common, "--out", root / "whole")
    assert code == 2 and "--resume" in err


def test_data_parallel_processes_train_the_same_weights(chain):
    root = chain["root"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29513",
        "-m",
        "nas",
        "train",
        "distill",
        "--space",
        str(chain["space"]),
        "--data",
        str(root / "latents"),
        "--out",
        str(root / "ddp"),
        "--max-steps",
        "3",
        "--batch-size",
        "2",
        "--set",
        "ema_decay=null",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = summary(root / "ddp")
    assert result["processes"] == 2
    prints = result["weights_fingerprints"]
    assert len(prints) == 2 and prints[0] == prints[1]


@pytest.mark.parametrize("stage", ["distill", "adversarial", "decoder"])
def test_example_configs_load(stage):
    from nas.train import load_config
    from nas.train.stage import STAGES

    cls = STAGES[stage][0]
    config = load_config(cls, ROOT / "examples" / f"{stage}.yaml", {"max_steps": 7})
    assert config.max_steps == 7 and config.mixed_precision == "bf16" and config.lr > 0


def test_train_input_errors_are_one_line(chain, cli, tmp_path):
    code, _, err = cli("train", "distill", "--space", chain["space"], "--data", tmp_path, "--out", tmp_path / "r")
    assert code == 2 and "manifest.json" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: fast\n")
    code, _, err = cli("train", "distill", "--config", bad)
    assert code == 2 and "lr must be float" in err
    code, _, err = cli(
        "train", "adversarial", "--init", tmp_path, "--data", chain["root"] / "latents", "--out", tmp_path / "r2"
    )
    assert code == 2 and "not a finished distill run" in err
    code, _, err = cli(
        "generate",
        "--model",
        tmp_path,
        "--text-encoder",
        chain["root"] / "clip",
        "--prompt",
        "x",
        "--latents-only",
        "-o",
        tmp_path / "x.safetensors",
    )
    assert code == 2 and "no model/ folder" in err


def test_generate_decodes_with_a_pruned_decoder_whose_encoder_encode_refuses(chain, cli, tmp_path):
    """`nas prune --decoder` writes a folder any `--vae` takes for decoding; its encoder (pruned, not
    recovered) is refused by `nas data encode` with one line naming the source VAE."""
    root = chain["root"]
    code, _, err = cli(
        "prune", root / "vae", "--decoder", "--widths", "4,4,8,8", "--no-compare", "-o", tmp_path / "dec"
    )
    assert code == 0, err
    args = ["--model", root / "run2", "--text-encoder", root / "clip", "--prompt", "a red square", "--sampling-steps"]
    code, _, err = cli("generate", *args, 1, "--vae", tmp_path / "dec", "-o", tmp_path / "light.mp4")
    assert code == 0, err
    assert read_video(tmp_path / "light.mp4").shape == (4, 64, 64, 3)
    code, _, err = cli(
        "data", "encode", root / "videos", "--vae", tmp_path / "dec", "--text-encoder", root / "clip",
        "--space", chain["space"], "-o", tmp_path / "latents",
    )  # fmt: skip
    assert code == 2 and "encode with the source VAE" in err and str(root / "vae") in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "latents").exists()


def test_feature_distillation_from_a_unet_motion_model_teacher(chain, cli):
    """An AnimateDiff-style teacher of other widths: 1x1 projections bridge them and the student's
    output and block features move towards the teacher's."""
    from diffusers import UNetMotionModel

    root = chain["root"]
    torch.manual_seed(0)
    UNetMotionModel(
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("CrossAttnDownBlockMotion",) * 3 + ("DownBlockMotion",),
        up_block_types=("UpBlockMotion",) + ("CrossAttnUpBlockMotion",) * 3,
        cross_attention_dim=32,
        num_attention_heads=4,
        motion_num_attention_heads=2,
        motion_max_seq_length=8,
    ).save_pretrained(root / "motion_teacher")
    code, _, err = cli(
        "train",
        "distill",
        "--space",
        chain["space"],
        "--data",
        root / "latents",
        "--out",
        root / "student",
        "--teacher",
        root / "motion_teacher",
        "--max-steps",
        20,
        "--batch-size",
        2,
        "--lr",
        "1e-3",
        "--set",
        "loss_denoise=0",
        "--set",
        "log_every=1",
        "--set",
        "ema_decay=null",
    )
    assert code == 0, err
    log = pd.read_csv(root / "student" / "log.csv").dropna(subset=["loss_feature"])
    assert log["loss_feature"].tail(5).mean() < 0.6 * log["loss_feature"].head(5).mean()
    assert log["loss_output"].tail(5).mean() < log["loss_output"].head(5).mean()
    weights = load_file(str(root / "student" / "checkpoints" / "step_000020" / "student.safetensors"))
    assert weights["projections.down_blocks_0.weight"].shape == (16, 32, 1, 1)
    assert weights["projections.mid_block.weight"].shape == (32, 64, 1, 1)


def test_distill_proxy_searches_on_encoded_latents(chain, cli, tmp_path):
    from nas.cost.roofline import CHIPS, estimate_table
    from nas.space import SearchSpace

    estimate_table(SearchSpace.load(chain["space"]), CHIPS["a18-pro-ne"]).save(tmp_path / "table.csv")
    code, out, err = cli(
        "search",
        chain["space"],
        "--table",
        tmp_path / "table.csv",
        "--latency-budget",
        "1e9",
        "--trials",
        "3",
        "--proxy",
        "distill",
        "--proxy-option",
        f"data={chain['root'] / 'latents'}",
        "--proxy-option",
        "train_steps=2",
        "--proxy-option",
        "clips=4",
        "--out",
        tmp_path / "run",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["proxy_options"]["data"] == str(chain["root"] / "latents") and summary["pareto"] >= 1
    # the tiny space at its own 128 px does not fit these 64 px latents: one line naming the manifest
    code, _, err = cli(
        "search",
        TINY,
        "--table",
        tmp_path / "table.csv",
        "--trials",
        "1",
        "--proxy",
        "distill",
        "--proxy-option",
        f"data={chain['root'] / 'latents'}",
        "--out",
        tmp_path / "bad",
    )
    assert code == 2 and "manifest.json: data does not fit space tiny" in err
