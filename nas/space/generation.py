"""The fixed parts of a generation: the text encoder and the decoder a space is priced with.

A whole generation is one text encoding, ``passes`` UNet evaluations and the decode of every
latent frame; the search holds its budgets against all of it. The space names the two fixed
parts under ``generation`` (``decoder``, ``text_encoder``: a built-in name or a local model
folder; ``decode``: ``per_frame`` or ``clip``). Only their configs are read here (JSON, no
weights): the cost layer builds them on the meta device for FLOPs and working sets, and the
profilers build them with random weights, as they do the spatial UNet.

Built-in configs (no download): ``sd15``, the public ``vae/config.json`` and
``text_encoder/config.json`` of Stable Diffusion 1.5 (CLIP ViT-L/14's text model), and
``tiny``, the stand-ins ``nas data tiny-models`` writes for a space (its latent channels, its
cross-attention width and token count). A folder is a diffusers ``AutoencoderKL`` (a pruned
decoder, say) or a transformers ``CLIPTextModel`` folder, or a pipeline folder holding ``vae/``
or ``text_encoder/``; its weights must be safetensors (a folder with only pickles is refused,
as every loader of the package refuses it). Relative paths are relative to the working
directory, as in the training configs.

Mobile pipelines decode frame by frame (``per_frame``, the default): the decoder's table key
is one latent frame, run ``frames`` times, and its working set is one frame's; ``clip``
decodes all frames in one call.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from nas.space.library_cache import kept
from nas.space.weights import safetensors_problem

DECODER, TEXT_ENCODER = "decoder", "text_encoder"
PARTS = (TEXT_ENCODER, DECODER)  # in the order a generation runs them (the UNet passes between)
PER_FRAME, CLIP = "per_frame", "clip"
DECODES = (PER_FRAME, CLIP)
SD15, TINY = "sd15", "tiny"
BUILT_IN = (SD15, TINY)
KEYS = (DECODER, TEXT_ENCODER, "decode")

# runwayml/stable-diffusion-v1-5 vae/config.json (diffusers AutoencoderKL), public
SD15_VAE: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
# runwayml/stable-diffusion-v1-5 text_encoder/config.json: CLIP ViT-L/14's text model (transformers), public
SD15_TEXT_ENCODER: dict[str, Any] = {
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "model_type": "clip_text_model",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "vocab_size": 49408,
}
# What a decoder's and a text encoder's cost depends on (their other config keys do not change it).
DECODER_STRUCTURE = (
    "latent_channels",
    "out_channels",
    "block_out_channels",
    "layers_per_block",
    "up_block_types",
    "norm_num_groups",
    "act_fn",
    "mid_block_add_attention",
    "use_post_quant_conv",
)
TEXT_ENCODER_STRUCTURE = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
    "hidden_act",
)
TINY_VOCAB = 2 * 256 + 2  # the byte-level alphabet, its word-final forms, <|startoftext|>, <|endoftext|>


def tiny_vae_config(latent_channels: int = 4) -> dict[str, Any]:
    """The 4-level AutoencoderKL (8x down) of ``nas data tiny-models``."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": latent_channels,
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [8, 8, 16, 16],
        "sample_size": 64,
    }


def tiny_text_encoder_config(width: int = 32, tokens: int = 77) -> dict[str, Any]:
    """The 2-layer CLIPTextModel of ``nas data tiny-models``, ``width`` wide (4 heads), over its byte-level vocabulary."""
    return {
        "vocab_size": TINY_VOCAB,
        "hidden_size": width,
        "intermediate_size": 2 * width,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": tokens,
        "bos_token_id": TINY_VOCAB - 2,
        "eos_token_id": TINY_VOCAB - 1,
        "pad_token_id": TINY_VOCAB - 1,
    }


@dataclass(frozen=True)
class FixedPart:
    """One fixed part: ``kind`` (decoder, text_encoder), the name it was given by (``sd15``, ``tiny`` or the folder
    as written), its config and, for a folder, where the config was read."""

    kind: str
    name: str
    config: dict[str, Any] = field(hash=False)
    folder: str | None = None

    @property
    def structure(self) -> dict[str, Any]:
        """The config's keys that the part's cost depends on, defaults filled in (what its table key fingerprints)."""
        keys = DECODER_STRUCTURE if self.kind == DECODER else TEXT_ENCODER_STRUCTURE
        filled = {**_defaults(self.kind), **self.config}
        return {k: list(filled[k]) if isinstance(filled[k], (list, tuple)) else filled[k] for k in keys}

    def describe(self) -> str:
        return self.name if self.folder is None else f"{self.folder}"


@dataclass(frozen=True)
class Generation:
    """The fixed parts a space is priced with and how the decoder runs (``decode``)."""

    decoder: FixedPart
    text_encoder: FixedPart
    decode: str = PER_FRAME

    def part(self, kind: str) -> FixedPart:
        return self.decoder if kind == DECODER else self.text_encoder

    def summary(self) -> dict[str, str]:
        return {DECODER: self.decoder.describe(), TEXT_ENCODER: self.text_encoder.describe(), "decode": self.decode}


def parse_generation(raw: Any, space, fail) -> Generation:
    """The ``generation`` mapping of ``space`` (None: SD1.5's parts, decoded frame by frame), checked against it."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise fail(f"'generation' must be a mapping ({', '.join(KEYS)})")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise fail(f"generation: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
    decode = raw.get("decode", PER_FRAME)
    if decode not in DECODES:
        raise fail(f"generation.decode must be one of {', '.join(DECODES)}, got {decode!r}")
    parts = {kind: _part(kind, raw.get(kind, SD15), space, fail) for kind in (DECODER, TEXT_ENCODER)}
    return Generation(parts[DECODER], parts[TEXT_ENCODER], decode)


def _part(kind: str, given: Any, space, fail) -> FixedPart:
    where = f"generation.{kind}"
    if not isinstance(given, str) or not given:
        raise fail(f"{where} must be {' or '.join(BUILT_IN)} or the path of a local model folder, got {given!r}")
    if given == SD15:
        part = FixedPart(kind, SD15, dict(SD15_VAE if kind == DECODER else SD15_TEXT_ENCODER))
    elif given == TINY:
        video = space.video
        config = (
            tiny_vae_config(video.latent_channels)
            if kind == DECODER
            else tiny_text_encoder_config(space.cross_attention_dim, space.text_tokens)
        )
        part = FixedPart(kind, TINY, config)
    else:
        folder = _model_folder(Path(given), kind, where, fail)
        part = FixedPart(kind, given, _read_config(folder, kind, fail), str(folder))
    problem = (_decoder_problem if kind == DECODER else _text_encoder_problem)(part, space)
    if problem:
        raise fail(f"{where} ({part.describe()}): {problem}")
    return part


def _model_folder(path: Path, kind: str, where: str, fail) -> Path:
    """The folder holding the part's config.json: ``path`` itself or its ``vae/`` / ``text_encoder/``."""
    if not path.exists():
        raise fail(f"{where}: {path}: no such folder (or {' / '.join(BUILT_IN)} for a built-in config)")
    sub = "vae" if kind == DECODER else TEXT_ENCODER
    for folder in (path, path / sub):
        if (folder / "config.json").is_file():
            problem = safetensors_problem(folder)
            if problem:
                raise fail(f"{where}: {folder}: {problem}")
            return folder
    raise fail(f"{where}: {path}: no config.json here or in {sub}/ (a local save_pretrained folder is needed)")


def _read_config(folder: Path, kind: str, fail) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise fail(f"{path}: not a JSON config ({exc})") from None
    if not isinstance(config, dict):
        raise fail(f"{path}: not a JSON config (a {type(config).__name__}, not an object)")
    if kind == DECODER and config.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
        raise fail(f"{path}: names class {config['_class_name']}, not AutoencoderKL (a decoder is an AutoencoderKL)")
    if kind == TEXT_ENCODER:
        architectures = config.get("architectures") or ["CLIPTextModel"]
        if config.get("model_type", "clip_text_model") != "clip_text_model" or "CLIPTextModel" not in architectures:
            raise fail(f"{path}: not a CLIPTextModel config (model_type {config.get('model_type')!r})")
    allowed = set(_defaults(kind)) | {"architectures", "model_type", "torch_dtype"}
    return {k: v for k, v in config.items() if not k.startswith("_") and k in allowed}


def _decoder_problem(part: FixedPart, space) -> str | None:
    s = part.structure
    channels = s["block_out_channels"]
    if not channels or not all(isinstance(c, int) and c > 0 for c in channels):
        return f"block_out_channels must be positive integers, got {channels!r}"
    if s["latent_channels"] != space.video.latent_channels:
        return (
            f"latent_channels {s['latent_channels']} does not match the space's video.latent_channels "
            f"{space.video.latent_channels} (a decoder of another latent width)"
        )
    scale = 2 ** (len(channels) - 1)
    if scale != space.video.latent_scale:
        return f"upsamples {scale}x ({len(channels)} levels), the space's latent_scale is {space.video.latent_scale}"
    groups = s["norm_num_groups"]
    if not isinstance(groups, int) or any(c % groups for c in channels):
        return f"norm_num_groups {groups!r} must divide every block_out_channels entry {channels}"
    return None


def _text_encoder_problem(part: FixedPart, space) -> str | None:
    s = part.structure
    if s["hidden_size"] != space.cross_attention_dim:
        return (
            f"hidden_size {s['hidden_size']} does not match the space's cross-attention width "
            f"{space.cross_attention_dim} (backbone.cross_attention_dim)"
        )
    if s["max_position_embeddings"] < space.text_tokens:
        return f"max_position_embeddings {s['max_position_embeddings']} is below the space's text_tokens {space.text_tokens}"
    if s["hidden_size"] % s["num_attention_heads"]:
        return f"hidden_size {s['hidden_size']} is not divisible by num_attention_heads {s['num_attention_heads']}"
    return None


@cache
def _defaults(kind: str) -> dict[str, Any]:
    """The constructor defaults of the part's class (diffusers AutoencoderKL, transformers CLIPTextConfig), read
    once per library version (:mod:`nas.space.library_cache`: importing them takes seconds)."""
    return kept(
        f"{kind}_defaults", "diffusers" if kind == DECODER else "transformers", "{}", lambda: _read_defaults(kind)
    )


def _read_defaults(kind: str) -> dict[str, Any]:
    if kind == DECODER:
        from diffusers import AutoencoderKL

        parameters = inspect.signature(AutoencoderKL.__init__).parameters
        return {k: p.default for k, p in parameters.items() if k != "self"}
    from transformers import CLIPTextConfig

    return {k: v for k, v in CLIPTextConfig().to_dict().items() if not k.startswith("_")}
