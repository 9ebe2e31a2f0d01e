"""The frozen pretrained parts around the UNet: the VAE and the CLIP text encoder, from local folders.

Both load through :func:`nas.model.loading.load_pretrained` (local safetensors, no pickles).
A folder can be the model itself or a diffusers pipeline folder (``vae/``, ``text_encoder/`` + ``tokenizer/``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from nas.errors import NasError
from nas.model.loading import PRUNE_REPORT, load_pretrained, pruned_part


def load_vae(path: str | Path, encoding: bool = False):
    """A diffusers AutoencoderKL from ``path`` or ``path/vae``, in eval mode. ``encoding``: it will make
    latents, so a VAE whose encoder ``nas prune --decoder`` cut down without recovering it is refused."""
    from diffusers import AutoencoderKL

    folder = _folder(path, "vae", "config.json")
    report = pruned_part(folder) if encoding else None
    if report is not None and report.get("part") == "decoder":
        raise NasError(
            f"{folder}: a pruned decoder whose encoder was not recovered ({PRUNE_REPORT}); "
            f"encode with the source VAE ({report.get('source', 'named in the report')}) and decode with this one"
        )
    return load_pretrained(AutoencoderKL, folder).eval().requires_grad_(False)


def load_text_encoder(path: str | Path):
    """(tokenizer, CLIPTextModel) from ``path`` or from ``path/tokenizer`` + ``path/text_encoder``."""
    from transformers import CLIPTextModel, CLIPTokenizer

    model_dir = _folder(path, "text_encoder", "config.json")
    tokenizer_dir = Path(path) / "tokenizer" if (Path(path) / "tokenizer").is_dir() else model_dir
    try:
        tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise NasError(
            f"{tokenizer_dir}: no CLIP tokenizer here (vocab.json + merges.txt) ({_first_line(exc)})"
        ) from None
    model = load_pretrained(CLIPTextModel, model_dir)
    return tokenizer, model.eval().requires_grad_(False)


@torch.no_grad()
def encode_text(tokenizer, text_encoder, captions: list[str], tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token embeddings (N, tokens, D) for cross-attention and the pooled embedding (N, D)."""
    ids = tokenizer(captions, padding="max_length", max_length=tokens, truncation=True, return_tensors="pt").input_ids
    out = text_encoder(ids.to(text_encoder.device))
    return out.last_hidden_state.float().cpu(), out.pooler_output.float().cpu()


def vae_scale(vae) -> tuple[float, float]:
    """(scaling_factor, shift_factor) that bring the VAE's latents to about unit variance."""
    return float(vae.config.scaling_factor), float(vae.config.shift_factor or 0.0)


def _folder(path: str | Path, sub: str, marker: str) -> Path:
    path = Path(path)
    if (path / sub / marker).is_file():
        return path / sub
    if (path / marker).is_file():
        return path
    raise NasError(f"{path}: no {marker} here or in {sub}/ (a local from_pretrained folder is needed)")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
