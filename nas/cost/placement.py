"""Where each op of a workload runs: the Neural Engine, or a fallback unit, by published rules.

Core ML places every op of a program on one compute unit; an op the Neural Engine cannot run
goes to the CPU (compute units CPU_AND_NE) or the GPU (ALL), and every tensor that crosses
between units is copied through memory. Apple does not publish the Neural Engine's rules;
the ones below are those reported publicly, each with where it comes from:

- ``conv3d``: a convolution over three spatial axes (rank-5 input) never lowers to the Neural
  Engine (unofficial ane-guide; coremltools issue 2000; ONNX Runtime's Core ML execution
  provider supports only 1D/2D convolution for that reason).
- ``axis>16384``: a tensor with an axis longer than 16,384 elements fails to compile for the
  Neural Engine (coremltools users' reports; apple/ml-stable-diffusion notes).
- ``kernel>13``: convolution kernels wider or taller than 13 do not run on the Neural Engine
  (unofficial ane-guide).

:class:`PlacementTracker` runs a workload (on the meta device: nothing is allocated) and
records, per aten op, its FLOPs, the bytes it writes, the unit the rules give it, and the
bytes crossing units. This is an estimate of what MLComputePlan reports on a Mac (macOS 14.4+),
which a measured table should be preferred to.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from nas.ops.memory_tracker import tensors

ANE = "ne"
ANE_MAX_AXIS = 16384
ANE_MAX_KERNEL = 13
RULES = {
    "conv3d": "3D convolution: never lowers to the Neural Engine (ane-guide; coremltools issue 2000; "
    "ONNX Runtime Core ML EP supports 1D/2D conv only)",
    "axis>16384": f"a tensor axis longer than {ANE_MAX_AXIS}: fails to compile for the Neural Engine "
    "(coremltools users' reports)",
    "kernel>13": f"a convolution kernel over {ANE_MAX_KERNEL}: not run by the Neural Engine (ane-guide)",
}
PLACEMENTS = (ANE, "cpu", "gpu", "mixed")
# Outputs written to memory: those of ops with FLOPs (convs, matmuls) and of softmax; elementwise ops,
# norms and views are taken as fused into their neighbours, as the Neural Engine compiler does.
_MATERIALISED = {torch.ops.aten._softmax, torch.ops.aten.softmax}
_FLATTENING = {torch.ops.aten.view, torch.ops.aten._unsafe_view, torch.ops.aten.mm, torch.ops.aten.addmm}
_CONVOLUTIONS = {torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default}


def ane_violation(func, args, outputs) -> str | None:
    """The name of the first rule that keeps this aten op off the Neural Engine, or None."""
    if func in _CONVOLUTIONS:
        weight = args[1]
        if weight.dim() >= 5:
            return "conv3d"
        if any(k > ANE_MAX_KERNEL for k in weight.shape[2:]):
            return "kernel>13"
    # aten runs a Linear as view-to-2D + addmm, folding all batch axes into one; the converted program
    # keeps them apart (and the Neural Engine layout runs it as a 1x1 conv), so only the feature axis counts.
    flattening = func.overloadpacket in _FLATTENING
    if any(d > ANE_MAX_AXIS for t in tensors((args, outputs)) for d in (t.shape[-1:] if flattening else t.shape)):
        return "axis>16384"
    return None


@dataclass
class UnitWork:
    """What one unit does in a workload: FLOPs, bytes its compute ops (and softmaxes) write, the number of ops
    with FLOPs (dispatches), and per such op (and softmax) its FLOPs and the bytes it moves: activations read
    and written, and weights read (apart, so that compressed weights can be priced at their width)."""

    flops: float = 0.0
    written_bytes: float = 0.0
    ops: int = 0
    op_flops: list[float] = field(default_factory=list)
    op_activation_bytes: list[float] = field(default_factory=list)
    op_weight_bytes: list[float] = field(default_factory=list)


class PlacementTracker(TorchDispatchMode):
    """Per-unit work of the ops run inside ``with``; ``fallback`` names the unit that takes what the
    Neural Engine cannot run. ``transfer_bytes`` counts tensors read on another unit than wrote them;
    the workload's ``inputs`` (and its final output) live with the Neural Engine's neighbours, and
    weights (tensors made outside that are not inputs) are stored with each unit that reads them.
    """

    def __init__(self, inputs=(), fallback: str = "cpu"):
        super().__init__()
        self.fallback = fallback
        self.units: dict[str, UnitWork] = {}
        self.violations: dict[str, int] = {}
        self.transfer_bytes = 0.0
        self.switches = 0
        self._unit_of: dict[int, str] = {id(t.untyped_storage()): ANE for t in inputs}
        self._weights: set[int] = set()
        self._last: torch.Tensor | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        rule = ane_violation(func, args, out)
        unit = ANE if rule is None else self.fallback
        work = self.units.setdefault(unit, UnitWork())
        computes = func.overloadpacket in flop_registry
        flops = 0.0
        if computes:
            flops = flop_registry[func.overloadpacket](*args, **(kwargs or {}), out_val=out)
            work.flops += flops
            work.ops += 1
        if rule is not None:
            self.violations[rule] = self.violations.get(rule, 0) + 1
        activation_in = weight_in = 0.0
        for value in tensors(args):
            storage = id(value.untyped_storage())
            size = value.numel() * value.element_size()
            if storage in self._weights:
                weight_in += size
                continue
            if storage not in self._unit_of:
                self._weights.add(storage)
                weakref.finalize(value.untyped_storage(), self._weights.discard, storage)
                weight_in += size
            else:
                activation_in += size
                if self._unit_of[storage] != unit:
                    self.transfer_bytes += size
                    self.switches += 1
        written = 0.0
        for value in tensors(out):
            storage = id(value.untyped_storage())
            if storage in self._weights:
                continue
            if computes or func.overloadpacket in _MATERIALISED:
                written += value.numel() * value.element_size()
            if storage not in self._unit_of:  # ids are reused once a storage dies: forget it then
                weakref.finalize(value.untyped_storage(), self._unit_of.pop, storage, None)
            self._unit_of[storage] = unit
            self._last = value
        if computes or func.overloadpacket in _MATERIALISED:
            work.written_bytes += written
            work.op_flops.append(flops)
            work.op_activation_bytes.append(activation_in + written)
            work.op_weight_bytes.append(weight_in)
        return out

    def finish(self) -> None:
        """The workload's output goes back to the Neural Engine's neighbours: a copy if another unit made it."""
        if self._last is not None and self._unit_of.get(id(self._last.untyped_storage())) != ANE:
            self.transfer_bytes += self._last.numel() * self._last.element_size()
            self.switches += 1

    @property
    def placement(self) -> str:
        """``ne`` (all on the Neural Engine), the fallback unit (all compute there) or ``mixed``."""
        compute = {unit for unit, work in self.units.items() if work.flops > 0}
        if compute <= {ANE}:
            return ANE
        return self.fallback if compute == {self.fallback} else "mixed"

    @property
    def notes(self) -> str:
        return "; ".join(f"{n} op(s) {rule}" for rule, n in sorted(self.violations.items()))
