"""A few architectures of a Pareto front worth looking at first, and the commands that go on with them.

A front of hundreds of architectures does not say where to start, so a search ends by naming:

- ``best_quality``: the highest proxy quality that meets the budgets (ties: the faster);
- ``knee``: the compromise of the front, the architecture closest to the ideal point once
  latency, memory and quality are each scaled to [0, 1] over the front (0 = the front's best);
- ``fastest``: the lowest latency (ties: the higher quality).

The same architecture may hold several of these roles. Each pick carries the exact next
commands (build it, then distill it: stage 1 of the trainer), and its architecture file is
copied to ``OUT/picks/<role>.yaml``, a name that scripts and recipes can rely on.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.space import SearchSpace

ROLES = ("best_quality", "knee", "fastest")
DISTILL_CONFIG = "examples/distill.yaml"  # paper scale; a space may ship its own as examples/<space>/distill.yaml


def pick_rows(front: pd.DataFrame) -> dict[str, int]:
    """Row index in ``front`` of each role (feasible rows only; none for an empty or infeasible front)."""
    front = front[front["feasible"].astype(bool)]
    if front.empty:
        return {}
    quality = front["quality"].astype(float)
    has_quality = quality.notna().any()
    by_speed = front.assign(_q=-quality.fillna(-np.inf)).sort_values(["latency_ms", "_q", "peak_memory_mb"])
    rows = {"fastest": by_speed.index[0]}
    columns = [front["latency_ms"], front["peak_memory_mb"]] + ([-quality.fillna(quality.min())] if has_quality else [])
    scaled = np.column_stack([_unit(np.asarray(c, dtype=float)) for c in columns])
    rows["knee"] = front.index[int(np.argmin(np.linalg.norm(scaled, axis=1)))]
    if has_quality:
        best = front.assign(_q=-quality.fillna(-np.inf)).sort_values(["_q", "latency_ms", "peak_memory_mb"])
        rows["best_quality"] = best.index[0]
    return {role: rows[role] for role in ROLES if role in rows}


def make_picks(
    front: pd.DataFrame, space: SearchSpace, space_path: str | Path, out: str | Path, data: str = "data/latents"
) -> list[dict[str, Any]]:
    """The picks of ``front`` as summary entries: role, id, objectives, temporal slots, next commands."""
    out = Path(out)
    config = Path("examples") / space.name / "distill.yaml"
    config = config if config.is_file() else DISTILL_CONFIG
    picks = []
    for role, index in pick_rows(front).items():
        row = front.loc[index]
        arch_id = str(row["arch_id"])
        arch = out / "architectures" / f"{arch_id}.yaml"
        temporal = [slot for slot in space.slot_names if not str(row[slot]).startswith("none")]
        quality = float(row["quality"])
        picks.append(
            {
                "role": role,
                "arch_id": arch_id,
                "latency_ms": float(row["latency_ms"]),
                **({"unet_ms": float(row["unet_ms"])} if "unet_ms" in row else {}),
                "peak_memory_mb": float(row["peak_memory_mb"]),
                "quality": None if np.isnan(quality) else quality,
                "temporal_slots": len(temporal),
                "slots": len(space.slot_names),
                "architecture": str(arch),
                "next": [
                    _command("nas", "build", space_path, "--arch", arch),
                    _command(
                        "nas",
                        "train",
                        "distill",
                        "--config",
                        config,
                        "--space",
                        space_path,
                        "--arch",
                        arch,
                        "--data",
                        data,
                        "--out",
                        f"runs/distill-{arch_id}",
                    ),
                ],
            }
        )
    return picks


def write_picks(out: str | Path, picks: list[dict[str, Any]]) -> None:
    """``out/picks/<role>.yaml``: each pick's architecture file under a name a script can rely on."""
    folder = Path(out) / "picks"
    if folder.is_dir():
        for stale in folder.glob("*.yaml"):
            stale.unlink()
    for pick in picks:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{pick['role']}.yaml").write_text(Path(pick["architecture"]).read_text())


def describe_picks(picks: list[dict[str, Any]]) -> str:
    """The picks as a few lines of text: one per pick, then its next commands indented."""
    lines = []
    for pick in picks:
        quality = "" if pick["quality"] is None else f"  quality {pick['quality']:.4g}"
        unet = f" ({pick['unet_ms']:,.1f} ms per UNet pass)" if "unet_ms" in pick else ""
        lines.append(
            f"{pick['role'].replace('_', ' ')}: {pick['arch_id']}  {pick['latency_ms']:,.1f} ms{unet}  "
            f"{pick['peak_memory_mb']:,.1f} MB{quality}  (temporal layers at {pick['temporal_slots']} of "
            f"{pick['slots']} slots)"
        )
        lines.extend(f"  {command}" for command in pick["next"])
    return "\n".join(lines)


def _unit(values: np.ndarray) -> np.ndarray:
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def _command(*parts: Any) -> str:
    return " ".join(shlex.quote(str(p)) for p in parts)
