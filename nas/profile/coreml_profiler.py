"""The coreml backend: convert each key to an .mlpackage and time it with the Core ML runtime (macOS).

Conversion runs anywhere; loading and predicting needs macOS. Where the timing cannot run,
``nas profile --export-only DIR`` writes a kit for a Mac instead (:mod:`nas.profile.coreml_kit`).
"""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path
from typing import Any

from nas.cost.workload import build_workload
from nas.machine import fingerprint
from nas.ops import OpKey
from nas.profile.base import Profiler, register_profiler
from nas.profile.coreml_convert import convert, feed_arrays
from nas.profile.coreml_kit import package_name
from nas.profile.coreml_runtime import CoreMLRuntime, check_compute_units, time_chain


@register_profiler
class CoreMLProfiler(Profiler):
    name = "coreml"

    def __init__(
        self, space, compute_units: str = "CPU_AND_NE", precision: str = "fp16", target: str = "iOS18", **options: Any
    ):
        super().__init__(space, **options)
        self.compute_units, self.precision, self.target = check_compute_units(compute_units), precision, target
        self.runtime = CoreMLRuntime()

    def measure(self, key: OpKey) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / package_name(key)
            workload = build_workload(self.space, key)
            convert(
                workload.module, workload.inputs, workload.input_names, precision=self.precision, target=self.target
            ).save(str(path))
            feed = feed_arrays(workload.input_names, workload.inputs)
            values = time_chain(
                [path],
                feed,
                self.compute_units,
                self.warmup,
                self.repeats,
                self.time_limit_s,
                self.budget_s,
                self.runtime,
            )
            for extra in ("placement", "load_s"):  # the profile runner writes the required columns only
                values.pop(extra)
            return values

    def metadata(self) -> dict[str, Any]:
        import coremltools

        meta = self.common_metadata()
        meta.update(
            device=platform.machine(), backend="coreml", compute_units=self.compute_units, precision=self.precision
        )
        meta["tools"]["coremltools"] = str(coremltools.__version__)
        meta["machine"] = fingerprint(None, self.compute_units)  # the Mac's
        return meta
