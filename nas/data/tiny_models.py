"""Tiny stand-ins for the pretrained parts around the UNet, written as local ``from_pretrained`` folders.

A real run takes SD1.5's VAE and CLIP text encoder; these are the same classes at toy size, built
offline with random weights, so the whole chain (encode -> train -> generate -> export) runs on a
laptop CPU in minutes with no download: a diffusers ``AutoencoderKL`` (8x down, as SD's) and a
transformers ``CLIPTextModel`` with a ``CLIPTokenizer`` whose vocabulary is the byte-level BPE
alphabet (every character a token, no merges), as wide as the space's cross-attention.

The folder is laid out as a diffusers pipeline folder (``vae/``, ``text_encoder/``, ``tokenizer/``),
which every ``--vae`` / ``--text-encoder`` flag accepts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nas import outputs
from nas.errors import NasError
from nas.space.generation import TINY_VOCAB, tiny_text_encoder_config, tiny_vae_config

SPECIAL = ["<|startoftext|>", "<|endoftext|>"]


def write_tiny_models(
    out: str | Path,
    width: int,
    tokens: int = 77,
    latent_channels: int = 4,
    images: np.ndarray | None = None,
    seed: int = 0,
) -> Path:
    """``out/vae``, ``out/text_encoder`` and ``out/tokenizer``; ``images`` (N, H, W, 3 uint8) set the VAE's scale."""
    out = Path(out)
    write_vae(out / "vae", images, latent_channels=latent_channels, seed=seed)
    write_text_encoder(out / "text_encoder", width=width, tokens=tokens, seed=seed)
    write_tokenizer(out / "tokenizer", tokens=tokens)
    return out


def write_vae(folder: str | Path, images: np.ndarray | None = None, latent_channels: int = 4, seed: int = 0) -> Path:
    """A 4-level AutoencoderKL (8x down) whose scaling_factor brings ``images``' latents to unit std."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(**tiny_vae_config(latent_channels))  # the config `generation: {decoder: tiny}` prices
    if images is not None and len(images):
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
        with torch.no_grad():
            std = vae.encode(x).latent_dist.mean.std().item()
        vae.register_to_config(scaling_factor=1.0 / std)
    vae.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def write_text_encoder(folder: str | Path, width: int = 32, tokens: int = 77, seed: int = 0) -> Path:
    """A 2-layer CLIPTextModel ``width`` wide, with its tokenizer files in the same folder."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    if width < 4 or width % 4:
        raise NasError(f"text encoder width must be a positive multiple of 4 (4 heads), got {width}")
    vocab = write_tokenizer(folder, tokens)
    assert len(vocab) == TINY_VOCAB and vocab[SPECIAL[1]] == TINY_VOCAB - 1  # the ids the built-in config names
    torch.manual_seed(seed)
    config = CLIPTextConfig(**tiny_text_encoder_config(width, tokens))  # what `generation: {text_encoder: tiny}` prices
    CLIPTextModel(config).save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def write_tokenizer(folder: str | Path, tokens: int = 77) -> dict[str, int]:
    """CLIPTokenizer files: vocab.json (byte alphabet, word-final forms, specials), merges.txt (none)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = list(bytes_to_unicode().values())
    vocab = {tok: i for i, tok in enumerate(alphabet + [c + "</w>" for c in alphabet] + SPECIAL)}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "model_max_length": tokens,
                "bos_token": SPECIAL[0],
                "eos_token": SPECIAL[1],
                "pad_token": SPECIAL[1],
                "unk_token": SPECIAL[1],
                "tokenizer_class": "CLIPTokenizer",
            }
        )
    )
    return vocab


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level BPE alphabet: every byte as a printable character."""
    keep = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def calibration_frames(folder: str | Path, height: int, width: int, videos: int = 4) -> np.ndarray:
    """Frames of the first ``videos`` videos in ``folder``, fitted to ``height`` x ``width`` (uint8, N x H x W x 3)."""
    from nas.data.media import fit, read_video

    if not Path(folder).is_dir():
        raise NasError(f"{folder}: no such folder of videos")
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm"))
    if not paths:
        raise NasError(f"{folder}: no videos to calibrate the VAE's scale on")
    frames = np.concatenate([read_video(p) for p in paths[:videos]])
    return ((fit(frames, height, width) + 1) * 127.5).round().clamp(0, 255).permute(0, 2, 3, 1).byte().numpy()


def tiny_model_outputs(out: str | Path) -> list[outputs.Derived]:
    """The three folders :func:`write_tiny_models` writes, nas's where they hold the config it writes."""
    out = Path(out)
    return [
        outputs.Derived(
            out / "vae", "the tiny VAE", outputs.owner_file("config.json", outputs.json_keys("_class_name"))
        ),
        outputs.Derived(
            out / "text_encoder",
            "the tiny text encoder",
            outputs.owner_file("config.json", outputs.json_keys("model_type")),
        ),
        outputs.Derived(out / "tokenizer", "the tiny tokenizer", outputs.owner_file("tokenizer_config.json")),
    ]


def tiny_models_for_space(out: str | Path, space, calibrate: str | Path | None = None, seed: int = 0) -> Path:
    """:func:`write_tiny_models` sized for the search space ``space`` (a path or a SearchSpace).

    The text width and token count are the space's cross-attention ones, the latent channels its
    video's; ``calibrate`` (a folder of videos) sets the VAE's scaling factor from frames of the
    space's size. The tiny VAE downsamples 8x, so a space with another latent scale is refused.
    """
    from nas.space import SearchSpace

    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    outputs.claim(tiny_model_outputs(out), [space.source, *outputs.files_of(calibrate)])
    video = space.video
    if video.latent_scale != 8:
        raise NasError(f"{space.source}: the tiny VAE downsamples 8x, the space's latent_scale is {video.latent_scale}")
    images = calibration_frames(calibrate, video.height, video.width) if calibrate else None
    return write_tiny_models(
        out,
        width=space.cross_attention_dim,
        tokens=space.text_tokens,
        latent_channels=video.latent_channels,
        images=images,
        seed=seed,
    )
