"""``nas data encode``: videos and images + captions -> sharded VAE latents and text embeddings.

Training then never decodes a pixel: every sample is one latent clip (C, F, h, w) -- or a
one-frame latent for a still image (image-video joint training) -- with its caption's CLIP
token embeddings (T, D) and pooled embedding (D). Shards hold one kind each (``videos-*`` or
``images-*``, since the frame counts differ) as float16 safetensors; ``manifest.json`` lists
the shards, every sample's source and caption, the shape, the VAE scaling, and every file
that was skipped and why. A broken file is skipped and listed, never fatal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from nas import outputs
from nas.data.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, clip_starts, fit, read_image, read_video
from nas.data.pretrained import encode_text, load_text_encoder, load_vae, vae_scale
from nas.errors import NasError
from nas.space import SearchSpace

MANIFEST = "manifest.json"


def encode_dataset(
    source: str | Path,
    vae: str | Path,
    text_encoder: str | Path,
    out: str | Path,
    space: SearchSpace,
    captions: str | Path | None = None,
    stride: int = 1,
    clips_per_video: int = 1,
    shard_size: int = 256,
    batch_frames: int = 16,
    device: str = "cpu",
) -> dict[str, Any]:
    """Encode every file listed in the captions CSV (default ``source/captions.csv``); returns the manifest."""
    source, out = Path(source), Path(out)
    if stride < 1 or clips_per_video < 1 or shard_size < 1 or batch_frames < 1:
        raise NasError("nas data encode: --stride, --clips-per-video, --shard-size and --batch-frames must be positive")
    outputs.claim(encoded_outputs(out), [captions, *outputs.files_of(source, vae, text_encoder)])
    rows = _caption_rows(Path(captions) if captions else source / "captions.csv")
    vae_model = load_vae(vae, encoding=True).to(device)
    tokenizer, text_model = load_text_encoder(text_encoder)
    text_model.to(device)
    if text_model.config.hidden_size != space.cross_attention_dim:
        raise NasError(
            f"{text_encoder}: text width {text_model.config.hidden_size}, but {space.source} "
            f"cross-attends to width {space.cross_attention_dim}"
        )
    if vae_model.config.latent_channels != space.video.latent_channels:
        raise NasError(
            f"{vae}: {vae_model.config.latent_channels} latent channels, {space.source} needs "
            f"{space.video.latent_channels}"
        )
    scaling, shift = vae_scale(vae_model)
    video = space.video
    out.mkdir(parents=True, exist_ok=True)
    writers = {kind: _ShardWriter(out, kind, shard_size) for kind in ("videos", "images")}
    skipped = []
    for file, caption in tqdm(rows, desc="encode", unit="file"):
        path = source / file
        try:
            clips = _load_clips(path, video.frames, video.height, video.width, stride, clips_per_video)
        except Exception as exc:  # any decoder failure: skip and report, never stop the whole set
            skipped.append({"file": file, "reason": _reason(exc)})
            continue
        kind = "images" if path.suffix.lower() in IMAGE_SUFFIXES else "videos"
        text, pooled = encode_text(tokenizer, text_model, [caption], space.text_tokens)
        for start, pixels in clips:
            latents = _encode_pixels(vae_model, pixels, scaling, shift, batch_frames, device)
            writers[kind].add(latents, text[0], pooled[0], {"source": file, "start_frame": start, "caption": caption})
    shards, samples = [], []
    for writer in writers.values():
        writer.flush()
        shards += writer.shards
        samples += writer.samples
    if not samples:
        raise NasError(f"{source}: nothing could be encoded ({len(skipped)} file(s) skipped)")
    manifest = {
        "space": space.name,
        "frames": video.frames,
        "height": video.height,
        "width": video.width,
        "latent_channels": video.latent_channels,
        "latent_height": video.latent_height,
        "latent_width": video.latent_width,
        "text_tokens": space.text_tokens,
        "text_dim": space.cross_attention_dim,
        "stride": stride,
        "vae": str(vae),
        "text_encoder": str(text_encoder),
        "scaling_factor": scaling,
        "shift_factor": shift,
        "shards": shards,
        "samples": samples,
        "skipped": skipped,
    }
    outputs.write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


is_manifest = outputs.json_keys("frames", "shards", "samples")


def encoded_outputs(out: Path) -> list[outputs.Derived]:
    """The manifest (nas's by its keys) and the shards already in ``out`` (nas's where the manifest is)."""
    manifest = out / MANIFEST
    shards = sorted(p for kind in ("videos", "images") for p in out.glob(f"{kind}-*.safetensors"))
    return [
        outputs.Derived(manifest, "the data's manifest", is_manifest),
        *(outputs.Derived(p, "a latent shard", outputs.ours_if(manifest, is_manifest)) for p in shards),
    ]


def _caption_rows(csv: Path) -> list[tuple[str, str]]:
    if not csv.is_file():
        raise NasError(f"{csv}: no captions file (a CSV with columns file, caption)")
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise NasError(f"{csv}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    if not {"file", "caption"} <= set(table.columns):
        raise NasError(f"{csv}: needs columns 'file' and 'caption', has {', '.join(table.columns)}")
    return list(zip(table["file"], table["caption"]))


def _load_clips(path: Path, frames: int, height: int, width: int, stride: int, clips: int):
    """[(start_frame, pixels (F', 3, H, W))]: F' = frames for a video, 1 for a still image."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return [(0, fit(read_image(path), height, width))]
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"unknown file type {suffix or '(none)'}")
    video = read_video(path)
    starts = clip_starts(len(video), frames, stride, clips)
    if not starts:
        raise ValueError(
            f"{len(video)} frames, a clip needs {(frames - 1) * stride + 1} (frames {frames}, stride {stride})"
        )
    return [(s, fit(video[s : s + (frames - 1) * stride + 1 : stride], height, width)) for s in starts]


@torch.no_grad()
def _encode_pixels(vae, pixels: torch.Tensor, scaling: float, shift: float, batch: int, device: str) -> torch.Tensor:
    """(F, 3, H, W) in [-1, 1] -> scaled latents (C, F, h, w); the posterior mean, so encoding is deterministic."""
    means = [vae.encode(chunk.to(device)).latent_dist.mean for chunk in pixels.split(batch)]
    return ((torch.cat(means) - shift) * scaling).permute(1, 0, 2, 3).float().cpu()


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class _ShardWriter:
    """Collects samples of one kind and writes them ``size`` at a time as float16 safetensors."""

    def __init__(self, folder: Path, kind: str, size: int):
        self.folder, self.kind, self.size = folder, kind, size
        self.pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.shards: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []

    def add(self, latents, text, pooled, info: dict[str, Any]) -> None:
        self.samples.append({**info, "kind": self.kind[:-1], "index": len(self.pending)})
        self.pending.append((latents, text, pooled))
        if len(self.pending) == self.size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        name = f"{self.kind}-{len(self.shards):05d}.safetensors"
        latents, text, pooled = (torch.stack(t).half().contiguous() for t in zip(*self.pending))
        save_file({"latents": latents, "text": text, "text_pooled": pooled}, str(self.folder / name))
        for sample in self.samples[-len(self.pending) :]:
            sample["shard"] = name
        self.shards.append(
            {"file": name, "kind": self.kind[:-1], "count": len(self.pending), "frames": latents.shape[2]}
        )
        self.pending = []
