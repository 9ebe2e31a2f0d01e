"""The adversarial stage's evaluation samples the captions of held-out clips only (issue 11, item 5):
evaluating on training captions would reward memorising the training clips."""

from __future__ import annotations

import importlib
import json
import sys

import torch
from safetensors.torch import save_file

from nas.data.latents import LatentDataset
from nas.data.schedule import noise_scheduler
from nas.model import VideoUNet
from nas.space import SearchSpace
from nas.train import AdversarialConfig, adversarial
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from train_chain import write_space  # noqa: E402  (the tiny 64x64 px space the training chain uses)

adversarial_module = importlib.import_module("nas.train.adversarial")  # nas.train.adversarial is also the function


def write_latents(folder, space: SearchSpace, clips: int) -> None:
    """A ``nas data encode`` folder of random clips, each with its own caption embedding."""
    v, g = space.video, torch.Generator().manual_seed(0)
    folder.mkdir()
    save_file(
        {
            "latents": torch.randn(
                clips, v.latent_channels, v.frames, v.latent_height, v.latent_width, generator=g
            ).half(),
            "text": torch.randn(clips, space.text_tokens, space.cross_attention_dim, generator=g).half(),
            "text_pooled": torch.randn(clips, space.cross_attention_dim, generator=g).half(),
        },
        str(folder / "videos-00000.safetensors"),
    )
    samples = [
        {
            "source": f"clip_{i}.mp4",
            "caption": f"clip {i}",
            "kind": "video",
            "index": i,
            "shard": "videos-00000.safetensors",
        }
        for i in range(clips)
    ]
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "space": space.name,
                "frames": v.frames,
                "latent_channels": v.latent_channels,
                "latent_height": v.latent_height,
                "latent_width": v.latent_width,
                "text_tokens": space.text_tokens,
                "text_dim": space.cross_attention_dim,
                "samples": samples,
                "shards": [{"file": "videos-00000.safetensors", "kind": "video", "count": clips, "frames": v.frames}],
            }
        )
    )


def test_adversarial_evaluation_samples_only_held_out_captions(tmp_path, monkeypatch):
    space = SearchSpace.load(write_space(tmp_path))
    write_latents(tmp_path / "latents", space, clips=6)
    init = tmp_path / "stage1"  # a finished distill run: model/ and scheduler/
    torch.manual_seed(0)
    VideoUNet.from_space(space, space.architecture("reference")).save_pretrained(init / "model")
    noise_scheduler().save_pretrained(init / "scheduler")
    prompted = []
    sample_latents = adversarial_module.sample_latents

    def spy(model, sampler, text, steps, noise):
        prompted.append(text.clone())
        return sample_latents(model, sampler, text, steps, noise)

    monkeypatch.setattr(adversarial_module, "sample_latents", spy)
    config = AdversarialConfig(
        init=str(init),
        data=str(tmp_path / "latents"),
        out=str(tmp_path / "run"),
        max_steps=1,
        holdout=2,
        eval_samples=8,
        disc_heads=4,
        checkpoint_every=1,
        log_every=1,
        lr=1e-4,
    )
    summary = adversarial(config)

    data = LatentDataset(tmp_path / "latents")
    train, held_out = data.split(2)
    held_texts = [data.get([i])["text"] for i in held_out]
    train_texts = [data.get([i])["text"] for i in train]
    assert len(prompted) == 2 * len(held_out)  # at step 0 and at the end, every held-out clip once
    for text in prompted:
        assert any(torch.equal(text, h) for h in held_texts)
        assert not any(torch.equal(text, t) for t in train_texts)
    assert summary["eval_sample_mse_first"] is not None and summary["eval_sample_mse_last"] is not None
