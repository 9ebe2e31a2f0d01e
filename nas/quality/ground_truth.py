"""The ground truth a quality proxy is judged against: long training, then held-out metrics.

An architecture's temporal layers (optionally the whole model) are trained on the tiny world's
search pool for ``train_steps`` optimizer steps -- meant to be at least 10x a proxy's -- with their
own seed and their own data order, and then scored on the world's *test* clips, which no proxy ever sees:

- ``denoise_loss``: the noise-prediction MSE on every test clip at each of ``eval_timesteps``
  timesteps spread evenly over [50, 950], at noise fixed by the seed (lower is better);
- the motion metrics of :mod:`nas.quality.motion` (``direction_accuracy``, ``speed_error``,
  ``dynamic_degree``, ``temporal_consistency``) on few-step samples (DDIM, ``sampling_steps`` steps,
  trailing spacing, on the world's noise schedule without clipping: ``World.scheduler``), ``samples_per_caption`` for every test caption -- combinations of subject and
  motion no search clip has -- and, prefixed ``positions_``, for every clip of the positions pool
  (seen captions, unseen starting positions). Every architecture is sampled from the same noises
  (fixed by the seed), so differences between architectures are not differences of noise. A
  model without temporal layers draws each frame on its own; only layers that relate frames and
  read the caption's direction and speed move the object as the data does.

``provenance`` lists what the runs saw (seed, training clips, every batch, evaluation clips),
so a check can prove that the reference is not a replay of the proxy.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from diffusers import DDIMScheduler

from nas.data.latents import LatentDataset
from nas.data.world import World
from nas.errors import NasError
from nas.model import VideoUNet
from nas.space import Architecture, SearchSpace


class GroundTruth:
    """Scores architectures of the world's space by long training and held-out metrics."""

    def __init__(
        self,
        world: World,
        space: SearchSpace | None = None,
        train_steps: int = 400,
        seed: int = 7919,
        lr: float = 3e-3,
        batch: int = 8,
        eval_timesteps: int = 10,
        sampling_steps: int = 8,
        samples_per_caption: int = 8,
        guidance: float = 1.0,
        whole_model: bool = False,
    ):
        for name, value, kind in (
            ("train_steps", train_steps, int),
            ("batch", batch, int),
            ("eval_timesteps", eval_timesteps, int),
            ("sampling_steps", sampling_steps, int),
            ("samples_per_caption", samples_per_caption, int),
            ("lr", lr, (int, float)),
            ("guidance", guidance, (int, float)),
            ("whole_model", whole_model, bool),
        ):
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise NasError(f"ground truth: {name} must be {getattr(kind, '__name__', 'a number')}, got {value!r}")
        if train_steps < 1 or batch < 1 or eval_timesteps < 1 or sampling_steps < 1 or samples_per_caption < 1:
            raise NasError(
                "ground truth: train_steps, batch, eval_timesteps, sampling_steps and samples_per_caption must be positive"
            )
        self.world, self.space = world, space or world.space()
        self.train_steps, self.seed, self.lr, self.batch = train_steps, seed, lr, batch
        self.guidance, self.whole_model, self.sampling_steps = guidance, whole_model, sampling_steps
        self.scheduler = world.scheduler()  # the backbone's own schedule, unclipped (nas.data.schedule)
        self.train_data = LatentDataset(world.latents)
        test = LatentDataset(world.test)
        v = self.space.video
        test.check_model(
            v.frames,
            v.latent_channels,
            v.latent_height,
            v.latent_width,
            self.space.cross_attention_dim,
            self.space.text_tokens,
            f"space {self.space.name}",
        )
        held = test.get(test.videos)
        self.test_latents, self.test_text = held["latents"], held["text"]
        self.test_sources = [test.samples[i]["source"] for i in test.videos]
        generator = torch.Generator().manual_seed(seed + 1)
        n = len(self.test_latents)
        self.eval_t = torch.linspace(50, 950, eval_timesteps).long().repeat_interleave(n)
        self.eval_noise = torch.randn((eval_timesteps * n, *self.test_latents.shape[1:]), generator=generator)
        self.pools = {}  # name -> (caption embeddings, noises, directions, speeds), samples_per_caption each
        for pool, folder in (("", world.test), ("positions_", world.positions)):
            data = LatentDataset(folder)
            rows = world.test_motion(folder.name).set_index("file")
            sources = [data.samples[i]["source"] for i in data.videos] * samples_per_caption
            text = data.get(data.videos)["text"].repeat(samples_per_caption, 1, 1)
            noise = torch.randn((len(text), *self.test_latents.shape[1:]), generator=generator)
            self.pools[pool] = (text, noise, list(rows.loc[sources, "direction"]), list(rows.loc[sources, "speed"]))
        self.order = self._order()

    def _order(self) -> list[list[int]]:
        """The batches of training clips, drawn once from this run's own generator."""
        generator = torch.Generator().manual_seed(self.seed)
        pool = self.train_data.videos
        return [
            [pool[i] for i in torch.randint(len(pool), (self.batch,), generator=generator).tolist()]
            for _ in range(self.train_steps)
        ]

    @property
    def provenance(self) -> dict[str, Any]:
        samples = self.train_data.samples
        order = [[f"{self.world.latents.name}/{samples[i]['source']}" for i in batch] for batch in self.order]
        return {
            "seed": self.seed,
            "train_steps": self.train_steps,
            "train_clips": sorted({c for batch in order for c in batch}),
            "order": order,
            "eval_clips": [f"{self.world.test.name}/{s}" for s in self.test_sources],
        }

    def score(self, architecture: Architecture) -> dict[str, float]:
        start = time.perf_counter()
        model = self.train(architecture)
        trained = time.perf_counter()
        result = {"denoise_loss": self.denoise_loss(model), **self.motion(model)}
        return {**result, "train_s": round(trained - start, 2), "seconds": round(time.perf_counter() - start, 2)}

    def train(self, architecture: Architecture) -> VideoUNet:
        """The architecture's temporal layers (or whole model) trained on this run's batches, in eval
        mode: for a reader who wants per-sample metrics (``motion(model, per_sample=True)``)."""
        torch.manual_seed(self.seed)
        model = VideoUNet.from_space(self.space, architecture, self.world.backbone, freeze_spatial=not self.whole_model)
        parameters = [p for p in model.parameters() if p.requires_grad]
        generator = torch.Generator().manual_seed(self.seed + 2)
        if parameters:
            optimizer = torch.optim.AdamW(parameters, lr=self.lr)
            model.train()
            for batch in self.order:
                data = self.train_data.get(batch)
                noise = torch.randn(data["latents"].shape, generator=generator)
                t = torch.randint(0, 1000, (len(batch),), generator=generator)
                noisy = self.scheduler.add_noise(data["latents"], noise, t)
                loss = torch.nn.functional.mse_loss(model(noisy, t, data["text"]).sample, noise)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return model.eval()

    @torch.no_grad()
    def denoise_loss(self, model: VideoUNet) -> float:
        n = len(self.test_latents)
        total = 0.0
        for chunk in range(0, len(self.eval_t), n):
            t, noise = self.eval_t[chunk : chunk + n], self.eval_noise[chunk : chunk + n]
            noisy = self.scheduler.add_noise(self.test_latents, noise, t)
            total += float(torch.nn.functional.mse_loss(model(noisy, t, self.test_text).sample, noise)) * len(t)
        return total / len(self.eval_t)

    @torch.no_grad()
    def motion(self, model: VideoUNet, per_sample: bool = False) -> dict[str, Any]:
        """Mean motion metrics of both held-out pools (``per_sample``: the arrays, for intervals)."""
        from nas.quality import motion

        out = {}
        for pool, (text, noise, directions, speeds) in self.pools.items():
            values = motion.per_sample(
                self.sample(model, text=text, noise=noise), self.world.background, directions, speeds
            )
            out.update({pool + k: (v if per_sample else float(v.mean())) for k, v in values.items()})
        return out

    @torch.no_grad()
    def sample(
        self,
        model: VideoUNet,
        steps: int | None = None,
        guidance: float | None = None,
        text: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Few-step DDIM samples (trailing spacing) of the test captions, with optional guidance."""
        from nas.pipeline import few_step_scheduler, sample_latents

        scheduler: DDIMScheduler = few_step_scheduler(self.scheduler.config)
        guidance = self.guidance if guidance is None else guidance
        text = self.pools[""][0] if text is None else text
        noise = self.pools[""][1] if noise is None else noise
        return sample_latents(
            model, scheduler, text, steps or self.sampling_steps, noise, guidance, self.world.empty_text
        )
