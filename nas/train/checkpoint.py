"""Checkpoints for exact resume, with no pickles: safetensors for tensors, JSON for the rest.

A checkpoint folder ``checkpoints/step_000123/`` holds each module's weights, each optimizer
(its per-parameter tensors flattened into safetensors, its param_groups as JSON), the EMA, the
random-number states (the trainer's data/noise generator and torch's global ones) and the step.
It is written to a temporary folder and renamed, so a run killed mid-write leaves the previous
checkpoint intact. Resuming restores all of it, so the rest of the run is bit-identical on a
deterministic device.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from nas.errors import NasError


def save_checkpoint(
    folder: Path,
    step: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, Any],
    emas: dict[str, Any],
    generator: torch.Generator,
) -> Path:
    """Write ``folder/step_{step:06d}`` atomically; returns its path."""
    final = folder / f"step_{step:06d}"
    tmp = folder / f".tmp_step_{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, module in modules.items():
        save_file(_contiguous(module.state_dict()), str(tmp / f"{name}.safetensors"))
    groups = {}
    for name, optimizer in optimizers.items():
        tensors, groups[name] = _flatten_optimizer(optimizer.state_dict())
        save_file(tensors, str(tmp / f"optimizer_{name}.safetensors"))
    for name, ema in emas.items():
        save_file(_contiguous(ema.state_dict()), str(tmp / f"ema_{name}.safetensors"))
    rng = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "param_groups": groups}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(p for p in folder.glob("step_*") if (p / "state.json").is_file())
    return found[-1] if found else None


def load_checkpoint(
    path: Path,
    modules: dict[str, nn.Module],
    optimizers: dict[str, Any],
    emas: dict[str, Any],
    generator: torch.Generator,
) -> int:
    """Restore everything :func:`save_checkpoint` wrote; returns the step to continue from."""
    try:
        state = json.loads((path / "state.json").read_text())
        for name, module in modules.items():
            module.load_state_dict(load_file(str(path / f"{name}.safetensors")))
        for name, optimizer in optimizers.items():
            tensors = load_file(str(path / f"optimizer_{name}.safetensors"))
            optimizer.load_state_dict(_unflatten_optimizer(tensors, state["param_groups"][name]))
        for name, ema in emas.items():
            ema.load_state_dict(load_file(str(path / f"ema_{name}.safetensors")))
        rng = load_file(str(path / "rng.safetensors"))
    except (OSError, KeyError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise NasError(f"{path}: cannot resume from this checkpoint ({str(exc).splitlines()[0]})") from None
    generator.set_state(rng["generator"])
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available():
        cuda = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda"))]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    return int(state["step"])


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in state.items()}


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """torch optimizer state -> ({"<param>.<key>": tensor}, JSON-able param_groups)."""
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"{index}.{key}"] = torch.as_tensor(value).detach().contiguous()
    return tensors, state["param_groups"]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": groups}
