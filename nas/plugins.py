"""User plugins (``nas --plugin MODULE``): modules that register temporal ops, proxies or profilers.

A plugin is imported once per process. The work of ``nas profile`` (its measuring worker) and of
``nas search --workers K`` runs in child processes (forked from a server, or spawned: see
:mod:`nas.processes`), which have none of their parent's imports, so :func:`load` also records the
modules in the environment (``NAS_PLUGINS``), which every child process is handed at its start;
the registries call :func:`load_inherited` before they report a name as unknown, so a child
imports the user's modules exactly where it first needs one of their names.
"""

from __future__ import annotations

import importlib
import os

from nas.errors import NasError

ENV = "NAS_PLUGINS"


def load(modules: list[str] | tuple[str, ...]) -> None:
    """Import each module (it registers what it defines) and pass it on to child processes."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise NasError(f"--plugin {module}: cannot import ({exc})") from None
    inherited = loaded()
    os.environ[ENV] = ",".join(inherited + [m for m in modules if m not in inherited])


def loaded() -> list[str]:
    """The plugin modules of this process and its parents."""
    return [m for m in os.environ.get(ENV, "").split(",") if m]


def load_inherited() -> None:
    """Import the plugins a parent process loaded (a no-op once they are imported)."""
    load(loaded())
