"""The machine a table was measured on, and whether this one is the same where it matters for speed.

A measured table holds one machine's speed. Its sidecar says which machine in a ``machine`` mapping
(:func:`fingerprint`: CPU model and identity, the instruction-set flags that decide which kernels
torch runs, cores and the threads used, memory, GPU, OS, tool versions), written by ``nas profile``
(in its measuring process, so the threads are the ones measured with) and by ``nas table time`` on
a Mac. :func:`differences` compares two fingerprints on what changes speed; :func:`warn_other_machine`
says so in one line when a command that predicts or measures latency here (``nas table check``,
``nas cost``, ``nas search``) uses a table measured elsewhere.

What counts for speed: the CPU (model name, vendor/family/model/stepping, last-level cache), the
flags of :data:`FLAGS` (AVX2, AVX-512, AMX, ARM SVE/SME...), torch's major.minor version (its
kernels), the GPU for a table measured on one, and, only where latency is measured here (the
check), the number of threads. Not counted: memory size, OS and kernel, Python and patch versions,
clock speed read from /proc (a VM's nominal figure). Two VMs of one kind can pass this test and
still differ in speed (the host's load, its memory): the fingerprint catches another machine, not
another day; ``nas table adapt`` measures the difference.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from nas.errors import NasWarning

# Instruction-set extensions that change which kernels torch (oneDNN, its BLAS, XNNPACK) runs.
FLAGS = re.compile(
    r"^(avx|avx2|fma|f16c|avx512.*|avx_vnni.*|amx.*|asimd.*|sve\d*|sme\d*|sme_.*|bf16|i8mm|fp16|dotprod)$"
)
# Fingerprint fields compared for speed, in the order a warning names them.
SPEED_FIELDS = ("cpu", "cpu_id", "cache_mb", "cpu_flags", "gpu", "torch")


def fingerprint(
    torch_device: str | None = "cpu", compute_units: str | None = None, import_torch: bool = True
) -> dict[str, Any]:
    """This machine: CPU, flags, cores, threads (torch's), memory, GPU (CUDA), OS and tool versions.

    ``torch_device``: where a torch table runs (the GPU is recorded for ``cuda``); ``compute_units``:
    Core ML's, recorded for a Mac's results. torch is imported only if installed, and not at all
    without ``import_torch`` (threads and GPU then unknown; torch's version is read from its package
    metadata either way), so that ``nas cost`` checks a CPU table's machine without that import."""
    cpu = _cpu()
    found: dict[str, Any] = {
        "cpu": cpu["name"],
        "cpu_id": cpu["id"],
        "cache_mb": cpu["cache_mb"],
        "cpu_flags": cpu["flags"],
        "cores": os.cpu_count(),
        "threads": None,
        "memory_gb": _memory_gb(),
        "gpu": None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": _version("torch"),
        "coremltools": _version("coremltools"),
    }
    if found["torch"] is not None and import_torch:
        import torch

        found["threads"] = torch.get_num_threads()
        if torch_device == "cuda" and torch.cuda.is_available():
            found["gpu"] = torch.cuda.get_device_name()
    if torch_device is not None:
        found["torch_device"] = torch_device
    if compute_units is not None:
        found["compute_units"] = compute_units
    return found


def differences(table: dict[str, Any], here: dict[str, Any], threads: bool = False) -> list[str]:
    """What differs for speed between the machine of a table and this one, as ``field TABLE -> HERE`` texts.

    torch counts by major.minor; ``threads`` only when asked (where latency is measured here). A field
    that either side does not know is not a difference, except the GPU (recorded for CUDA tables, where
    a missing one is one)."""
    found = []
    for field in (*SPEED_FIELDS, *(("threads",) if threads else ())):
        a, b = table.get(field), here.get(field)
        if field == "torch":
            a, b = _major_minor(a), _major_minor(b)
        if field == "cpu_flags" and a is not None and b is not None:
            a, b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
            if a or b:
                found.append(f"cpu_flags {' '.join(a) or '-'} -> {' '.join(b) or '-'}")
            continue
        if field == "gpu" and a != b and (a or b):  # recorded for CUDA tables only, where none is a difference too
            found.append(f"gpu {a or 'none'} -> {b or 'none'}")
        elif a is not None and b is not None and a != b:
            found.append(f"{field} {a} -> {b}")
    return found


def warn_other_machine(
    meta: dict[str, Any], path: str | Path, threads: bool = False, unknown: bool = True
) -> list[str]:
    """One warning line when the table (sidecar ``meta``, at ``path``) was measured on another machine.

    Only for measured torch tables: an estimated or published table, or one of another device
    (Core ML: a Mac or an iPhone) is not a claim about this machine. A measured table without a
    ``machine`` (made before sidecars recorded it) is said to be of an unknown machine where
    ``unknown`` (the check and ``nas cost``; a search, which loads its table in every worker, says
    only a known difference). Said once per table and process; returns what differs (empty: nothing
    said)."""
    if meta.get("backend") != "torch" or meta.get("provenance") != "measured":
        return []
    machine = _frozen(meta.get("machine"))
    if machine is None and not unknown:
        return []
    return _warn(str(path), machine, meta.get("torch_device", "cpu"), threads)


@functools.cache
def _warn(path: str, machine: tuple | None, torch_device: str, threads: bool) -> list[str]:
    if machine is None:
        note = ["machine unknown"]
        message = (
            f"{path}: its sidecar does not say which machine measured it (made before tables recorded their "
            f"`machine`); its latencies hold for that machine only: re-measure with nas profile, or adapt it to "
            f"this one with nas table adapt"
        )
    else:
        here = fingerprint(torch_device, import_torch=threads or torch_device == "cuda")  # threads, the GPU's name
        note = differences(dict(machine), here, threads)
        if not note:
            return []
        message = (
            f"{path}: measured on another machine ({'; '.join(note)}); its latencies are that machine's: "
            f"nas table adapt {path} --samples 8 -o NEW.csv measures a few keys here and rescales it"
        )
    warnings.warn(message, NasWarning, stacklevel=4)
    return note


def _frozen(value: Any) -> tuple | None:
    """A machine mapping as a hashable tuple (lists as tuples), for the once-per-table cache."""
    if not isinstance(value, dict):
        return None
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in value.items()))


def _cpu() -> dict[str, Any]:
    """Model name, vendor/family/model/stepping, last-level cache (MB) and the flags of FLAGS."""
    name, ident, flags = platform.processor() or platform.machine(), None, []
    info = Path("/proc/cpuinfo")
    if info.is_file():
        fields: dict[str, str] = {}
        for line in info.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first processor's
        name = fields.get("model name") or fields.get("Model") or fields.get("Hardware") or name
        names = ("vendor_id", "cpu family", "model", "stepping")
        if fields.get("CPU implementer"):  # ARM
            names = ("CPU implementer", "CPU architecture", "CPU variant", "CPU part")
        parts = [
            fields[n] if n == "vendor_id" else f"{n.removeprefix('cpu ').removeprefix('CPU ')} {fields[n]}"
            for n in names
            if fields.get(n)
        ]
        ident = ", ".join(parts) or None
        flags = sorted({f for f in (fields.get("flags") or fields.get("Features") or "").split() if FLAGS.match(f)})
    elif platform.system() == "Darwin":
        name = _sysctl("machdep.cpu.brand_string") or name
    return {"name": name, "id": ident, "cache_mb": _last_level_cache_mb(), "flags": flags}


def _last_level_cache_mb() -> float | None:
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        match = re.fullmatch(r"(\d+)([KMG]?)", path.read_text().strip())
        if match:
            sizes.append(int(match.group(1)) * {"": 2**-20, "K": 2**-10, "M": 1, "G": 2**10}[match.group(2)])
    if not sizes and platform.system() == "Darwin":
        sizes = [int(v) / 2**20 for v in (_sysctl("hw.l3cachesize"), _sysctl("hw.l2cachesize")) if v and v.isdigit()]
    return round(max(sizes), 2) if sizes else None


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _sysctl(name: str) -> str | None:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _major_minor(version: Any) -> str | None:
    match = re.match(r"(\d+)\.(\d+)", str(version)) if version is not None else None
    return f"{match.group(1)}.{match.group(2)}" if match else None
