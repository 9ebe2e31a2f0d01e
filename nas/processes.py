"""Child processes that start warm: forked from a server that imported torch and the rest once.

``nas profile`` measures in a child process and ``nas search --workers K`` runs K of them. A
spawned child imports torch, diffusers and optuna again: ~8 s of CPU on a 2-core VM, per child
and per restart. Where the OS has it (Linux, macOS) children are forked from a forkserver: a
process started once per parent, before any thread or measurement exists, which imports the
heavy modules once; each child is a fork of it, as clean as a spawned one, ready in a fraction
of a second. Elsewhere (Windows) children are spawned.

A forked child starts with its server's import path, environment and signal handlers, not its
parent's as of now: the parent passes :func:`parent_state` along and the child calls
:func:`adopt` first.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Sequence

from nas.interrupts import Interrupts, sigint_handler

_PRELOAD: list[str] = []  # what the server imports, from every caller so far (it starts once per process)


def context(preload: Sequence[str]):
    """The multiprocessing context for children that need the modules ``preload`` (dotted names).

    The forkserver is started here, with Ctrl-C ignored for the moment it is launched: it and every
    child forked from it start ignoring Ctrl-C, so a child never dies of one (with a traceback)
    before it installs its own handling; the parent keeps Ctrl-C while the server imports.
    """
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    from multiprocessing import forkserver as server

    _PRELOAD.extend(m for m in preload if m not in _PRELOAD)
    forkserver = mp.get_context("forkserver")
    forkserver.set_forkserver_preload(list(_PRELOAD))
    with sigint_handler(signal.SIG_IGN):
        server.ensure_running()  # returns at once; the server imports ``preload`` in the background
    return forkserver


def start(context, children: Sequence) -> None:
    """Start ``children`` (processes of ``context``), each ignoring Ctrl-C until it installs its own handling.

    A spawned child takes that from this process, so Ctrl-C is ignored while the children are
    launched (a moment). A forked child takes it from its server (see :func:`context`); a Ctrl-C
    while the first start waits for the server's imports is held, and raised once every child has
    started, so that each one has a handle to be stopped by.
    """
    if context.get_start_method() == "spawn":
        with sigint_handler(signal.SIG_IGN):
            for child in children:
                child.start()
        return
    with Interrupts().installed():
        for child in children:
            child.start()


ParentState = tuple[list[str], dict[str, str]]


def parent_state() -> ParentState:
    """What a child takes from its parent at start: the import path and the environment (plugins included)."""
    return list(sys.path), dict(os.environ)


def adopt(state: ParentState, ignore_interrupts: bool = True) -> None:
    """In the child: take the parent's ``state``; with ``ignore_interrupts``, leave Ctrl-C to the parent
    until the child installs its own handling (a terminal sends it to the whole process group)."""
    if ignore_interrupts:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    path, environ = state
    sys.path[:] = path
    os.environ.clear()
    os.environ.update(environ)
