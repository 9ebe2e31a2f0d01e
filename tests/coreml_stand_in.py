"""A STAND-IN for the Core ML runtime (which exists on macOS only), to test the timing kit's logic here.

It has the three methods of ``nas.profile.coreml_runtime.CoreMLRuntime``. It reads each
package's spec (which works on any OS) for its input and output names and shapes, so a chain of
chunks only runs if every chunk is fed what the chunks before it made; ``predict`` sleeps
``sleep_ms`` and returns zeros. It measures nothing about Core ML.
"""

import time

import numpy as np


class StandInCoreMLRuntime:
    """``growth_mb``: how much the footprint rises while a prediction runs (None: the OS gives no figure).
    ``placement``: a unit name, or a function of the package path giving one."""

    def __init__(self, sleep_ms=2.0, growth_mb=None, placement="ne"):
        self.sleep_ms, self.growth_mb, self.placement_of = sleep_ms, growth_mb, placement
        self.loads, self.calls, self._busy = [], 0, False

    def load(self, path, compute_units):
        import coremltools as ct

        assert path.is_dir(), path
        self.loads.append((path.name, compute_units))
        spec = ct.utils.load_spec(str(path))
        names = [f.name for f in spec.description.input]
        outputs = {f.name: tuple(f.type.multiArrayType.shape) for f in spec.description.output}

        def predict(feed):
            assert sorted(feed) == sorted(names), (path.name, sorted(feed), names)
            assert all(isinstance(v, np.ndarray) for v in feed.values())
            self.calls += 1
            self._busy = True
            time.sleep(self.sleep_ms / 1000)
            self._busy = False
            return {name: np.zeros(shape, np.float32) for name, shape in outputs.items()}

        return names, predict

    def placement(self, path, compute_units):
        return self.placement_of(path) if callable(self.placement_of) else self.placement_of

    def footprint_bytes(self):
        if self.growth_mb is None:
            return None
        return 100 * 2**20 + (self.growth_mb * 2**20 if self._busy else 0)
