"""`nas prune --decoder` and `nas train decoder`: a VAE's decoder pruned, then recovered by distillation.

The teacher (tests/prune_models.py) is a tiny AutoencoderKL trained for 200 steps on synthetic
stills, so that how much of its decoding a pruned decoder keeps is measurable on stills it never
saw: the pruned decoder must decode closer to it than a random decoder of the same shape, and
recovery must raise the held-out PSNR by a margin.
"""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import AutoencoderKL

from nas.cli import main
from nas.prune import prune_decoder
from tests.conftest import TINY
from tests.prune_models import (
    DECODER,
    FRAME,
    VAE,
    VAE_HOLDOUT,
    one_line_error,
    train_vae,
    write_latent_frames,
    write_vae_latents,
)

RECOVERY = ["--max-steps", 50, "--batch-size", 8, "--lr", 2e-3, "--set", f"holdout={VAE_HOLDOUT}"]
WIDTHS = ",".join(str(w) for w in DECODER["block_out_channels"])
MARGIN_DB = 3.0  # measured: 8.0 dB pruned -> 14.8 dB recovered (random decoder 6.5 dB)


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    """Teacher, its latents, `nas prune --decoder` and `nas train decoder`, made once."""
    root = tmp_path_factory.mktemp("decoder")
    train_vae(root / "sd" / "vae", steps=200)  # a pipeline-like folder: root/sd holds vae/
    write_vae_latents(root / "latents", root / "sd" / "vae")
    prune = ["prune", root / "sd", "--decoder", "--widths", WIDTHS, "--layers-per-block", 1, "-o", root / "pruned"]
    assert main([str(a) for a in prune]) == 0
    train = ["train", "decoder", "--init", root / "pruned", "--teacher", root / "sd", "--data", root / "latents"]
    train += ["--out", root / "run", *RECOVERY, "--set", "ema_decay=null", "--set", "checkpoint_every=1000"]
    assert main([str(a) for a in train]) == 0
    summary = json.loads((root / "run" / "summary.json").read_text())
    return {"root": root, "summary": summary, "report": _report(root / "pruned")}


def _report(folder):
    return json.loads((folder / "prune_report.json").read_text())


def test_recovery_beats_the_pruned_decoder_which_beats_a_random_one(recovered):
    s = recovered["summary"]
    print(
        f"held-out PSNR to the teacher's frames: random {s['eval_psnr_random']:.2f} dB, pruned "
        f"{s['eval_psnr_first']:.2f} dB, recovered {s['eval_psnr_last']:.2f} dB; SSIM {s['eval_ssim_random']:.3f}, "
        f"{s['eval_ssim_first']:.3f}, {s['eval_ssim_last']:.3f}"
    )
    assert s["finished"] and s["held_out_frames"] == VAE_HOLDOUT
    assert s["eval_psnr_last"] > s["eval_psnr_first"] + MARGIN_DB
    assert s["eval_psnr_first"] > s["eval_psnr_random"] and s["eval_ssim_first"] > s["eval_ssim_random"]
    assert s["eval_ssim_last"] > s["eval_ssim_first"]


def test_report_has_flops_depth_and_function_against_random(recovered):
    report = recovered["report"]
    assert report["part"] == "decoder" and "not recovered" in report["encoder"]
    assert report["flops_ratio"] <= 0.25 and report["frame_size"] == [FRAME, FRAME]
    assert report["params_after"] * 4 < report["params_before"]
    assert [(lv["width_after"], lv["layers_after"]) for lv in report["levels"]] == [(4, 1), (8, 1), (8, 1)]
    # the decoder's up blocks keep their first and last layers; the encoder's down blocks their first
    kept = {(lay["block"], lay["target"], lay["source"]) for lay in report["layers"]}
    assert {("decoder.up_blocks.0", 0, 0), ("decoder.up_blocks.0", 1, 2), ("encoder.down_blocks.2", 0, 0)} <= kept
    assert report["function"]["psnr_pruned"] > report["function"]["psnr_random"]  # on random latents


def test_recovered_folder_is_an_autoencoderkl_with_its_report(recovered):
    folder = recovered["root"] / "run" / "vae"
    vae = AutoencoderKL.from_pretrained(folder, use_safetensors=True, local_files_only=True)
    assert list(vae.config.block_out_channels) == DECODER["block_out_channels"]
    latent = FRAME // 4
    assert vae.decode(torch.zeros(1, 4, latent, latent)).sample.shape == (1, 3, FRAME, FRAME)
    report = _report(folder)
    assert (
        "not recovered" in report["encoder"]
        and report["recovery"]["eval_psnr_last"] > report["function"]["psnr_pruned"]
    )
    assert not (recovered["root"] / "run" / "model_index.json").exists()  # not a VideoPipeline run


def test_pruning_to_the_same_shape_is_exact_and_taylor_scores_work(recovered):
    teacher = recovered["root"] / "sd" / "vae"
    same = {k: VAE[k] for k in ("block_out_channels", "layers_per_block")}
    _, report = prune_decoder(teacher, same)
    assert report["function"]["psnr_pruned"] == 100.0 and report["flops_ratio"] == 1.0
    fewer_groups = {**DECODER, "norm_num_groups": 2, "mid_block_add_attention": False}  # 2 of 4 groups kept whole
    pruned, report = prune_decoder(teacher, fewer_groups, importance="taylor")
    assert report["mid_attention"] == [True, False] and report["calibration_batches"] == 1
    assert pruned.decoder.conv_norm_out.num_groups == 2 and pruned.decoder.mid_block.attentions[0] is None
    assert report["function"]["psnr_pruned"] > report["function"]["psnr_random"]


def test_decoder_resume_gives_the_same_weights(recovered, cli, tmp_path):
    root = recovered["root"]
    common = ["--init", root / "pruned", "--teacher", root / "sd", "--data", root / "latents", "--max-steps", 6]
    common += ["--batch-size", 4, "--set", "holdout=4", "--set", "checkpoint_every=1000"]
    assert cli("train", "decoder", *common, "--out", tmp_path / "once")[0] == 0
    assert cli("train", "decoder", *common, "--out", tmp_path / "cut", "--stop-after", 3)[0] == 0
    code, out, err = cli("train", "decoder", *common, "--out", tmp_path / "cut", "--resume")
    assert code == 0, err
    once = json.loads((tmp_path / "once" / "summary.json").read_text())
    assert json.loads(out)["weights_fingerprints"] == once["weights_fingerprints"]


def test_bad_input_is_one_line(recovered, cli, tmp_path):
    root = recovered["root"]
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((root / "sd" / "vae" / "config.json").read_text())
    (pickled / "diffusion_pytorch_model.bin").write_bytes(b"never opened")
    err = one_line_error(cli, "prune", pickled, "--decoder", "--widths", WIDTHS, "-o", tmp_path / "o")
    assert "pickled" in err and "diffusion_pytorch_model.bin" in err
    err = one_line_error(cli, "prune", root / "sd", "--decoder", "--widths", "16,32,32", "-o", tmp_path / "o")
    assert "wider" in err and "diffusion_pytorch_model.safetensors" in err
    err = one_line_error(
        cli, "prune", root / "sd", "--decoder", "--widths", "8,16,16", "--layers-per-block", 3, "-o", tmp_path / "o"
    )
    assert "deeper" in err
    assert "--widths" in one_line_error(cli, "prune", root / "sd", "--decoder", "-o", tmp_path / "o")
    err = one_line_error(cli, "prune", root / "sd" / "vae", "--space", TINY, "-o", tmp_path / "o")
    assert "--decoder" in err  # a VAE given where a UNet is pruned: the hint names the flag
    assert not (tmp_path / "o").exists()
    # a data folder of another latent width than the decoders'
    wide = write_latent_frames(tmp_path / "wide", torch.zeros(4, 8, 8, 8), torch.zeros(4, 1, 4))
    err = one_line_error(
        cli,
        "train",
        "decoder",
        "--init",
        root / "pruned",
        "--teacher",
        root / "sd",
        "--data",
        wide,
        "--out",
        tmp_path / "r",
    )
    assert "latent channels" in err and "8" in err
