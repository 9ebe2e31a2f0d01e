"""The video diffusion model built from a search space and an architecture.

``VideoUNet`` (torch and diffusers) loads on first use, so that :mod:`nas.model.size`'s parameter
counts of the built-in ops serve ``nas cost`` without them.
"""

from __future__ import annotations

import importlib

__all__ = ["VideoUNet", "VideoUNetOutput"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("nas.model.video_unet"), name)
    raise AttributeError(f"module 'nas.model' has no attribute {name!r}")
