"""The README runs as written: its tiny recipe, command by command, and the docs' snippets that use it.

The recipe's lines are taken from README.md (examples/recipe.py, which `make demo` runs too) and
each is run through the ``nas`` entry point in-process, in a fresh folder with the repository's
spaces, tables and example configs linked in; what comes out is a video and a Core ML package.
Every block of README.md and docs/ marked ``<!-- after: recipe -->`` then runs in that folder
(tests/docblocks.py finds them; tests/test_docs.py runs the other blocks).
"""

from __future__ import annotations

import json
import shlex
import sys

import numpy as np
import pytest
import torch

from tests.conftest import ROOT
from tests.docblocks import blocks, command_lines

sys.path.insert(0, str(ROOT / "examples"))

import recipe  # noqa: E402


def python_blocks(marker: str) -> list[str]:
    """The ```python blocks of README.md and docs/ that contain ``marker``."""
    return [b.text for b in blocks() if b.lang == "python" and marker in b.text]


@pytest.fixture(scope="module")
def recipe_dir(tmp_path_factory):
    from nas.cli import main

    folder = tmp_path_factory.mktemp("recipe")
    for name in recipe.SHARED:
        (folder / name).symlink_to(ROOT / name)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for command in recipe.commands():
            argv = shlex.split(command)
            assert argv[0] == "nas", f"the recipe runs nas commands only: {command}"
            assert main(argv[1:]) == 0, command
    return folder


def test_readme_recipe_runs_as_written_to_a_video_and_a_core_ml_package(recipe_dir):
    from nas.data.media import read_video

    video = read_video(recipe_dir / "runs/tiny/video.mp4")
    assert video.shape == (4, 128, 128, 3)  # tiny.yaml: 4 latent frames at 128x128 px
    assert (recipe_dir / "runs/tiny/model.mlpackage/Manifest.json").is_file()
    search = json.loads((recipe_dir / "runs/tiny/search/summary.json").read_text())
    knee = next(p for p in search["picks"] if p["role"] == "knee")
    trained = json.loads((recipe_dir / "runs/tiny/adversarial/model/config.json").read_text())
    assert (
        trained["architecture"]
        == __import__("yaml").safe_load((recipe_dir / "runs/tiny/search/picks/knee.yaml").read_text())["slots"]
    )
    assert knee["arch_id"] in (recipe_dir / "runs/tiny/search/pareto.csv").read_text()


def test_readme_pipeline_snippet_runs_and_matches_nas_generate(recipe_dir, monkeypatch):
    from safetensors.torch import load_file

    from nas.cli import main

    (snippet,) = python_blocks("VideoPipeline.from_pretrained")
    monkeypatch.chdir(recipe_dir)
    scope: dict = {}
    exec(compile(snippet, "docs", "exec"), scope)
    frames = scope["frames"]
    assert frames.shape == (4, 128, 128, 3) and 0 <= frames.min() and frames.max() <= 1
    # the same seed through `nas generate`: identical latents, and the same frames up to H.264
    assert (
        main(
            [
                "generate",
                "--model",
                "runs/tiny/adversarial",
                "--text-encoder",
                "models/tiny",
                "--prompt",
                "a red square moving left",
                "--latents-only",
                "-o",
                "latents.safetensors",
            ]
        )
        == 0
    )
    pipe = scope["pipe"]
    latents = pipe(
        "a red square moving left",
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
    ).frames
    assert torch.equal(latents, load_file("latents.safetensors")["latents"])
    from nas.data.media import read_video, write_video

    write_video(recipe_dir / "pipeline.mp4", (frames * 255).round().astype(np.uint8))  # the file nas generate writes
    assert np.array_equal(read_video(recipe_dir / "pipeline.mp4"), read_video(recipe_dir / "runs/tiny/video.mp4"))


def test_diffusers_loader_opens_a_run_folder(recipe_dir):
    from diffusers import DiffusionPipeline

    from nas.pipeline import VideoPipeline

    assert VideoPipeline.from_pretrained.__func__ is DiffusionPipeline.from_pretrained.__func__  # not rewritten
    pipe = VideoPipeline.from_pretrained(
        recipe_dir / "runs/tiny/adversarial", local_files_only=True, use_safetensors=True
    )
    assert pipe.vae is None and pipe.model.config.frames == 4 and pipe.scheduler.config.timestep_spacing == "trailing"


@pytest.mark.parametrize("block", [b for b in blocks() if b.marker == "after"], ids=lambda b: b.name)
def test_every_block_after_the_recipe_runs_on_its_outputs(block, recipe_dir, monkeypatch):
    from nas.cli import main

    monkeypatch.chdir(recipe_dir)
    if block.lang == "python":
        exec(compile(block.text, str(block.page), "exec"), {})
        return
    for argv in command_lines(block):
        assert argv[0] == "nas" and main(argv[1:]) == 0, f"{block.name}: {shlex.join(argv)}"


def test_readme_api_snippet_runs(tmp_path, monkeypatch):
    (snippet,) = python_blocks("VideoUNet.from_space")
    (tmp_path / "search_spaces").symlink_to(ROOT / "search_spaces")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(snippet, "docs", "exec"), scope)
    assert scope["out"].shape == scope["latents"].shape and (tmp_path / "runs/model/config.json").is_file()


def test_tiny_models_bad_input_is_one_line(cli, tmp_path):
    code, _, err = cli(
        "data",
        "tiny-models",
        "--space",
        ROOT / "search_spaces" / "tiny.yaml",
        "--calibrate",
        tmp_path / "missing",
        "-o",
        tmp_path / "m",
    )
    assert code == 2 and err.count("\n") == 1 and "no such folder" in err
