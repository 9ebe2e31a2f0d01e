"""Peak resident memory of this process, in MB, the same on Linux and macOS.

``getrusage().ru_maxrss`` is in KiB on Linux and in bytes on macOS (see getrusage(2) on each),
so reading it raw is 1024x off on one of them.
"""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """High-water mark of this process's resident set size, MB."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value / 2**20 if sys.platform == "darwin" else value / 2**10
