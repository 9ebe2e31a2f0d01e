"""Core ML conversion (coremltools, ML program) of a torch module: what the coreml profiler and the export share.

Conversion works on any OS; loading and timing a package needs macOS, so nothing here runs
a converted model. Models are traced with static shapes (Python ints), which is also what
keeps shape arithmetic out of the converted graph.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from nas.ops.ane import use_attention

TARGETS = ("iOS17", "iOS18")
PRECISIONS = ("fp16", "fp32")


def feed_arrays(names: Sequence[str], inputs: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
    """A package's inputs as numpy arrays of the types its converted inputs have: float32, or int32 token ids."""
    return {n: x.numpy().astype(np.float32 if x.is_floating_point() else np.int32) for n, x in zip(names, inputs)}


def convert(
    module: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    input_names: Sequence[str],
    output_names: Sequence[str] = ("output",),
    precision: str = "fp16",
    target: str = "iOS18",
    attention: str = "split_einsum",
):
    """Trace ``module`` at the example shapes and convert it to a Core ML ML program.

    Every attention inside (temporal ops, and a VideoUNet's spatial attention) is first set to
    ``attention``: ``split_einsum`` is apple/ml-stable-diffusion's Neural Engine form.
    """
    import coremltools as ct

    use_attention(module, attention)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, tuple(example_inputs), check_trace=False)
    return ct.convert(
        traced,
        convert_to="mlprogram",
        # token ids (a text encoder's input) go in as int32, Core ML's integer tensor type
        inputs=[
            ct.TensorType(name=n, shape=tuple(x.shape), **({} if x.is_floating_point() else {"dtype": np.int32}))
            for n, x in zip(input_names, example_inputs)
        ],
        outputs=[ct.TensorType(name=n) for n in output_names],
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        minimum_deployment_target=getattr(ct.target, target),
        skip_model_load=True,
    )
