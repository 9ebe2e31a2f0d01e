"""What a model folder's weights must be: safetensors, never pickles (shared by every loader and the space)."""

from __future__ import annotations

from pathlib import Path

PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def safetensors_problem(folder: str | Path) -> str | None:
    """Why ``folder`` holds no weights nas would load (only pickles, or nothing), or None when it has safetensors.

    Unpickling a file runs whatever code it holds, so a folder whose weights are only pickles is
    refused before anything reads it."""
    files = [p for p in Path(folder).iterdir() if p.is_file()]
    if any(p.suffix == ".safetensors" for p in files):
        return None
    pickles = sorted(p.name for p in files if p.suffix in PICKLES)
    if pickles:
        return (
            f"weights only as pickles ({pickles[0]}), which nas never loads; "
            "save them as .safetensors (save_pretrained(safe_serialization=True))"
        )
    return "no .safetensors weights"
