"""Hardware-aware architecture search for mobile video diffusion (SnapGen-V).

Public API: search spaces and architectures (``SearchSpace``, ``Architecture``), temporal
ops and their registry (``TemporalOp``, ``register_op``), the model (``VideoUNet``), and the
one user-error type (``NasError``).
"""

from nas.errors import NasError
from nas.model import VideoUNet
from nas.ops import OpCost, OpKey, TemporalOp, get_op, list_ops, register_op
from nas.space import Architecture, Choice, SearchSpace

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "Choice",
    "NasError",
    "OpCost",
    "OpKey",
    "SearchSpace",
    "TemporalOp",
    "VideoUNet",
    "get_op",
    "list_ops",
    "register_op",
]
