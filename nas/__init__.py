"""Hardware-aware architecture search for mobile video diffusion (SnapGen-V).

Public API: search spaces and architectures (``SearchSpace``, ``Architecture``), temporal
ops and their registry (``TemporalOp``, ``register_op``), the model (``VideoUNet``), and the
one user-error type (``NasError``).

The names are imported on first use (PEP 562), so that ``import nas`` and the ``nas``
command start without torch and diffusers; a command imports what it needs.
"""

from __future__ import annotations

import importlib

from nas.errors import NasError

__version__ = "0.1.0"

_LAZY = {
    "Architecture": "nas.space",
    "Choice": "nas.space",
    "SearchSpace": "nas.space",
    "OpCost": "nas.ops",
    "OpKey": "nas.ops",
    "TemporalOp": "nas.ops",
    "get_op": "nas.ops",
    "list_ops": "nas.ops",
    "register_op": "nas.ops",
    "VideoUNet": "nas.model",
}

__all__ = ["NasError", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
