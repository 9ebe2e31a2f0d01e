"""Running a profile: plan -> measure each missing key in a guarded worker -> append rows.

Measurements run in a child process so that an op that exhausts memory (a memory limit the
profiler sets for its device makes allocations fail early) or hangs past its time limit is
recorded with its status and the run goes on in a fresh worker. A measurement that fails for
another reason (a bug, say in a user's op) is recorded as ``error`` with its message and
measured again by the next run. Each row is appended and fsync'ed as soon as it is measured,
and a re-run skips the keys already in the file, so a killed profile resumes with no measured
row lost.

The sidecar is written before the first measurement (its ``rows`` is the planned count, so a
partial table is reported as such) and again at the end. A run with nothing to measure
changes nothing. A resumed run measures in the scale of the rows already there: it reuses
their ``probe_ms`` and refuses a different device, backend or precision.
"""

from __future__ import annotations

import csv
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nas import outputs, plugins, processes
from nas.cost.plan import table_plan
from nas.cost.table import (
    COLUMNS,
    KEY_COLUMNS,
    LEGACY_KEY_COLUMNS,
    RENAMED_COLUMNS,
    WORKING_SET,
    CostTable,
    claim_table,
    partial_tail,
    read_rows,
    sidecar_meta,
    sidecar_path,
)
from nas.errors import Interrupted, NasError, NasWarning
from nas.interrupts import Interrupts
from nas.machine import differences
from nas.ops import OpKey
from nas.quiet import show_warning
from nas.space import SearchSpace
from nas.space.yaml_io import read_yaml_mapping, write_yaml

STARTUP_S = 180.0  # importing torch and diffusers in a fresh worker
POLL_S = 0.2  # longest wait without a look at Ctrl-C (see _answered)


def profile(
    space_path: str | Path,
    backend: str,
    out: str | Path,
    keys: list[OpKey] | None = None,
    memory_limit_mb: float | None = None,
    command: str = "",
    progress: bool = True,
    inputs: tuple[str | Path, ...] = (),
    **options: Any,
) -> CostTable:
    """Measure every key of the space's plan (or ``keys``) missing from ``out``; returns the table.

    ``inputs``: files the caller read besides the space (a plan), which no output may overwrite."""
    from nas.profile.base import get_profiler

    space = SearchSpace.load(space_path)
    try:
        profiler_cls = get_profiler(backend)
    except KeyError as exc:
        raise NasError(f"--backend: {exc.args[0]}") from None
    profiler_cls(space, **options)  # validate options here, before any worker starts
    out = Path(out)
    claim_table(out, [space_path, *inputs])  # the sidecar must not land on the space (or any input)
    done = read_rows(out, allow_partial_tail=True) if out.exists() and out.stat().st_size else None
    status = {} if done is None else {OpKey(*(r[c] for c in KEY_COLUMNS)): r["status"] for r in done.to_dict("records")}
    todo = [k for k in dict.fromkeys(keys or table_plan(space)) if status.get(k, "error") == "error"]
    if not todo and done is not None and sidecar_path(out).is_file():
        return CostTable.load(out)  # complete: nothing measured, nothing changed
    if done is not None:
        _prepare_to_append(out, done)
    side = sidecar_path(out)
    previous = sidecar_meta(read_yaml_mapping(side)) if done is not None and side.is_file() else {}
    if previous.get("probe_ms") is not None:
        options = {**options, "probe_ms": previous["probe_ms"]}  # the scale the rows already there are in
    out.parent.mkdir(parents=True, exist_ok=True)
    # Hard limit from outside: every warm-up call and the first timed ones may each take up to the
    # per-call limit before the worker itself can tell; past that the worker is presumed hung.
    per_key_s = options.get("time_limit_s", 30.0) * (options.get("warmup", 3) + 3) + options.get("budget_s", 10.0) + 30

    interrupts = Interrupts()
    worker = _Worker(str(space_path), backend, options, memory_limit_mb, interrupts)
    bar = None  # shown once the setup is checked: a refused resume is one line
    kept = 0 if done is None else len(done)
    try:
        with interrupts.installed():
            meta = {**worker.metadata(), "space": space.name, "command": command}
            if memory_limit_mb:
                meta["memory_limit_mb"] = memory_limit_mb
            _check_same_setup(out, previous, meta)
            meta.update(_history(previous, command))
            write_yaml(sidecar_path(out), {**meta, "rows": len(set(status) | set(todo))})
            with open(out, "a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=COLUMNS)
                if done is None:
                    writer.writeheader()
                bar = tqdm(todo, desc=f"profile {space.name} ({backend})", unit="op", disable=not progress)
                for key in bar:
                    values = worker.measure(key, per_key_s)
                    writer.writerow({**key.as_dict(), "message": "", **{k: _short(v) for k, v in values.items()}})
                    handle.flush()
                    os.fsync(handle.fileno())
                    kept += 1
    except KeyboardInterrupt:
        if bar is not None:
            bar.leave = False
            bar.close()
        raise Interrupted(f"{kept} measured rows are kept in {out}; re-run the same command to resume") from None
    finally:
        worker.close()
    table = CostTable(read_rows(out), meta, out)
    write_yaml(sidecar_path(out), {**meta, "rows": len(table.rows)})
    return table


def _prepare_to_append(out: Path, done) -> None:
    """A cut-off last line or an older format's header (first-format keys, a renamed column) is repaired in
    a new file (the rows ``done``), the original kept next to it (``NAME.csv.orig``), so that new rows can be
    appended and no file mixes two formats."""
    with open(out, newline="") as handle:
        header = next(csv.reader(handle), [])
    if partial_tail(out) or header != COLUMNS:
        backup = outputs.backup_path(out)
        shutil.copy2(out, backup)
        with outputs.replaced(out) as tmp:
            done[COLUMNS].to_csv(tmp, index=False)  # every digit of the rows kept
        why = "its last line was cut off" if partial_tail(backup) else _older_format(header)
        warnings.warn(
            f"{out}: rewritten to resume ({why}); the original is kept as {backup.name}", NasWarning, stacklevel=2
        )


def _older_format(header: list[str]) -> str:
    """Why a table's header is not today's, as the resume warning says it."""
    if set(LEGACY_KEY_COLUMNS) <= set(header) and "params" not in header:
        return "it was in the first table format"
    renamed = [f"{old} (now {new})" for old, new in RENAMED_COLUMNS.items() if old in header]
    if renamed:
        return f"it had the old column name {', '.join(renamed)}"
    return "it had an older set of columns"


HISTORY = ("parent", "adapt")  # where a table's earlier rows came from (nas table adapt), kept by a resume


def _history(previous: dict[str, Any], command: str) -> dict[str, Any]:
    """What a resumed profile keeps of the sidecar it extends: the rows it did not measure were made by
    earlier commands (a profile cut off, or ``nas table adapt``: its parent and fit), listed oldest first
    in ``earlier_commands`` so that the sidecar still says how every row was made."""
    kept = {k: previous[k] for k in HISTORY if k in previous}
    earlier = [*previous.get("earlier_commands", []), previous.get("command")]
    earlier = [c for c in dict.fromkeys(earlier) if c and c != command]
    return {**kept, **({"earlier_commands": earlier} if earlier else {})}


def _check_same_setup(out: Path, previous: dict[str, Any], meta: dict[str, Any]) -> None:
    """Rows of one table must come from one machine, device, backend and precision."""
    for field in ("device", "backend", "torch_device", "compute_units", "precision"):
        if field in previous and previous[field] != meta.get(field):
            raise NasError(
                f"{out}: its rows were measured with {field} {previous[field]!r}, this run has "
                f"{meta.get(field)!r}; profile into another file"
            )
    if isinstance(previous.get("machine"), dict) and isinstance(meta.get("machine"), dict):
        other = differences(previous["machine"], meta["machine"], threads=meta.get("backend") == "torch")
        if other:
            raise NasError(
                f"{out}: its rows were measured on another machine ({'; '.join(other)}); profile into another "
                "file (or adapt the table to this machine with nas table adapt)"
            )


class _Worker:
    """A child process that owns the profiler; restarted after a crash or a hang."""

    def __init__(
        self,
        space_path: str,
        backend: str,
        options: dict[str, Any],
        memory_limit_mb: float | None,
        interrupts: Interrupts | None = None,
    ):
        self.args = (space_path, backend, options, memory_limit_mb)
        self.interrupts = interrupts or Interrupts()
        self.process = None
        self.conn = None

    def _start(self) -> None:
        # forked warm from a server that imported the profilers (see nas.processes): a worker restarted
        # after an oom or a hang, or the next profile of a notebook or test session, starts in a fraction
        # of a second instead of importing torch and diffusers again
        context = processes.context(["nas.profile.torch_profiler", "nas.profile.coreml_profiler"])
        self.conn, child = context.Pipe()
        here = (plugins.loaded(), processes.parent_state())
        self.process = context.Process(target=_serve, args=(child, *self.args, *here), daemon=True)
        processes.start(context, [self.process])
        child.close()
        if not _answered(self.conn, STARTUP_S, self.interrupts):
            self.close()
            raise NasError(f"profiler worker did not start within {STARTUP_S:.0f} s")
        kind, payload = self.conn.recv()
        if kind == "error":
            self.close()
            raise NasError(payload)

    def measure(self, key: OpKey, wait_s: float) -> dict[str, Any]:
        if self.process is None or not self.process.is_alive():
            self._start()
        self.conn.send(key)
        if not _answered(self.conn, wait_s, self.interrupts):
            self.close()
            return {**_failed("timeout"), "message": f"no answer within {wait_s:.0f} s"}
        try:
            kind, payload = self.conn.recv()
        except EOFError:  # the worker died: the kernel's OOM killer or an allocation abort
            self.close()
            return {**_failed("oom"), "message": "the measuring process died (out of memory)"}
        if kind == "error":
            raise NasError(payload)
        return payload

    def metadata(self) -> dict[str, Any]:
        if self.process is None or not self.process.is_alive():
            self._start()
        self.conn.send("metadata")
        if not _answered(self.conn, STARTUP_S, self.interrupts):
            self.close()
            raise NasError(f"profiler worker did not answer within {STARTUP_S:.0f} s")
        return self.conn.recv()[1]

    def close(self) -> None:
        if self.process is not None and self.process.pid is not None:  # None: it never started
            if self.process.is_alive():
                self.process.kill()
            self.process.join()
        self.process = None


def _answered(conn, seconds: float, interrupts: Interrupts) -> bool:
    """Whether the worker answers within ``seconds``, waiting in short slices; Ctrl-C ends the wait.

    The Ctrl-C handler only sets a flag (see :class:`~nas.interrupts.Interrupts`), looked at between
    slices: an exception raised from the handler itself could land in code that drops it (a
    finalizer), and one long wait would hold it back for up to a key's whole time limit."""
    deadline = time.monotonic() + seconds
    while not conn.poll(min(POLL_S, max(0.0, deadline - time.monotonic()))):
        if interrupts.requested:
            raise KeyboardInterrupt
        if time.monotonic() >= deadline:
            return False
    if interrupts.requested:
        raise KeyboardInterrupt
    return True


def _short(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _failed(status: str) -> dict[str, Any]:
    return {"latency_p50_ms": "", "latency_p90_ms": "", WORKING_SET: "", "samples": 0, "status": status}


def _serve(
    conn,
    space_path: str,
    backend: str,
    options: dict[str, Any],
    memory_limit_mb: float | None,
    plugin_modules: list[str],
    parent: processes.ParentState,
) -> None:
    """Worker main loop: build the profiler once, then measure keys until the pipe closes.

    It takes the parent's import path and environment and imports the parent's plugins. Ctrl-C is
    the parent's: it keeps what was measured, and ends this process."""
    processes.adopt(parent)
    warnings.showwarning = show_warning
    try:
        plugins.load(plugin_modules)
        from nas.profile.base import get_profiler

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NasWarning)  # the parent loaded this space and said its warnings
            space = SearchSpace.load(space_path)
        profiler = get_profiler(backend)(space, **options)
        if memory_limit_mb:
            profiler.limit_memory(memory_limit_mb)
        conn.send(("ready", None))
    except Exception as exc:  # report, the parent turns it into one line
        conn.send(("error", f"profiler worker: {exc}"))
        return
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request == "metadata":
            conn.send(("metadata", profiler.metadata()))
            continue
        try:
            conn.send(("row", profiler.measure(request)))
        except Exception as exc:  # noqa: BLE001  (every failure becomes a row with its status)
            conn.send(("row", failure_row(exc)))


OOM_MESSAGES = (
    "out of memory",
    "can't allocate memory",
    "cannot allocate memory",
    "not enough memory",
    "failed to allocate",
    "could not create a primitive",
)  # the last: oneDNN (CPU conv2d)


def failure_row(exc: BaseException) -> dict[str, Any]:
    """The row of a measurement that raised: oom for the device running out of memory, unsupported for an
    op the backend does not implement, error (with the message) for anything else, so a bug is never
    taken for a fact about the device."""
    message = " ".join(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".split())[
        :300
    ]
    if isinstance(exc, MemoryError) or any(text in str(exc).lower() for text in OOM_MESSAGES):
        return {**_failed("oom"), "message": message}
    if isinstance(exc, NotImplementedError):
        return {**_failed("unsupported"), "message": message}
    return {**_failed("error"), "message": message}
