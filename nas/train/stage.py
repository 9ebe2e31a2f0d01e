"""A training stage by name, from a config YAML plus overrides: what ``nas train STAGE`` runs.

The stages share one way in, so that a command line, a notebook and a job script that name a
stage, a config file and a few overrides get the same run. Overrides win over the file; a value
of None in them means "set to null" (unset flags are simply not passed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas import outputs
from nas.train.adversarial import adversarial
from nas.train.config import AdversarialConfig, DecoderConfig, DistillConfig, load_config
from nas.train.decoder import decoder
from nas.train.distill import distill
from nas.train.runtime import run_inputs, run_outputs

STAGES = {
    "distill": (DistillConfig, distill),
    "adversarial": (AdversarialConfig, adversarial),
    "decoder": (DecoderConfig, decoder),
}


def train_stage(
    stage: str,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Run ``stage`` (distill, adversarial or decoder) with the config at ``config`` updated by ``overrides``; its summary."""
    if stage not in STAGES:
        raise ValueError(f"unknown training stage {stage!r} (known: {', '.join(STAGES)})")
    cls, run = STAGES[stage]
    loaded = load_config(cls, config, overrides or {})
    outputs.claim(run_outputs(loaded.out), [config, *run_inputs(loaded)])  # the config file is an input too
    return run(loaded, resume=resume, stop_after=stop_after)
