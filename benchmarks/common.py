"""Shared parts of the side-by-side benchmarks: the models, the clip shape, memory, workers.

The comparison is our ``reference`` architecture (search_spaces/snapgen_v.yaml) against what
a user would pick instead: diffusers' UNetMotionModel (AnimateDiff) = SD1.5's UNet with the
default MotionAdapter. Everything is random-init (timing does not depend on weights) and
built at the same clip shape. Each model runs in its own fresh process so that its peak
memory is its own: on CPU the peak RSS high-water mark is reset after the model is built
(/proc/self/clear_refs), so it counts weights plus the working set of the timed calls, not
the transient copies of construction; on CUDA torch's peak allocator counter does the same.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas import SearchSpace, VideoUNet  # noqa: E402
from nas.errors import NasError  # noqa: E402
from nas.rss import peak_rss_mb  # noqa: E402

DEFAULT_SPACE = ROOT / "search_spaces" / "snapgen_v.yaml"
MODELS = ("reference", "animatediff")

# Stable Diffusion 1.5's UNet (diffusers UNet2DConditionModel defaults, except these) and VAE.
SD15_UNET = {"sample_size": 64, "cross_attention_dim": 768, "attention_head_dim": 8}
SD_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "sample_size": 512,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "scaling_factor": 0.18215,
}
# The light decoder: what `nas prune SD_VAE --decoder` makes (benchmarks/prune_vae.py), 0.20 of SD's
# decoder FLOPs per frame; its shape is all a timing needs.
LIGHT_DECODER = {"block_out_channels": [64, 128, 256, 256], "layers_per_block": 1}


def add_shape_arguments(parser, space_default: Path = DEFAULT_SPACE) -> None:
    parser.add_argument(
        "--space", type=Path, default=space_default, help="search space whose `reference` architecture is ours"
    )
    parser.add_argument("--frames", type=int, help="latent frames (default: the space's)")
    parser.add_argument("--height", type=int, help="pixels (default: the space's)")
    parser.add_argument("--width", type=int, help="pixels (default: the space's)")
    parser.add_argument("--device", default="auto", help="auto (cuda if present, else cpu), cpu, cuda")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's). On a CPU shared with other jobs, 1 thread "
        "avoids OpenMP threads waiting on each other and gives stable ratios",
    )


def load_space(args) -> SearchSpace:
    """The space with the clip shape overridden by --frames/--height/--width (validated as a space)."""
    data = yaml.safe_load(Path(args.space).read_text())
    for key in ("frames", "height", "width"):
        if getattr(args, key) is not None:
            data["video"][key] = getattr(args, key)
    return SearchSpace.from_dict(data, source=str(args.space))


def shape_argv(args) -> list[str]:
    """The shared arguments again, for a worker process."""
    argv = ["--space", str(args.space), "--device", args.device]
    for key in ("frames", "height", "width", "threads"):
        if getattr(args, key) is not None:
            argv += [f"--{key}", str(getattr(args, key))]
    return argv


def setup(args) -> torch.device:
    """Threads and device for a worker process."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return pick_device(args.device)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_unet(name: str, space: SearchSpace, device: torch.device, dtype: torch.dtype):
    """(model, forward(sample, timestep, text) -> noise): ours, or UNetMotionModel as AnimateDiff calls it."""
    if name == "reference":
        model = VideoUNet.from_space(space, space.architecture("reference"))

        def forward(sample, timestep, text):
            return model(sample, timestep, text).sample
    elif name == "animatediff":
        from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

        model = UNetMotionModel.from_unet2d(UNet2DConditionModel(**SD15_UNET), MotionAdapter())

        def forward(sample, timestep, text):
            # UNetMotionModel folds frames into the batch and no longer repeats the text per frame itself
            return model(sample, timestep, encoder_hidden_states=text.repeat_interleave(sample.shape[2], 0)).sample
    else:
        raise NasError(f"unknown model {name!r} (known: {', '.join(MODELS)})")
    model.to(device=device, dtype=None if dtype == torch.float32 else dtype).eval().requires_grad_(False)
    return model, forward


def build_vae(device: torch.device, dtype: torch.dtype, name: str = "sd", folder: Path | None = None):
    """SD's VAE ("sd"), or the light decoder ("light"): loaded from ``folder`` (a `nas prune --decoder`
    output) when given, else random-init at LIGHT_DECODER's shape."""
    from diffusers import AutoencoderKL

    from nas.data.pretrained import load_vae

    if name == "light" and folder is not None:
        vae = load_vae(folder)
    else:
        vae = AutoencoderKL(**{**SD_VAE, **(LIGHT_DECODER if name == "light" else {})})
    return vae.to(device=device, dtype=None if dtype == torch.float32 else dtype).eval().requires_grad_(False)


def write_random(cls, config: dict[str, Any], folder: Path, seed: int = 0) -> Path:
    """A diffusers model of ``config`` with random weights (``seed``), saved to ``folder`` as safetensors:
    a full-size stand-in for a published checkpoint (its public config, no download)."""
    torch.manual_seed(seed)
    cls(**config).save_pretrained(folder, safe_serialization=True)
    return folder


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets the RSS high-water mark (Linux)


def _proc_status_mb(field: str) -> float | None:
    """A ``kB`` field of /proc/self/status in MB (Linux), or None where there is no /proc."""
    status = Path("/proc/self/status")
    match = re.search(rf"{field}:\s+(\d+)", status.read_text()) if status.exists() else None
    return int(match.group(1)) / 1024 if match else None


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory since :func:`reset_peak_memory`. On Linux that is VmHWM, the high-water mark the
    reset clears (``ru_maxrss`` is never reset and is updated lazily, so it can even read below the
    current RSS); elsewhere the process's peak RSS."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    hwm = _proc_status_mb("VmHWM")
    return hwm if hwm is not None else peak_rss_mb()


def current_memory_mb(device: torch.device) -> float:
    """Memory held now (after a build: about the weights)."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated() / 2**20
    rss = _proc_status_mb("VmRSS")
    return rss if rss is not None else peak_rss_mb()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def machine(device: torch.device) -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        # other jobs on a shared machine slow everything down; the ratios are measured under the same load
        "load_average_1m_at_start": os.getloadavg()[0],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_name() -> str:
    try:
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        return match.group(1).strip() if match else platform.processor()
    except OSError:
        return platform.processor()


def timed(argv: list[str]) -> dict[str, Any]:
    """Run ``python -m nas ARGV`` under /usr/bin/time -v: rc, wall s, peak RSS MB, stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "nas", *argv], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return {
        "command": "nas " + " ".join(argv),
        "returncode": proc.returncode,
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(int(peak.group(1)) / 1024) if peak else None,
        "stdout": proc.stdout,
        "stderr_tail": proc.stderr[-2000:] if proc.returncode else "",
    }


def run_worker(script: Path, argv: list[str]) -> dict[str, Any]:
    """Run ``script argv`` in a fresh Python process; its last stdout line is its JSON result."""
    done = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_main(main) -> None:
    """Run a script's main; a mistake in its arguments (NasError) is one line and exit code 2."""
    try:
        main()
    except NasError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        sys.exit(2)


def write_results(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


def print_table(header: list[str], rows: list[list[Any]]) -> None:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
