"""Split an ML program into N chunks of about equal weight size, run one after another.

The Neural Engine will not take a model with more than ~1 GB of weights, so large UNets ship
as chunks (apple/ml-stable-diffusion's --chunk-unet). coremltools' ``bisect_model`` cuts a
program in two at the op where half the weight bytes lie behind; bisecting each half again
gives 2, 4, 8 ... chunks. Later chunks take the tensors that cross the cut (skip connections
included) as inputs, by name, so running them in order with all earlier values reproduces the
whole model. Output correctness is not checked here because that needs the Core ML runtime
(macOS); the structure of the chain is (verify.check_chain).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from nas.errors import NasError


def split_package(package: str | Path, chunks: int, out_stem: str | Path) -> list[Path]:
    """Split ``package`` into ``chunks`` (a power of two >= 2) packages ``<out_stem>_chunk<i>.mlpackage``."""
    from coremltools.models.utils import bisect_model

    if chunks < 2 or chunks & (chunks - 1):
        raise NasError(f"--chunks must be a power of two (1, 2, 4, 8, ...), got {chunks}")
    out_stem = Path(out_stem)
    targets = [out_stem.parent / f"{out_stem.name}_chunk{i}.mlpackage" for i in range(1, chunks + 1)]
    with tempfile.TemporaryDirectory(prefix="nas-chunks-", dir=out_stem.parent) as scratch:
        parts = [Path(package)]
        for depth in range(chunks.bit_length() - 1):
            halves = []
            for index, part in enumerate(parts):
                where = Path(scratch) / f"d{depth}p{index}"
                _quiet(bisect_model, str(part), str(where), check_output_correctness=False)
                name = part.name.removesuffix(".mlpackage")
                halves += [where / f"{name}_chunk1.mlpackage", where / f"{name}_chunk2.mlpackage"]
            parts = halves
        for part, target in zip(parts, targets):
            if target.exists():
                shutil.rmtree(target)
            shutil.move(str(part), target)
    return targets


def _quiet(function, *args, **kwargs):
    """bisect_model logs every step at INFO; keep the command's output to what it says itself."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return function(*args, **kwargs)
    finally:
        logger.setLevel(level)
