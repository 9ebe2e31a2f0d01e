"""Loading a saved model folder: local files and safetensors only, never a pickle.

``from_pretrained`` in diffusers and transformers falls back to a pickled ``.bin`` when no
``.safetensors`` is there, and unpickling a file runs whatever code it holds. Every folder the
package loads (a VideoUNet, a teacher, a VAE, a text encoder) goes through :func:`load_pretrained`:
it refuses a folder whose weights are only pickles, asks for ``use_safetensors=True`` and
``local_files_only=True``, checks that the config names the class being loaded, and turns a
corrupt file (a truncated safetensors, a bad config) into one line naming the folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.space.weights import safetensors_problem

PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
PRUNE_REPORT = "prune_report.json"  # written by `nas prune` beside the pruned model's config.json


def pruned_part(folder: str | Path) -> dict[str, Any] | None:
    """The prune report of a model folder written by ``nas prune`` (None for any other folder): a VAE
    whose report has ``part: decoder`` holds an encoder that was cut down with it and not recovered."""
    path = Path(folder) / PRUNE_REPORT
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NasError(f"{path}: not a JSON prune report ({exc})") from None
    return report if isinstance(report, dict) else None


def load_pretrained(cls: type, folder: str | Path, **kwargs: Any):
    """``cls.from_pretrained(folder)`` with safetensors only, local files only and one-line errors."""
    folder = Path(folder)
    config = folder / "config.json"
    if not config.is_file():
        raise NasError(f"{folder}: not a {cls.__name__} folder (no config.json; save_pretrained writes one)")
    try:
        named = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NasError(f"{config}: not a JSON config ({exc})") from None
    if not isinstance(named, dict):
        raise NasError(f"{config}: not a JSON config (a {type(named).__name__}, not an object)")
    kind = named.get("_class_name")  # diffusers' record of the class (transformers' model_type checks itself)
    if kind is not None and kind != cls.__name__:
        raise NasError(f"{config}: names class {kind}, not {cls.__name__}")
    problem = safetensors_problem(folder)
    if problem:
        raise NasError(f"{folder}: {problem}")
    try:
        return cls.from_pretrained(folder, use_safetensors=True, local_files_only=True, **kwargs)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise NasError(f"{folder}: cannot load a {cls.__name__} ({_first_line(exc)})") from None
    except Exception as exc:  # safetensors raises its own SafetensorError for truncated or corrupt files
        if type(exc).__name__ != "SafetensorError":
            raise
        raise NasError(f"{folder}: corrupt safetensors weights ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
