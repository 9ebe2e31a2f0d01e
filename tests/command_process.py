"""``python -m nas ARGS`` in a process of its own, started warm.

Some tests need a command in its own process: to kill it (-9) or interrupt it (SIGINT) and look
at what it leaves, or to read what its worker processes print. A fresh interpreter spends ~10 s
of CPU importing torch, diffusers and optuna before the command starts. :class:`NasProcess`
forks the command from the forkserver :mod:`nas.processes` keeps (which imported them once) and
then runs exactly what ``python -m nas ARGS`` runs (``nas/__main__.py`` through runpy), with what
``subprocess.Popen`` would give a fresh one: the environment, the working directory, Ctrl-C
raising KeyboardInterrupt, torch's thread count from OMP_NUM_THREADS, and its own standard
output and error (files here). Its own children (``nas profile``'s worker, ``--workers K``) come
from a forkserver of its own, as in a fresh process.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from nas import processes

PRELOAD = ("nas.search.study", "nas.profile.torch_profiler")  # what the commands these tests run import


class NasProcess:
    """A running ``nas ARGS``, with the part of ``subprocess.Popen``'s interface the tests use.

    ``stdout``/``stderr`` are file paths (default: discarded); ``new_session`` makes the command
    the leader of a process group of its own (``start_new_session``), which ``killpg`` ends.
    """

    def __init__(
        self,
        args: Sequence,
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        stdout: Path | None = None,
        stderr: Path | None = None,
        new_session: bool = False,
    ):
        context = processes.context(PRELOAD)
        self._process = context.Process(
            target=_run,
            args=(
                [str(a) for a in args],
                (list(sys.path), dict(os.environ if env is None else env)),  # as processes.parent_state
                str(cwd),
                str(stdout or os.devnull),
                str(stderr or os.devnull),
                new_session,
            ),
        )
        processes.start(context, [self._process])
        self.pid = self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (-N: killed by signal N); past ``timeout`` the command is killed and TimeoutError raised."""
        self._process.join(timeout)
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()
            raise TimeoutError(f"nas process {self.pid} still ran after {timeout} s: killed")
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def killpg(self, signum: int) -> None:
        os.killpg(self.pid, signum)


def _run(argv, state, cwd, stdout, stderr, new_session) -> None:
    """In the child: become what a fresh ``python -m nas ARGV`` would be, then run it."""
    processes.adopt(state)  # the import path and the environment
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if "OMP_NUM_THREADS" in os.environ and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    if new_session:
        os.setsid()
    os.chdir(cwd)
    for fd, path in ((1, stdout), (2, stderr)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = ["nas", *argv]
    runpy.run_module("nas", run_name="__main__", alter_sys=True)  # exits with the command's code
