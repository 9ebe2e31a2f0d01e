"""Reading a pretrained UNet2DConditionModel or AutoencoderKL for pruning: local files, safetensors only.

Accepted: a diffusers ``unet/`` (or ``vae/``) folder (config.json + diffusion_pytorch_model.safetensors,
or its sharded index), a pipeline folder holding one, or one diffusers-layout ``.safetensors`` file
with its config (next to it as config.json, or given). Refused with one line each, before any tensor
is read: pickled checkpoints (.bin/.ckpt/.pt/.pth are never loaded), the original LDM/CompVis layout
(``model.diffusion_model.*`` keys; a VAE's ``first_stage_model.*``, ``encoder.down.*``), folders without
the model, a config of another class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from nas.errors import NasError

WEIGHTS = "diffusion_pytorch_model.safetensors"
PICKLES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")


@dataclass(frozen=True)
class Kind:
    """What a source holds: its diffusers class, the pipeline subfolder it lives in, its name in
    messages, and the key prefixes of the original (LDM) layout that diffusers converts from."""

    class_name: str
    folder: str
    noun: str
    ldm_prefixes: tuple[str, ...]


UNET = Kind("UNet2DConditionModel", "unet", "UNet", ("model.diffusion_model.",))
AUTOENCODER = Kind("AutoencoderKL", "vae", "VAE", ("first_stage_model.", "encoder.down.", "decoder.up."))


@dataclass
class SourceModel:
    path: Path  # what names the source in messages (the weights file)
    config: dict[str, Any]
    files: list[Path]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        out = {}
        for file in self.files:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    out[key] = tuple(handle.get_slice(key).get_shape())
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {}
        for file in self.files:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    state[key] = handle.get_tensor(key).float()
        return state


def find_source(path: str | Path, config: str | Path | None = None, kind: Kind = UNET) -> SourceModel:
    path = Path(path)
    if not path.exists():
        raise NasError(f"{path}: no such file or folder")
    if path.is_dir():
        folder = path / kind.folder if (path / kind.folder).is_dir() else path
        files = _folder_weights(folder, kind)
        config_file = Path(config) if config else folder / "config.json"
    else:
        if path.suffix in PICKLES:
            raise NasError(
                f"{path}: a pickled checkpoint ({path.suffix}) is never loaded; "
                "convert it to diffusers safetensors first"
            )
        if path.suffix != ".safetensors":
            raise NasError(f"{path}: not a .safetensors file or a diffusers {kind.noun} folder")
        files = [path]
        config_file = Path(config) if config else path.parent / "config.json"
    if not config_file.is_file():
        raise NasError(f"{files[0]}: no {kind.noun} config ({config_file} is missing; pass --config)")
    try:
        cfg = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise NasError(f"{config_file}: not a JSON config ({exc})") from None
    if not isinstance(cfg, dict) or "block_out_channels" not in cfg:
        raise NasError(f"{config_file}: not a {kind.class_name} config (no block_out_channels)")
    if cfg.get("_class_name", kind.class_name) != kind.class_name:
        hint = " (a VAE's decoder is pruned with --decoder)" if cfg["_class_name"] == AUTOENCODER.class_name else ""
        raise NasError(f"{config_file}: a {cfg['_class_name']} config, not a {kind.class_name}{hint}")
    source = SourceModel(files[0], cfg, files)
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                keys = list(handle.keys())
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise NasError(f"{file}: not a readable safetensors file ({exc})") from None
        if any(k.startswith(kind.ldm_prefixes) for k in keys):
            raise NasError(
                f"{file}: original (LDM/CompVis) checkpoint layout ({kind.ldm_prefixes[0]}* keys); convert it to "
                "the diffusers layout first (diffusers' convert_original_stable_diffusion_to_diffusers.py)"
            )
    return source


def _folder_weights(folder: Path, kind: Kind) -> list[Path]:
    if (folder / WEIGHTS).is_file():
        return [folder / WEIGHTS]
    index = folder / f"{WEIGHTS}.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, json.JSONDecodeError, KeyError, AttributeError) as exc:
            raise NasError(f"{index}: not a safetensors index ({exc})") from None
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise NasError(f"{index}: shard {missing[0]} is missing")
        return [folder / s for s in shards]
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLES)
    if pickled:
        raise NasError(
            f"{folder / pickled[0]}: a pickled checkpoint is never loaded; save the {kind.noun} as safetensors"
        )
    raise NasError(f"{folder}: no {kind.noun} here (neither {WEIGHTS} nor {kind.folder}/{WEIGHTS})")
