"""Tiny pretrained-model stand-ins for the tests: the package's own (``nas data tiny-models``), plus
a tiny search space at 64x64 px so that the training tests run in seconds."""

from __future__ import annotations

from pathlib import Path

import yaml

from nas.data.tiny_models import write_text_encoder, write_vae  # noqa: F401  (what the tests import)
from tests.conftest import TINY


def write_space(folder: Path, frames: int = 4, size: int = 64) -> Path:
    """tiny.yaml at ``size`` x ``size`` px (latent size/8) and ``frames`` frames."""
    data = yaml.safe_load(TINY.read_text())
    data["video"].update({"frames": frames, "height": size, "width": size})
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
