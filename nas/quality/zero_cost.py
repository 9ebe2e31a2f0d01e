"""Zero-cost quality proxies from the NAS literature, adapted to temporal layers on a frozen backbone.

Each scores an architecture from one or two passes of its VideoUNet at initialisation, on the
clips of a ``nas data encode`` folder (``data``, e.g. a tiny world's ``latents/``) or, without
one, synthetic moving patterns; ``spatial_weights`` loads the 2D backbone (a world's
``backbone/``). A fresh temporal layer is an exact identity (its output projection is zero), so
nothing about it can be measured at that point; these proxies score the layers with the output
projections given the default random init instead, as zero-cost proxies score a randomly
initialised network. Only temporal parameters and activations are scored: the backbone is shared
by every candidate.

- ``synflow`` (Tanaka et al. 2020; Abdelfattah et al. 2021 as a NAS proxy): the network with
  absolute weights, an all-ones input clip, R = sum of the output; the score is the sum over
  temporal parameters of |theta * dR/dtheta|: the signal a layer's
  weights carry, free of data.
- ``naswot`` (Mellor et al. 2021): the binary codes of which units of the temporal layers'
  residual outputs are positive, one code per clip of a batch; log|K| of the Hamming-similarity
  kernel K says how well the layers tell the clips apart.
- ``tsens`` (temporal sensitivity, this project's): how much the output at the middle frame
  depends on the *other* frames' input, relative to its own frame's -- the norm ratio of the two
  parts of one vector-Jacobian product. A per-frame model scores 0; layers that carry motion
  across frames, far and wide, score high.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nas.model import VideoUNet
from nas.quality.proxies import DistillProxy, QualityProxy, register_proxy
from nas.space import Architecture, SearchSpace


class _ZeroCost(QualityProxy):
    """Clips, text and a model whose temporal output projections are random (not zero)."""

    def __init__(
        self, space: SearchSpace, seed: int = 0, clips: int = 8, data=None, spatial_weights=None, **options: Any
    ):
        super().__init__(space, seed)
        from nas.errors import NasError

        if clips < 2:
            raise NasError(f"--proxy {self.name}: clips must be >= 2 (got {clips})")
        self.latents, self.text = DistillProxy._clips(space, clips, seed, data, None)
        generator = torch.Generator().manual_seed(seed)
        self.noise = torch.randn(self.latents.shape, generator=generator)
        self.spatial_weights = spatial_weights

    def model(self, architecture: Architecture) -> VideoUNet:
        torch.manual_seed(self.seed)
        model = VideoUNet.from_space(self.space, architecture, self.spatial_weights, freeze_spatial=True)
        with torch.no_grad():
            for module in model.temporal.modules():
                if isinstance(module, (nn.Linear, nn.Conv3d, nn.Conv2d, nn.Conv1d)) and not module.weight.any():
                    module.reset_parameters()  # the zero-initialised output projection, given torch's default init
        return model.eval()

    def noisy(self, timestep: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        from nas.data.schedule import noise_scheduler

        t = torch.full((len(self.latents),), timestep)
        return noise_scheduler().add_noise(self.latents, self.noise, t), t


@register_proxy
class SynflowProxy(_ZeroCost):
    """Synaptic flow of the temporal layers: sum |theta * dR/dtheta| with absolute weights, ones in."""

    name = "synflow"
    validation = (
        "not validated: on the tiny world (recipe 3), Kendall tau 0.24/0.12 against the two ground-truth seeds on held-out "
        "denoising, 0.14/-0.39 on motion direction (the seeds agree at 0.64 and -0.17: docs/quality.md)"
    )

    def score(self, architecture: Architecture, curve=None) -> float:
        model = self.model(architecture).double()
        if not model.temporal_parameters():
            return 0.0
        with torch.no_grad():
            for p in model.parameters():
                p.abs_()
        for p in model.temporal_parameters():
            p.requires_grad_(True)
        x = torch.ones((1, *self.latents.shape[1:]), dtype=torch.float64)
        text = torch.ones((1, *self.text.shape[1:]), dtype=torch.float64)
        model(x, torch.tensor([500]), text).sample.sum().backward()
        return float(sum((p * p.grad).abs().sum().item() for p in model.temporal_parameters() if p.grad is not None))


@register_proxy
class NaswotProxy(_ZeroCost):
    """log|K| of the temporal layers' activation codes over a batch of clips (NASWOT)."""

    name = "naswot"
    validation = (
        "not validated: on the tiny world (recipe 3), Kendall tau 0.09/0.03 against the two ground-truth seeds on held-out "
        "denoising, 0.11/-0.10 on motion direction (the seeds agree at 0.64 and -0.17: docs/quality.md)"
    )

    @torch.no_grad()
    def score(self, architecture: Architecture, curve=None) -> float:
        model = self.model(architecture)
        layers = [layer for stack in model.temporal.values() for layer in stack]
        if not layers:
            return 0.0
        codes: list[torch.Tensor] = []
        hooks = [
            layer.register_forward_hook(lambda m, args, out: codes.append((out - args[0]) > 0)) for layer in layers
        ]
        noisy, t = self.noisy()
        model(noisy, t, self.text)
        for hook in hooks:
            hook.remove()
        frames = self.space.video.frames
        binary = torch.cat([c.reshape(len(noisy), frames, -1).flatten(1) for c in codes], 1).double()
        agree = binary @ binary.T + (1 - binary) @ (1 - binary).T  # units - Hamming distance
        return float(torch.linalg.slogdet(agree)[1])


@register_proxy
class TemporalSensitivityProxy(_ZeroCost):
    """How much the middle frame's output depends on the other frames' input (norm ratio of a VJP)."""

    name = "tsens"
    validation = (
        "not validated: on the tiny world (recipe 3), Kendall tau 0.09/-0.03 against the two ground-truth seeds on held-out "
        "denoising, 0.02/0.03 on motion direction (the seeds agree at 0.64 and -0.17: docs/quality.md)"
    )

    def score(self, architecture: Architecture, curve=None) -> float:
        model = self.model(architecture)
        if not model.temporal_parameters():
            return 0.0
        noisy, t = self.noisy()
        noisy = noisy.clone().requires_grad_(True)
        out = model(noisy, t, self.text).sample
        middle = self.space.video.frames // 2
        probe = torch.randn(out[:, :, middle].shape, generator=torch.Generator().manual_seed(self.seed))
        (out[:, :, middle] * probe).sum().backward()
        grad = noisy.grad
        own = grad[:, :, middle].norm()
        others = torch.cat([grad[:, :, :middle], grad[:, :, middle + 1 :]], 2).norm()
        return float(others / own.clamp_min(1e-12))
