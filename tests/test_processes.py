"""Warm child processes (nas.processes): they start ignoring Ctrl-C, and a Ctrl-C while they start is
held until every one has started, so that none is left running without a handle to stop it by."""

import multiprocessing
import os
import signal
import time

import pytest

from nas import processes

FORKSERVER = "forkserver" in multiprocessing.get_all_start_methods()


def exit_with_sigint_state() -> None:
    os._exit(0 if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else 1)


if FORKSERVER:

    class InterruptingProcess(multiprocessing.get_context("forkserver").Process):
        def start(self):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while this child starts
            super().start()


def test_a_child_starts_ignoring_ctrl_c():
    context = processes.context([])
    child = context.Process(target=exit_with_sigint_state)
    processes.start(context, [child])
    child.join(60)
    assert child.exitcode == 0


@pytest.mark.skipif(not FORKSERVER, reason="spawned children are started with Ctrl-C ignored instead")
def test_a_ctrl_c_while_children_start_is_raised_once_all_have_started():
    context = processes.context([])
    children = [InterruptingProcess(target=time.sleep, args=(60,)) for _ in range(2)]
    try:
        with pytest.raises(KeyboardInterrupt):
            processes.start(context, children)
        assert all(child.is_alive() for child in children)  # both started, so the caller can stop both
    finally:
        for child in children:
            if child.pid is not None:
                child.kill()
                child.join()
