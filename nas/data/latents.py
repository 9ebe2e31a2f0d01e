"""LatentDataset: the output of ``nas data encode`` as tensors for the trainer.

Shards are memory-mapped (safetensors ``safe_open``) and read one sample at a time, so a data
set larger than RAM trains as well as the tiny test set. Batches are drawn with an explicit
``torch.Generator``: the trainer owns that generator, checkpoints its state, and so resumes
on exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from nas.data.encode import MANIFEST
from nas.errors import NasError


class LatentDataset:
    """Samples of one encoded folder; ``videos`` and ``images`` are lists of sample indices."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise NasError(f"{self.folder}: no {MANIFEST} (make one with `nas data encode`)")
        try:
            self.manifest: dict[str, Any] = json.loads(path.read_text())
            self.samples: list[dict[str, Any]] = self.manifest["samples"]
            self.frames = int(self.manifest["frames"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise NasError(f"{path}: not a manifest written by `nas data encode` ({exc})") from None
        missing = [s["file"] for s in self.manifest.get("shards", []) if not (self.folder / s["file"]).is_file()]
        if missing:
            raise NasError(f"{path}: shard {missing[0]} is missing")
        self.videos = [i for i, s in enumerate(self.samples) if s["kind"] == "video"]
        self.images = [i for i, s in enumerate(self.samples) if s["kind"] == "image"]
        self._open: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def check_model(
        self, frames: int, channels: int, height: int, width: int, text_dim: int, text_tokens: int, what: str
    ) -> None:
        """Fail early, with one line, when this data cannot feed a model of the given shape."""
        m = self.manifest
        have = (
            m["frames"],
            m["latent_channels"],
            m["latent_height"],
            m["latent_width"],
            m["text_dim"],
            m["text_tokens"],
        )
        need = (frames, channels, height, width, text_dim, text_tokens)
        if have != need:
            names = ("frames", "latent channels", "latent height", "latent width", "text width", "text tokens")
            diff = ", ".join(f"{n} {h} vs {w}" for n, h, w in zip(names, have, need) if h != w)
            raise NasError(f"{self.folder / MANIFEST}: data does not fit {what} ({diff})")

    def split(self, holdout: int) -> tuple[list[int], list[int]]:
        """(train, held out) video indices: the last ``holdout`` videos are kept for evaluation."""
        if holdout < 0 or holdout >= len(self.videos):
            raise NasError(f"{self.folder}: cannot hold out {holdout} of {len(self.videos)} video clip(s)")
        cut = len(self.videos) - holdout
        return self.videos[:cut], self.videos[cut:]

    def get(self, indices: list[int], frame: list[int] | None = None) -> dict[str, torch.Tensor]:
        """Stack samples into a batch: latents (B, C, F, h, w) float32, text (B, T, D), text_pooled (B, D).

        ``frame`` picks one frame per sample (an image batch cut from videos); None keeps all.
        """
        latents, text, pooled = [], [], []
        for n, i in enumerate(indices):
            sample = self.samples[i]
            handle = self._handle(sample["shard"])
            x = handle.get_slice("latents")[sample["index"] : sample["index"] + 1]
            if frame is not None:
                x = x[:, :, frame[n] : frame[n] + 1]
            latents.append(x)
            text.append(handle.get_slice("text")[sample["index"] : sample["index"] + 1])
            pooled.append(handle.get_slice("text_pooled")[sample["index"] : sample["index"] + 1])
        return {
            "latents": torch.cat(latents).float(),
            "text": torch.cat(text).float(),
            "text_pooled": torch.cat(pooled).float(),
        }

    def draw(self, generator: torch.Generator, batch: int, kind: str, pool: list[int]):
        """Random (indices, frames) for :meth:`get`: ``kind`` "video" draws clips from ``pool`` (frames
        None); "image" draws stills and single frames of the pool's clips alike (image-video joint
        training); "frame" draws the same from the pool only (stills in the pool too)."""
        if kind == "video":
            picks = torch.randint(len(pool), (batch,), generator=generator).tolist()
            return [pool[p] for p in picks], None
        candidates = pool if kind == "frame" else self.images + pool
        picks = torch.randint(len(candidates), (batch,), generator=generator).tolist()
        frames = torch.randint(self.frames, (batch,), generator=generator).tolist()
        chosen = [candidates[p] for p in picks]
        return chosen, [0 if self.samples[i]["kind"] == "image" else f for i, f in zip(chosen, frames)]

    def _handle(self, shard: str):
        if shard not in self._open:
            self._open[shard] = safe_open(str(self.folder / shard), framework="pt")
        return self._open[shard]
