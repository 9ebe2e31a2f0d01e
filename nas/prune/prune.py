"""``nas prune``: a pretrained UNet2DConditionModel -> the (smaller) backbone of a search space, or a
pretrained AutoencoderKL -> a lighter decoder.

Steps, the same for both: read the source (safetensors only), walk both configs into a
:class:`~nas.prune.plan.Plan` (which source slice fills each target tensor), score every channel
space (L1 norm of the weights that read or write it, or a first-order Taylor score |w * dL/dw| on a
few calibration batches, each tensor's contribution normalised by its mean), keep channels group by
group, build the target with diffusers' own class, fill every tensor (checked), save it, and report
how much of the source's function survives against a random model of the same shape.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.embeddings import get_timestep_embedding

from nas.errors import NasError
from nas.model.loading import PRUNE_REPORT
from nas.model.size import decoder_flops
from nas.prune.plan import TIMESTEP, Layout, Plan, head_scale, walk, walk_autoencoder
from nas.prune.report import compare_decoders, compare_outputs, decoder_summary_line, summary_line
from nas.prune.source import AUTOENCODER, find_source

IMPORTANCE = ("l1", "taylor")
REPORT = PRUNE_REPORT
ENCODER_NOTE = "pruned to the decoder's widths and depth, not recovered: encode with the source VAE"
DECODER_KEYS = ("block_out_channels", "layers_per_block", "mid_block_add_attention", "norm_num_groups")

Loss = Callable[[Any, torch.Generator], torch.Tensor]  # a calibration batch's loss for the Taylor score


def prune_unet(
    source: str | Path,
    target: dict[str, Any],
    out: str | Path | None = None,
    *,
    config: str | Path | None = None,
    importance: str = "l1",
    calibration_batches: int = 2,
    sample_size: tuple[int, int] = (16, 16),
    text_tokens: int = 77,
    seed: int = 0,
    compare: bool = True,
) -> tuple[UNet2DConditionModel, dict[str, Any]]:
    """Prune ``source`` to the UNet2DConditionModel config ``target``; save to ``out`` if given.

    ``sample_size`` is the latent (h, w) of the calibration and comparison batches. Returns the
    pruned model and the report (also written to ``out/prune_report.json``).
    """
    started = time.perf_counter()
    _check_arguments(importance, out)
    src = find_source(source, config)
    fail = lambda problem: NasError(f"{src.path}: {problem}")  # noqa: E731
    _check_fixed(src.config, target, ("in_channels", "out_channels", "cross_attention_dim"), fail)
    if src.config.get("time_embedding_type", "positional") != "positional":
        raise fail("only the positional (sinusoidal) time embedding is supported")

    loss = _denoising_loss(sample_size, text_tokens)
    source_model, source_state, pruned, plan = _prune(
        src, UNet2DConditionModel, target, Layout.of, walk, importance, calibration_batches, loss, seed, fail
    )
    report = _report(src, plan, source_state, pruned, Layout.of, importance, calibration_batches, lambda key: True)
    if compare:
        report["function"] = compare_outputs(source_model, pruned, dict(pruned.config), sample_size, text_tokens, seed)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["summary"] = summary_line(report)
    if out is not None:
        _save(pruned, report, Path(out))
    return pruned, report


def prune_decoder(
    source: str | Path,
    target: dict[str, Any],
    out: str | Path | None = None,
    *,
    config: str | Path | None = None,
    importance: str = "l1",
    calibration_batches: int = 1,
    space: str | Path | None = None,
    frame_size: tuple[int, int] | None = None,
    compare_frames: int = 2,
    seed: int = 0,
    compare: bool = True,
) -> tuple[AutoencoderKL, dict[str, Any]]:
    """Prune the decoder of the AutoencoderKL ``source`` to ``target`` (AutoencoderKL config keys:
    block_out_channels, layers_per_block, mid_block_add_attention, norm_num_groups); save to ``out``.

    diffusers' AutoencoderKL has one width and depth list for encoder and decoder, so the encoder is
    pruned to the same widths and depth (by the same mechanism) and saved with it, and the report
    says it is not recovered: latents should still be made with the source VAE; the folder is a
    decoder for any pipeline's ``vae``. ``frame_size`` (pixels; default: the video size of the search
    space at ``space`` if given, else the source's sample_size) is where the FLOPs per frame are
    counted and the Taylor and comparison batches are drawn; the
    comparison decodes ``compare_frames`` random latents with the source, the pruned decoder and a
    random-init decoder of the pruned shape, and reports PSNR and SSIM of the latter two to the first.
    """
    started = time.perf_counter()
    _check_arguments(importance, out)
    src = find_source(source, config, AUTOENCODER)
    fail = lambda problem: NasError(f"{src.path}: {problem}")  # noqa: E731
    unknown = sorted(set(target) - set(DECODER_KEYS))
    if unknown:
        raise NasError(f"decoder target: unknown key(s) {', '.join(unknown)} (known: {', '.join(DECODER_KEYS)})")
    if compare_frames < 1:
        raise NasError(f"compare_frames must be at least 1, got {compare_frames}")
    scale = 2 ** (len(src.config["block_out_channels"]) - 1)
    sample = src.config.get("sample_size", 512)
    if frame_size is None and space is not None:
        from nas.space import SearchSpace

        video = SearchSpace.load(space).video
        frame_size = (video.height, video.width)
    height, width = frame_size or ((sample, sample) if isinstance(sample, int) else tuple(sample))
    if height % scale or width % scale:
        raise NasError(f"frame size {height}x{width}: not a multiple of the VAE's {scale}x downsampling")
    latent_size = (height // scale, width // scale)

    loss = _reconstruction_loss((height, width))
    source_model, source_state, pruned, plan = _prune(
        src,
        AutoencoderKL,
        target,
        Layout.of_autoencoder,
        walk_autoencoder,
        importance,
        calibration_batches,
        loss,
        seed,
        fail,
    )
    layout = Layout.of_autoencoder
    report = _report(src, plan, source_state, pruned, layout, importance, calibration_batches, _is_decoder)
    report["part"] = "decoder"
    report["encoder"] = ENCODER_NOTE
    report["mid_attention"] = [layout(src.config).mid_attention, layout(dict(pruned.config)).mid_attention]
    report["frame_size"] = [height, width]
    report["flops_per_frame_before"] = decoder_flops(src.config, height, width)
    report["flops_per_frame_after"] = decoder_flops(dict(pruned.config), height, width)
    report["flops_ratio"] = round(report["flops_per_frame_after"] / report["flops_per_frame_before"], 4)
    if compare:
        report["function"] = compare_decoders(
            source_model, pruned, dict(pruned.config), latent_size, compare_frames, seed
        )
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["summary"] = decoder_summary_line(report)
    if out is not None:
        _save(pruned, report, Path(out))
    return pruned, report


def _is_decoder(key: str) -> bool:
    """The tensors a decoding pipeline runs: post_quant_conv and the decoder."""
    return key.startswith(("decoder.", "post_quant_conv."))


def _check_arguments(importance: str, out: str | Path | None) -> None:
    if importance not in IMPORTANCE:
        raise NasError(f"importance must be one of {', '.join(IMPORTANCE)}, got {importance!r}")
    if out is not None and Path(out).exists() and (not Path(out).is_dir() or any(Path(out).iterdir())):
        raise NasError(f"{out}: exists and is not an empty folder (choose a new output folder)")


def _check_fixed(source: dict[str, Any], target: dict[str, Any], keys: tuple[str, ...], fail) -> None:
    for key in keys:
        s, t = source.get(key), target.get(key)
        if s is not None and t is not None and s != t:
            raise fail(f"{key} is {s} in the source and {t} in the target (it cannot be pruned)")


def _prune(src, cls, target, layout, walk_fn, importance, batches, loss: Loss, seed: int, fail):
    """(source model, its state, pruned model, plan): the steps both kinds of model share."""
    source_model = _build(cls, src, fail)
    source_state = source_model.state_dict()
    with torch.device("meta"):
        target_model = _target(cls, target, src.config, fail)
    plan = Plan(
        {k: tuple(v.shape) for k, v in source_state.items()},
        {k: tuple(v.shape) for k, v in target_model.state_dict().items()},
        fail,
    )
    walk_fn(plan, layout(src.config), layout(dict(target_model.config)))
    unfilled = sorted(set(plan.target_shapes) - set(plan.recipes))
    if unfilled:
        raise fail(f"{len(unfilled)} target tensor(s) have no source, e.g. {unfilled[0]}")
    plan.infer_widths()

    _accumulate(plan, _scores(source_model, importance, batches, loss, seed))
    selection = {id(s): _select(s) for s in plan.distinct_spaces()}
    state = {
        key: _materialise(plan, key, source_state, selection, src.config, dict(target_model.config))
        for key in plan.target_shapes
    }
    with torch.device("meta"):
        pruned = cls.from_config(target_model.config)
    pruned.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in [*pruned.parameters(), *pruned.buffers()]):
        raise fail("internal: a tensor of the pruned model was not filled")
    return source_model, source_state, pruned.eval(), plan


def _report(src, plan, source_state, pruned, layout, importance, batches, counted) -> dict[str, Any]:
    """What both reports hold; params counted over the tensors ``counted(key)`` selects."""
    used = {r.source for r in plan.recipes.values() if isinstance(r.source, str)}
    return {
        "source": str(src.path),
        "importance": importance,
        "calibration_batches": batches if importance == "taylor" else 0,
        "params_before": sum(v.numel() for k, v in source_state.items() if counted(k)),
        "params_after": sum(p.numel() for k, p in pruned.named_parameters() if counted(k)),
        "source_tensors_unused": len(set(source_state) - used),
        "levels": _levels(layout(src.config), layout(dict(pruned.config))),
        "layers": plan.layers,
    }


def _build(cls, src, fail):
    """The source model, its tensors assigned from the file (no second copy in memory)."""
    try:
        with torch.device("meta"):
            model = cls.from_config(src.config)
        state = src.state_dict()
        model.load_state_dict(state, strict=True, assign=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise fail(f"does not match its config ({str(exc).splitlines()[0][:200]})") from None
    return model.eval()


def _target(cls, target: dict[str, Any], source_config: dict[str, Any], fail):
    config = {k: v for k, v in source_config.items() if not k.startswith("_")}
    config.update(target)  # unspecified keys (flip_sin_to_cos, sample_size, ...) follow the source
    try:
        return cls.from_config(config)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise fail(f"target config: {exc}") from None


def _scores(model, importance: str, batches: int, loss: Loss, seed: int) -> Callable[[str], torch.Tensor]:
    """Per-weight importance, by tensor name (L1 is computed when asked: no second copy of the model)."""
    params = dict(model.named_parameters())
    if importance == "l1":
        return lambda key: params[key].detach().abs()
    # first-order Taylor |w * dL/dw|, summed over calibration batches
    generator = torch.Generator().manual_seed(seed)
    model.requires_grad_(True)
    model.zero_grad(set_to_none=True)
    for _ in range(batches):
        loss(model, generator).backward()
    scores = {k: (p.detach() * p.grad).abs() if p.grad is not None else torch.zeros_like(p) for k, p in params.items()}
    model.zero_grad(set_to_none=True)
    model.requires_grad_(False)
    return scores.__getitem__


def _denoising_loss(size: tuple[int, int], tokens: int) -> Loss:
    """A UNet's denoising loss on a batch of 2 random latents of ``size``, random text and timesteps."""

    def loss(model, generator):
        latents = torch.randn(2, model.config.in_channels, *size, generator=generator)
        noise = torch.randn(latents.shape, generator=generator)
        t = torch.randint(0, 1000, (2,), generator=generator)
        text = torch.randn(2, tokens, model.config.cross_attention_dim, generator=generator)
        alpha = _alphas()[t].view(-1, 1, 1, 1)
        noisy = alpha.sqrt() * latents + (1 - alpha).sqrt() * noise
        return F.mse_loss(model(noisy, t, text).sample, noise)

    return loss


def _reconstruction_loss(size: tuple[int, int]) -> Loss:
    """A VAE's reconstruction loss (posterior mean) on one smooth random image of ``size`` pixels:
    noise at 1/16 of the size, upsampled bilinearly, so that it has regions and edges as images do."""

    def loss(model, generator):
        h, w = size
        coarse = torch.randn(1, model.config.in_channels, max(h // 16, 1), max(w // 16, 1), generator=generator)
        images = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).clamp(-1, 1)
        return F.mse_loss(model(images).sample, images)

    return loss


def _alphas() -> torch.Tensor:
    """SD1.5's training schedule (scaled linear betas 0.00085 .. 0.012 over 1000 steps)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    return torch.cumprod(1 - betas, 0)


def _accumulate(plan: Plan, scores: Callable[[str], torch.Tensor]) -> None:
    for space in plan.distinct_spaces():
        space.importance = torch.zeros(space.width_s)
    for recipe in plan.recipes.values():
        if not isinstance(recipe.source, str):
            continue
        score = scores(recipe.source)
        for d, dim in enumerate(recipe.dims):
            if not isinstance(dim, list):
                continue
            others = [i for i in range(score.dim()) if i != d]
            per_channel = score.sum(dim=others) if others else score
            per_channel = per_channel / per_channel.mean().clamp_min(1e-12)
            offset = 0
            for name in dim:
                space = plan.root(name)
                space.importance += per_channel[offset : offset + space.width_s]
                offset += space.width_s


def _select(space) -> torch.Tensor:
    """Source indices of the kept channels: the best ``groups_t`` groups, then the best channels in each."""
    per_s, per_t = space.width_s // space.groups_s, space.width_t // space.groups_t
    by_group = space.importance.view(space.groups_s, per_s)
    groups = torch.topk(by_group.sum(1), space.groups_t).indices.sort().values
    kept = [g * per_s + torch.topk(by_group[g], per_t).indices.sort().values for g in groups.tolist()]
    return torch.cat(kept)


def _materialise(plan: Plan, key: str, state, selection, source_config, target_config) -> torch.Tensor:
    recipe = plan.recipes[key]
    tensor = state[recipe.source] if isinstance(recipe.source, str) else recipe.source()
    for d, dim in enumerate(recipe.dims):
        if isinstance(dim, list):
            index, offset = [], 0
            for name in dim:
                space = plan.root(name)
                index.append(selection[id(space)] + offset)
                offset += space.width_s
            tensor = tensor.index_select(d, torch.cat(index))
        elif dim == TIMESTEP:
            tensor = _refit_timestep(tensor, source_config, target_config)
    if recipe.head_scale:
        tensor = tensor * head_scale(plan.root(recipe.head_scale))
    if tuple(tensor.shape) != plan.target_shapes[key]:
        raise plan.fail(f"{key}: made {tuple(tensor.shape)}, the target needs {plan.target_shapes[key]}")
    return tensor.contiguous()


def _refit_timestep(weight: torch.Tensor, source_config, target_config) -> torch.Tensor:
    """The first time-embedding layer reads sinusoidal features whose frequencies depend on their
    count (block_out_channels[0]), so its columns cannot be sliced: refit them by least squares so
    that the layer's output over the 1000 training timesteps stays as close as it can."""
    t = torch.arange(1000)

    def features(config):
        return get_timestep_embedding(
            t, config["block_out_channels"][0], config.get("flip_sin_to_cos", True), config.get("freq_shift", 0)
        ).double()

    source, target = features(source_config), features(target_config)
    wanted = source @ weight.double().T
    return torch.linalg.lstsq(target, wanted, driver="gelsd").solution.T.float()


def _levels(src: Layout, tgt: Layout) -> list[dict[str, Any]]:
    return [
        {
            "level": i,
            "width_before": src.widths[i],
            "width_after": tgt.widths[i],
            "layers_before": src.layers[i],
            "layers_after": tgt.layers[i],
            "attention_before": [src.attention[i], src.up_attention[i]],
            "attention_after": [tgt.attention[i], tgt.up_attention[i]],
        }
        for i in range(len(tgt.widths))
    ]


def _save(model, report: dict[str, Any], out: Path) -> None:
    """Write to a temporary folder beside ``out``, then rename: no half-written result."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked at the start)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def prune_to_space(
    source: str | Path,
    space: str | Path,
    out: str | Path,
    *,
    config: str | Path | None = None,
    importance: str | None = None,
    calibration_batches: int | None = None,
    compare: bool = True,
) -> tuple[UNet2DConditionModel, dict[str, Any]]:
    """:func:`prune_unet` to the backbone of the search space at ``space``, with the space's settings.

    The space's ``prune_from`` gives the defaults of ``importance`` (else l1) and
    ``calibration_batches`` (else 2), so that a space states once how its backbone is made; the
    calibration batches have the space's latent size and text length.
    """
    from nas.space import SearchSpace

    space = SearchSpace.load(space)
    origin = space.prune_from or {}
    batches = calibration_batches or origin.get("calibration_batches", 2)
    if batches < 1:
        raise NasError(f"--calibration-batches must be at least 1, got {batches}")
    return prune_unet(
        source,
        space.backbone,
        out,
        config=config,
        importance=importance or origin.get("importance", "l1"),
        calibration_batches=batches,
        sample_size=(space.video.latent_height, space.video.latent_width),
        text_tokens=space.text_tokens,
        compare=compare,
    )
