"""Ctrl-C during long work (a search, a profile), delivered where the work copes with it (see :class:`Interrupts`)."""

from __future__ import annotations

import contextlib
import signal
import threading
import weakref


class Interrupts:
    """Ctrl-C during a search, delivered where optuna copes with it.

    Raised inside a trial's objective, a KeyboardInterrupt makes optuna mark that trial failed
    and stop; raised inside optuna's own bookkeeping between trials (``tell``, the sampler's
    ``after_trial``) it breaks optuna 5 with an UnboundLocalError. So while this handler is
    installed, a Ctrl-C outside a trial is held until the next trial starts (or the run ends).

    The profiler uses only the flag (``requested``, never ``inside_trial``): it looks at it between
    short waits, so a Ctrl-C is neither swallowed by code that happened to be running when the
    handler raised (a finalizer prints and drops an exception) nor held back by one long wait.
    """

    def __init__(self):
        self.busy = self.pending = self.requested = False

    @contextlib.contextmanager
    def inside_trial(self):
        if self.pending:
            raise KeyboardInterrupt
        busy, self.busy = self.busy, True
        try:
            yield
        finally:
            self.busy = busy

    @contextlib.contextmanager
    def held(self):
        """Inside a trial, hold Ctrl-C for the block and raise it once the block is done.

        For the trial's database writes: a KeyboardInterrupt raised in the middle of one can leave the
        write's lock behind, and the next write (optuna marking the trial failed) then fails with
        ``database is locked`` and a traceback instead of the one line."""
        busy, self.busy = self.busy, False
        try:
            yield
        finally:
            self.busy = busy
        if busy and self.pending:
            raise KeyboardInterrupt

    def _handle(self, signum, frame) -> None:
        self.requested = True
        # Pending even when raised now: code running inside the trial (a finalizer) may print and drop the
        # exception, and the search would then go on for all its trials; the next trial's start raises it again.
        self.pending = True
        if self.busy and not _in_finalizer(frame):
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self):
        """Handle SIGINT as above for the block (main thread only: elsewhere Python delivers none)."""
        with sigint_handler(self._handle):
            yield
            if self.pending:
                raise KeyboardInterrupt


def _in_finalizer(frame) -> bool:
    """Whether the signal arrived inside a finalizer (``weakref.finalize``, a weakref callback, ``__del__``), where
    Python prints an exception as a traceback and drops it: the interrupt then waits for the next trial's start."""
    while frame is not None:
        if frame.f_code.co_filename == weakref.__file__ or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def sigint_handler(handler):
    """SIGINT handled by ``handler`` (a function, or ``signal.SIG_IGN``) inside the block; a no-op off the
    main thread, where Python delivers no signal and allows no handler to be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
