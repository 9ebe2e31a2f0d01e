"""Shared fixtures: the shipped spaces, tiny inputs, and a way to run the CLI in-process."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

from nas.cli import main
from nas.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "search_spaces" / "tiny.yaml"
DEFAULT = ROOT / "search_spaces" / "snapgen_v.yaml"


def pytest_configure(config):
    """Under pytest-xdist (``make test``: two workers), each worker gets its share of the cores: torch's
    default of one thread per core in every worker oversubscribes the CPU and its threads wait on each other.
    The processes a test starts inherit the share through OMP_NUM_THREADS, unless the test sets its own."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    # The library facts that loading a space keeps on disk (nas.space.library_cache) go to a folder of this
    # run, inherited by the processes tests start: no test finds (or leaves) an answer of another run.
    os.environ["NAS_CACHE_DIR"] = config._nas_cache_dir = tempfile.mkdtemp(prefix="nas-test-cache-")


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_nas_cache_dir", ""), ignore_errors=True)


# The modules that take longest (25 s to 2 minutes each on this 2-core VM), longest first. Under `make test`
# (--dist loadscope --no-loadscope-reorder) xdist hands whole modules to the two workers in collection
# order; by default it orders them by test count, which put these few-test modules last, where one ran
# alone while the other worker idled. Longest first, the short modules fill in at the end.
SLOW_MODULES = (
    "test_search.py",
    "test_profile.py",
    "test_train.py",
    "test_recipe.py",
    "test_export.py",
    "test_prune.py",
    "test_prune_decoder.py",
    "test_proxy_check.py",
    "test_interrupt.py",
    "test_naming.py",
    "test_search_hardening.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: within a module, file order


@pytest.fixture(scope="session")
def tiny_space() -> SearchSpace:
    return SearchSpace.load(TINY)


@pytest.fixture(scope="session")
def tiny_estimate(tiny_space, tmp_path_factory) -> Path:
    """A valid table for the tiny space (roofline estimate for the A18 Pro: nothing measured), made once per
    worker process; a test that writes to a table takes a :func:`copy_table` of it."""
    from nas.cost.roofline import CHIPS, estimate_table

    path = tmp_path_factory.mktemp("estimate") / "tiny_table.csv"
    estimate_table(tiny_space, CHIPS["a18-pro-ne"]).save(path)
    return path


def copy_table(table: Path, folder: Path) -> Path:
    """``table`` and its sidecar copied into ``folder``; returns the copy's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (table, table.with_suffix(".yaml")):
        shutil.copy(path, folder / path.name)
    return folder / table.name


def here_table(table: Path, folder: Path) -> Path:
    """``table`` (a measured torch table) copied into ``folder`` with a sidecar saying it was measured on this
    machine, so that a test's output holds no "measured on another machine" line wherever the suite runs."""
    from nas.machine import fingerprint
    from nas.space.yaml_io import read_yaml_mapping, write_yaml

    path = copy_table(table, folder)
    meta = read_yaml_mapping(path.with_suffix(".yaml"))
    write_yaml(path.with_suffix(".yaml"), {**meta, "machine": fingerprint(meta.get("torch_device", "cpu"))})
    return path


@pytest.fixture
def tiny_dict() -> dict:
    """The tiny space as a fresh dict, for tests that break it on purpose."""
    return copy.deepcopy(yaml.safe_load(TINY.read_text()))


@pytest.fixture
def write_yaml(tmp_path):
    def write(data: dict, name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture
def cli(capsys):
    """Run ``nas ARGS`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def two_levels(data: dict) -> dict:
    """The tiny space (as loaded from YAML) cut to its first two levels: 32 and 64 channels, one cross-attention
    level each way and the mid block, the slots there and the reference's choices at them. A Core ML conversion
    costs by the op (~20 ms each on this CPU), and this model has half the tiny reference's ops with the same
    kinds of blocks and temporal ops."""
    data = copy.deepcopy(data)
    data["backbone"].update(
        block_out_channels=[32, 64],
        down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
    )
    data["slots"] = [s for s in data["slots"] if s.get("level", 1) <= 1]
    kept = {s["name"] for s in data["slots"]}
    data["architectures"] = {
        name: {slot: choice for slot, choice in arch.items() if slot in kept}
        for name, arch in data.get("architectures", {}).items()
    }
    return data


def clip_inputs(space: SearchSpace, batch: int = 2, seed: int = 0):
    """Random latents (B, C, F, H, W), timesteps (B,) and text embeddings (B, T, D) for ``space``."""
    g = torch.Generator().manual_seed(seed)
    v = space.video
    sample = torch.randn(batch, v.latent_channels, v.frames, v.latent_height, v.latent_width, generator=g)
    timesteps = torch.randint(0, 1000, (batch,), generator=g)
    text = torch.randn(batch, space.text_tokens, space.cross_attention_dim, generator=g)
    return sample, timesteps, text
