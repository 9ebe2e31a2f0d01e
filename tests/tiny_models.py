"""Tiny pretrained-model stand-ins written to local folders, as the trainer's users would have them:
a diffusers AutoencoderKL, a transformers CLIPTextModel and a CLIPTokenizer (vocab.json + merges.txt),
all random and built in the test (no downloads), and a tiny search space at 64x64 px."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml

from tests.conftest import TINY

SPECIAL = ["<|startoftext|>", "<|endoftext|>"]


def write_space(folder: Path, frames: int = 4, size: int = 64) -> Path:
    """tiny.yaml at ``size`` x ``size`` px (latent size/8) and ``frames`` frames."""
    data = yaml.safe_load(TINY.read_text())
    data["video"].update({"frames": frames, "height": size, "width": size})
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_vae(folder: Path, images: np.ndarray | None = None) -> Path:
    """A 4-level AutoencoderKL (8x down) whose scaling_factor brings ``images``' latents to unit std."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        block_out_channels=[8, 8, 16, 16], sample_size=64)
    if images is not None:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
        with torch.no_grad():
            std = vae.encode(x).latent_dist.mean.std().item()
        vae.register_to_config(scaling_factor=1.0 / std)
    vae.save_pretrained(folder)
    return folder


def write_text_encoder(folder: Path, width: int = 32, tokens: int = 77) -> Path:
    """A 2-layer CLIPTextModel and a character-level CLIP BPE tokenizer (byte alphabet, no merges)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    folder.mkdir(parents=True, exist_ok=True)
    alphabet = list(bytes_to_unicode().values())
    vocab = {tok: i for i, tok in enumerate(alphabet + [c + "</w>" for c in alphabet] + SPECIAL)}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": tokens, "bos_token": SPECIAL[0], "eos_token": SPECIAL[1], "pad_token": SPECIAL[1],
        "unk_token": SPECIAL[1], "tokenizer_class": "CLIPTokenizer"}))
    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=tokens, bos_token_id=vocab[SPECIAL[0]],
                            eos_token_id=vocab[SPECIAL[1]], pad_token_id=vocab[SPECIAL[1]])
    CLIPTextModel(config).save_pretrained(folder)
    return folder


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level BPE alphabet: every byte as a printable character."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars
