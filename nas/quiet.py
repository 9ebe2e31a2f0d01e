"""Quiet by default: third-party warnings and log records become one line at the end of a command.

torch, diffusers, transformers and coremltools warn about things a user of ``nas`` cannot act on
(deprecations inside the libraries, tracer notes, conversion details). A command collects them
and ends with one line saying how many were hidden and from which libraries; ``nas -v`` shows
them all as they come. Warnings and records of the ``nas`` package itself are always shown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from nas.errors import NasWarning

PACKAGE_DIR = str(Path(__file__).resolve().parent)
# Read by the libraries when they are imported (lazily, after this has run).
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


class _Counter(logging.Handler):
    """Counts WARNING+ records of third-party loggers instead of printing them."""

    def __init__(self, hidden: Counter):
        super().__init__(logging.WARNING)
        self.hidden = hidden

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] == "nas":
            sys.stderr.write(self.format(record) + "\n")
        else:
            self.hidden[record.name.split(".")[0] or "root"] += 1


@contextlib.contextmanager
def third_party_quiet(verbose: bool = False) -> Iterator[Counter]:
    """Within: third-party warnings are counted, not printed (unless ``verbose``); after: one summary line."""
    hidden: Counter = Counter()
    if verbose:
        yield hidden
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    handler = _Counter(hidden)
    root = logging.getLogger()
    root.addHandler(handler)
    shown = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if str(filename).startswith(PACKAGE_DIR):
            shown(message, category, filename, lineno, file, line)
        else:
            hidden[_package(str(filename))] += 1

    warnings.showwarning = showwarning
    try:
        yield hidden
    finally:
        warnings.showwarning = shown
        root.removeHandler(handler)
        if hidden:
            where = ", ".join(f"{name} {count}" for name, count in hidden.most_common())
            print(
                f"nas: {sum(hidden.values())} third-party warning(s) hidden ({where}); nas -v shows them",
                file=sys.stderr,
            )


def _package(filename: str) -> str:
    """The top-level package a warning came from: the folder after site-packages, else the file."""
    parts = Path(filename).parts
    if "site-packages" in parts and parts.index("site-packages") + 1 < len(parts):
        return Path(parts[parts.index("site-packages") + 1]).stem
    return Path(filename).stem


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """NasWarnings as one line, like errors; other warnings as Python prints them.

    Installed as ``warnings.showwarning`` by the ``nas`` command and by the processes it spawns
    (search workers, the profile worker), so a warning reads the same wherever it was raised."""
    if issubclass(category, NasWarning):
        print(f"nas: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
