"""Running a profile: plan -> measure each missing key in a guarded worker -> append rows.

Measurements run in a child process so that an op that exhausts memory (an address-space
limit makes allocations fail early) or hangs past its time limit is recorded with its status
and the run goes on in a fresh worker. Each row is appended and fsync'ed as soon as it is
measured, and a re-run skips the keys already in the file, so a killed profile resumes with
no measured row lost.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nas.cost.plan import table_plan
from nas.cost.table import COLUMNS, KEY_COLUMNS, LatencyTable, read_rows
from nas.errors import NasError
from nas.ops import OpKey
from nas.space import SearchSpace
from nas.space.yaml_io import write_yaml

STARTUP_S = 180.0  # importing torch and diffusers in a fresh worker


def profile(space_path: str | Path, backend: str, out: str | Path, keys: list[OpKey] | None = None,
            memory_limit_mb: float | None = None, command: str = "", progress: bool = True,
            **options: Any) -> LatencyTable:
    """Measure every key of the space's plan (or ``keys``) missing from ``out``; returns the table."""
    from nas.profile.base import get_profiler

    space = SearchSpace.load(space_path)
    try:
        profiler_cls = get_profiler(backend)
    except KeyError as exc:
        raise NasError(f"--backend: {exc.args[0]}") from None
    profiler_cls(space, **options)  # validate options here, before any worker starts
    out = Path(out)
    done = read_rows(out, allow_partial_tail=True) if out.exists() and out.stat().st_size else None
    have = set() if done is None else {tuple(r) for r in done[KEY_COLUMNS].itertuples(index=False)}
    todo = [k for k in (keys or table_plan(space)) if tuple(k.as_dict().values()) not in have]
    out.parent.mkdir(parents=True, exist_ok=True)
    # Hard limit from outside: every warm-up call and the first timed ones may each take up to the
    # per-call limit before the worker itself can tell; past that the worker is presumed hung.
    per_key_s = options.get("time_limit_s", 30.0) * (options.get("warmup", 3) + 3) + options.get("budget_s", 10.0) + 30

    worker = _Worker(str(space_path), backend, options, memory_limit_mb)
    meta = None
    try:
        with open(out, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            if done is None:
                writer.writeheader()
            for key in tqdm(todo, desc=f"profile {space.name} ({backend})", unit="op", disable=not progress):
                values = worker.measure(key, per_key_s)
                writer.writerow({**key.as_dict(), **{k: _short(v) for k, v in values.items()}})
                handle.flush()
                os.fsync(handle.fileno())
        meta = worker.metadata()
    finally:
        worker.close()
    meta = {**meta, "space": space.name, "command": command}
    if memory_limit_mb:
        meta["memory_limit_mb"] = memory_limit_mb
    table = LatencyTable(read_rows(out), meta, out)
    write_yaml(out.with_suffix(".yaml"), {**meta, "rows": len(table.rows)})
    return table


class _Worker:
    """A child process that owns the profiler; restarted after a crash or a hang."""

    def __init__(self, space_path: str, backend: str, options: dict[str, Any], memory_limit_mb: float | None):
        self.args = (space_path, backend, options, memory_limit_mb)
        self.process = None
        self.conn = None

    def _start(self) -> None:
        context = mp.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, *self.args), daemon=True)
        self.process.start()
        child.close()
        if not self.conn.poll(STARTUP_S):
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
        if not self.conn.poll(wait_s):
            self.close()
            return _failed("timeout")
        try:
            kind, payload = self.conn.recv()
        except EOFError:  # the worker died: the kernel's OOM killer or an allocation abort
            self.close()
            return _failed("oom")
        if kind == "error":
            raise NasError(payload)
        return payload

    def metadata(self) -> dict[str, Any]:
        if self.process is None or not self.process.is_alive():
            self._start()
        self.conn.send("metadata")
        return self.conn.recv()[1]

    def close(self) -> None:
        if self.process is not None and self.process.pid is not None:  # None: it never started
            if self.process.is_alive():
                self.process.kill()
            self.process.join()
        self.process = None


def _short(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _failed(status: str) -> dict[str, Any]:
    return {"latency_p50_ms": "", "latency_p90_ms": "", "memory_mb": "", "samples": 0, "status": status}


def _serve(conn, space_path: str, backend: str, options: dict[str, Any], memory_limit_mb: float | None) -> None:
    """Worker main loop: build the profiler once, then measure keys until the pipe closes."""
    try:
        from nas.profile.base import get_profiler

        profiler = get_profiler(backend)(SearchSpace.load(space_path), **options)
        if memory_limit_mb:
            _limit_memory(memory_limit_mb)
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
        except (MemoryError, RuntimeError) as exc:
            # oneDNN (CPU conv2d) reports a failed allocation as "could not create a primitive"
            text = str(exc).lower()
            if isinstance(exc, MemoryError) or any(m in text for m in ("memory", "alloc", "create a primitive")):
                conn.send(("row", _failed("oom")))
            else:
                conn.send(("row", _failed("unsupported")))
        except NotImplementedError:
            conn.send(("row", _failed("unsupported")))


def _limit_memory(limit_mb: float) -> None:
    """Cap the worker's address space at what it uses now plus ``limit_mb``."""
    import resource

    if not Path("/proc/self/statm").exists():  # macOS: no address-space limit to set
        return
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = used + int(limit_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
