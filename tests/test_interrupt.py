"""Ctrl-C (SIGINT) in long commands: one line that says what was kept and how to resume, exit 130."""

import contextlib
import os
import re
import signal
import sqlite3
import time

import pandas as pd
import pytest
import yaml

from tests.command_process import NasProcess
from tests.conftest import ROOT, TINY, here_table

TABLE = ROOT / "latency_tables" / "cpu_tiny.csv"


def interrupt(args, ready, tmp_path, timeout=400):
    """Run ``nas ARGS`` in a process of its own, send SIGINT once ``ready()`` holds; returns (exit code, stderr
    lines that are not progress)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    stderr = tmp_path / "stderr.txt"
    process = NasProcess(args, cwd=ROOT, env=env, stderr=stderr)  # `python -m nas ARGS`, forked warm
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None and not ready():
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=120)
    err = stderr.read_text()
    # the warning a search gives before it starts when its table lacks the fixed parts (the shipped CPU tables, until
    # they are profiled again) is not about the interrupt
    lines = [
        line
        for line in re.split(r"[\r\n]", err)
        if line.strip() and not re.match(r"^(search|profile) ", line) and "no row for this space's" not in line
    ]
    return code, lines


def finished(db):
    def count():
        try:
            # closed at once: a connection left open keeps a read lock that makes the search's commit fail
            with contextlib.closing(sqlite3.connect(db)) as connection:
                return connection.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
        except sqlite3.Error:
            return 0

    return count


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.heavy)])
def test_interrupted_search_is_one_line_naming_what_is_kept(tmp_path, workers):
    out = tmp_path / "run"
    args = [
        "search",
        TINY,
        "--table",
        here_table(TABLE, tmp_path / "table"),  # this machine's: no "another machine" line
        "--trials",
        "100000",
        "--out",
        out,
        "--proxy",
        "gradnorm",
        "--workers",
        workers,
    ]
    count = finished(out / "study.db")
    code, lines = interrupt(args, lambda: count() >= 2, tmp_path)
    assert code == 130 and len(lines) == 1, lines
    kept = count()
    assert lines[0] == (
        f"nas: interrupted: {kept} finished trials of study 'tiny-cpu_tiny' are kept in "
        f"sqlite:///{out.resolve() / 'study.db'}; re-run the same command to resume"
    )
    assert kept >= 2


def test_interrupted_profile_is_one_line_and_keeps_its_rows(tmp_path):
    table = tmp_path / "cpu.csv"
    # ~1 s per key, so the interrupt lands mid-run: tiny keys at a few repeats finish within one poll
    code, lines = interrupt(
        ["profile", TINY, "-o", table, "--repeats", "1000", "--budget", "1"],
        lambda: table.exists() and len(table.read_text().splitlines()) >= 3,
        tmp_path,
    )
    rows = pd.read_csv(table)
    assert code == 130 and lines == [
        f"nas: interrupted: {len(rows)} measured rows are kept in {table}; re-run the same command to resume"
    ], lines
    planned = yaml.safe_load(table.with_suffix(".yaml").read_text())["rows"]
    assert len(rows) >= 2 and planned > len(rows)  # the sidecar says the table is partial: a re-run resumes


def test_ctrl_c_ends_the_profilers_wait_for_its_worker_at_once():
    """The handler only sets a flag; the wait looks at it between short slices, so Ctrl-C is neither
    held back by a long wait for a slow key nor lost where an exception raised by a handler is dropped."""
    import threading

    from nas.interrupts import Interrupts
    from nas.profile.runner import _answered

    class SilentWorker:
        def poll(self, timeout):
            time.sleep(timeout)
            return False

    interrupts = Interrupts()
    threading.Timer(0.3, interrupts._handle, args=(signal.SIGINT, None)).start()  # Ctrl-C while waiting
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _answered(SilentWorker(), 600, interrupts)
    assert time.monotonic() - start < 5
    assert not _answered(SilentWorker(), 0.3, Interrupts())  # no answer, no Ctrl-C: the wait times out


def test_a_ctrl_c_dropped_inside_a_trial_stops_the_next_one():
    from nas.interrupts import Interrupts

    interrupts = Interrupts()
    with interrupts.inside_trial():
        try:
            interrupts._handle(signal.SIGINT, None)
        except KeyboardInterrupt:
            pass  # dropped, as a finalizer running at that moment prints and drops an exception
    with pytest.raises(KeyboardInterrupt), interrupts.inside_trial():
        pass


def test_a_ctrl_c_during_a_trials_database_write_is_raised_when_the_write_is_done():
    """Raised in the middle of a write, a KeyboardInterrupt can leave the write's lock behind: optuna's
    next write (marking the trial failed) then fails with `database is locked` instead of one line."""
    from nas.interrupts import Interrupts

    interrupts, done = Interrupts(), []
    with pytest.raises(KeyboardInterrupt), interrupts.inside_trial():
        with interrupts.held():
            interrupts._handle(signal.SIGINT, None)  # Ctrl-C while the write runs: held
            done.append("write")
        done.append("after")  # not reached: raised as the write ends
    assert done == ["write"] and interrupts.busy is False
    with pytest.raises(KeyboardInterrupt), interrupts.inside_trial():  # still pending: the next step raises
        pass
