"""Loading pretrained 2D UNet weights into the spatial part of a VideoUNet (local files only).

Every backbone tensor must be found with the same name and shape: the weights are a UNet of
exactly the space's backbone, as ``nas prune`` writes it from a bigger pretrained UNet (SD1.5),
or the ``model/`` of a training run (a VideoUNet: its ``spatial.*`` tensors are taken). A UNet
of another shape ends with one line naming ``nas prune``. Only safetensors are read (no pickles).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from nas.errors import NasError

WEIGHT_NAMES = (
    "diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "model/diffusion_pytorch_model.safetensors",
)
VIDEO_PREFIX = "spatial."  # a VideoUNet's (a run's model/) backbone tensors


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


def load_spatial_weights(unet: nn.Module, path: str | Path, space=None) -> list[str]:
    """Copy matching tensors into ``unet``; returns the checkpoint keys that were not used.

    ``space`` (the SearchSpace of the backbone, optional) makes the message for an unpruned UNet
    name the exact ``nas prune`` command."""
    file = spatial_weights_file(path)
    try:
        state = load_file(str(file))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise NasError(f"{file}: not a readable safetensors file ({exc})") from None
    if any(k.startswith("model.diffusion_model.") for k in state):
        raise NasError(f"{file}: original (LDM) checkpoint layout; convert it to diffusers format first")
    if any(k.startswith(VIDEO_PREFIX) for k in state):
        state = {k[len(VIDEO_PREFIX) :]: v for k, v in state.items() if k.startswith(VIDEO_PREFIX)}
    own = unet.state_dict()
    missing = [k for k in own if k not in state]
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if (missing or mismatched) and "conv_in.weight" in state:
        k = mismatched[0] if mismatched else missing[0]
        what = (
            f"{k} is {tuple(state[k].shape)}, the backbone needs {tuple(own[k].shape)}"
            if mismatched
            else f"it has no {k}"
        )
        space_file = getattr(space, "source", None) or "SPACE.yaml"
        origin = (
            f" (the space's backbone is pruned from {space.prune_from['model']})"
            if getattr(space, "prune_from", None)
            else ""
        )
        raise NasError(
            f"{file}: a UNet of another shape than the backbone ({what}){origin}; prune it first: "
            f"nas prune {path} --space {space_file} -o PRUNED_DIR, then pass PRUNED_DIR"
        )
    if missing:
        raise NasError(f"{file}: {len(missing)} backbone tensor(s) missing, e.g. {missing[0]}")
    with torch.no_grad():
        unet.load_state_dict({k: state[k] for k in own}, strict=True)
    return sorted(set(state) - set(own))
