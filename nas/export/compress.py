"""Weight palettization of a converted ML program (coremltools.optimize.coreml).

Each weight tensor becomes a lookup table of 2^nbits values plus nbits-wide indices: 4/6/8
bits shrink FP16 weights ~4x/2.7x/2x. This is how models over the Neural Engine's ~1 GB
limit fit in one piece (apple/ml-stable-diffusion ships 6-bit UNets). ``kmeans`` fits the
table to the weights (better quality; 1-D k-means through the kmeans1d package when
installed, scikit-learn otherwise); ``uniform`` spaces it evenly (fast, no extra package).
With no mode given, k-means is used where scikit-learn is installed and uniform otherwise, so
the default path works with the default install and says which mode it took.
"""

from __future__ import annotations

import importlib.util
import warnings

from nas.errors import NasError

NBITS = (4, 6, 8)
MODES = ("kmeans", "uniform")


def default_mode() -> tuple[str, str | None]:
    """The mode used when none is given, and a note when it is not the better one (k-means)."""
    if importlib.util.find_spec("sklearn") is not None:
        return "kmeans", None
    return "uniform", (
        "scikit-learn is not installed, so weights are palettized uniformly (pip install '.[kmeans]' for k-means)"
    )


def check_palettize(nbits: int, mode: str) -> None:
    """Fail before any conversion work on settings :func:`palettize` cannot use."""
    if nbits not in NBITS:
        raise NasError(f"palettize: nbits must be one of {NBITS}, got {nbits!r}")
    if mode not in MODES:
        raise NasError(f"palettize: mode must be one of {MODES}, got {mode!r}")
    if mode == "kmeans" and importlib.util.find_spec("sklearn") is None:
        raise NasError(
            "palettize: kmeans mode needs scikit-learn (pip install scikit-learn kmeans1d), or use mode 'uniform'"
        )


def palettize(mlmodel, nbits: int, mode: str = "kmeans"):
    """Return ``mlmodel`` with every weight of >= 2048 elements palettized to ``nbits`` bits."""
    import coremltools.optimize.coreml as cto

    check_palettize(nbits, mode)
    config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode=mode, nbits=nbits))
    with warnings.catch_warnings():
        # Zero-initialised layers (fresh temporal ops) have max == min: uniform mode divides by zero
        # there but still writes a table of zeros, which is exact.
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        return cto.palettize_weights(mlmodel, config)
