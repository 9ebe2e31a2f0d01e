"""Loading pretrained 2D UNet weights into the spatial part of a VideoUNet (local files only).

A pruned backbone keeps the names of the layers it keeps, so a full SD1.5 checkpoint
initialises it (BK-SDM style): every backbone tensor must be found with the same shape, while
tensors of removed layers are ignored and reported. Only safetensors are read (no pickles).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from nas.errors import NasError

WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.safetensors")


def spatial_weights_file(path: str | Path) -> Path:
    """The safetensors file behind ``path``: a file, a diffusers UNet folder or a pipeline folder."""
    path = Path(path)
    if path.is_dir():
        for name in WEIGHT_NAMES:
            if (path / name).is_file():
                return path / name
        raise NasError(f"{path}: no {' or '.join(WEIGHT_NAMES)} in this folder")
    if not path.is_file():
        raise NasError(f"{path}: no such file or folder")
    if path.suffix != ".safetensors":
        raise NasError(f"{path}: only .safetensors weights are read (pickled checkpoints are not loaded)")
    return path


def load_spatial_weights(unet: nn.Module, path: str | Path) -> list[str]:
    """Copy matching tensors into ``unet``; returns the checkpoint keys that were not used."""
    file = spatial_weights_file(path)
    try:
        state = load_file(str(file))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise NasError(f"{file}: not a readable safetensors file ({exc})") from None
    if any(k.startswith("model.diffusion_model.") for k in state):
        raise NasError(f"{file}: original (LDM) checkpoint layout; convert it to diffusers format first")
    own = unet.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise NasError(f"{file}: {len(missing)} backbone tensor(s) missing, e.g. {missing[0]}")
    mismatched = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if mismatched:
        k = mismatched[0]
        raise NasError(f"{file}: shape of {k} is {tuple(state[k].shape)}, the backbone needs {tuple(own[k].shape)}")
    with torch.no_grad():
        unet.load_state_dict({k: state[k] for k in own}, strict=True)
    return sorted(set(state) - set(own))
