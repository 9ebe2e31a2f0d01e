"""The tiny world: a trained toy text-to-video setting in which quality proxies can be checked.

``nas world make OUT`` builds, on a CPU in minutes and reproducibly from one seed:

- clips of coloured shapes that move (left/right/up/down, ``slowly`` or ``quickly``) or rotate,
  captioned with what they do, written as .mp4 + captions.csv with the true per-frame displacement;
  the captions of the *test* clips are combinations (shape, colour, motion) that no search clip
  has, so held-out captions are really unseen;
- a tiny AutoencoderKL and a tiny CLIP text encoder (random weights: the VAE's latents keep the
  object where it is in the frame, which is all the motion metric needs; its scaling brings the
  latents to unit variance), and ``nas data encode`` latents of both pools (``latents/``: the
  search pool proxies may use; ``test/``: clips only the ground truth scores on);
- a spatial backbone (the space's 2D UNet) trained as a text-to-image model on single frames of
  the search pool, so that temporal layers are judged on top of a backbone that denoises frames,
  as on the phone.

``world.json`` records the recipe, the splits, the backbone's held-out loss before and after
training, and how well the latent centroid tracks the true motion on the data itself.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from nas import outputs
from nas.data.media import write_video
from nas.data.synth import COLOURS, SHAPES, _draw
from nas.data.tiny_models import write_text_encoder, write_vae
from nas.errors import NasError
from nas.options import renamed_kwargs
from nas.space import SearchSpace

WORLD = "world.json"
PARTIAL_OWNER = ".nas-partial"  # marks OUT.partial as make_world's work folder, so only such a folder is removed
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SPEEDS = {"slowly": 0.25, "quickly": 0.5}  # share of the frame's width travelled over a clip
ROTATIONS = {"rotating clockwise": 180.0, "rotating counterclockwise": -180.0}  # degrees over a clip
BACKGROUND = (20, 20, 28)


@dataclass
class WorldRecipe:
    """Everything that determines a world: same recipe, same world (bit for bit on one machine)."""

    clips: int = 64  # search-pool clips (proxies and the ground truth train on these)
    test_clips: int = 16  # held-out clips, each with a caption no search clip has
    backbone_train_steps: int = 300  # optimizer steps of the spatial backbone's image-model training
    backbone_batch: int = 16
    backbone_lr: float = 1e-3
    caption_dropout: float = 0.1  # empty captions in backbone training, for guidance at sampling
    seed: int = 0


WorldRecipe.__init__ = renamed_kwargs(backbone_steps="backbone_train_steps")(WorldRecipe.__init__)  # for one release


def motions() -> list[str]:
    return [f"moving {d} {s}" for d in DIRECTIONS for s in SPEEDS] + list(ROTATIONS)


def make_world(
    out: str | Path, space: SearchSpace, recipe: WorldRecipe | None = None, progress: bool = True
) -> dict[str, Any]:
    """Build the world in ``out`` (a new or empty folder); returns world.json's content."""
    recipe = recipe or WorldRecipe()
    out = Path(out)
    _check_recipe(recipe, space)
    if out.exists() and any(out.iterdir()):
        raise NasError(f"{out}: folder exists and is not empty (a world is only written to a new folder)")
    start = time.perf_counter()
    work = out.with_name(out.name + ".partial")
    outputs.claim([outputs.Derived(work, "the world's work folder", outputs.owner_file(PARTIAL_OWNER))], [space.source])
    if work.exists():
        shutil.rmtree(work)  # a killed make_world's
    work.mkdir(parents=True)
    (work / PARTIAL_OWNER).write_text("a `nas world make` in progress; removed by the next one into the same folder\n")
    torch.manual_seed(recipe.seed)
    split = _write_clips(work, space, recipe)
    frames = np.concatenate([_frames_of(work / "videos" / "search", f) for f in split["search"]["file"][:8]])
    write_vae(work / "vae", frames)
    write_text_encoder(work / "text_encoder", space.cross_attention_dim, space.text_tokens)
    from nas.data.encode import encode_dataset

    encode_dataset(work / "videos" / "search", work / "vae", work / "text_encoder", work / "latents", space)
    encode_dataset(work / "videos" / "test", work / "vae", work / "text_encoder", work / "test", space)
    _write_reference_latents(work, space)
    backbone = _train_backbone(work, space, recipe, progress)
    world = World(work)
    calibration = world.motion_calibration()
    info = {
        "space": space.name,
        "recipe": asdict(recipe),
        "search_clips": len(split["search"]),
        "test_clips": len(split["test"]),
        "test_captions_unseen": sorted(set(split["test"]["caption"]) - set(split["search"]["caption"])),
        "backbone": backbone,
        "motion_calibration": calibration,
        "seconds": round(time.perf_counter() - start, 1),
    }
    shutil.copyfile(space.source, work / "space.yaml")
    (work / WORLD).write_text(json.dumps(info, indent=1))
    (work / PARTIAL_OWNER).unlink()
    if out.exists():
        out.rmdir()
    work.rename(out)
    return info


def _check_recipe(recipe: WorldRecipe, space: SearchSpace) -> None:
    if recipe.clips < 8 or recipe.test_clips < 2:
        raise NasError(
            f"nas world make: needs at least 8 search clips and 2 test clips (got {recipe.clips}, {recipe.test_clips})"
        )
    combos = len(SHAPES) * len(COLOURS) * len(motions())
    if recipe.test_clips > combos // 2:
        raise NasError(f"nas world make: at most {combos // 2} test clips (one unseen caption each)")
    if recipe.backbone_train_steps < 1 or recipe.backbone_batch < 1 or not 0 <= recipe.caption_dropout < 1:
        raise NasError("nas world make: backbone train steps and batch must be positive, caption dropout in [0, 1)")
    if not space.source or not Path(space.source).is_file():
        raise NasError(f"nas world make: the space must come from a YAML file (got {space.source!r})")
    if space.video.latent_channels != 4:
        raise NasError(
            f"{space.source}: the world's VAE has 4 latent channels, the space needs {space.video.latent_channels}"
        )


# ------------------------------------------------------------------------------------------ clips
def _write_clips(root: Path, space: SearchSpace, recipe: WorldRecipe) -> dict[str, pd.DataFrame]:
    """Search and test clips; test captions are held-out (shape, colour, motion) combinations."""
    rng = random.Random(recipe.seed)
    combos = [(s, c, m) for s in SHAPES for c in COLOURS for m in motions()]
    rng.shuffle(combos)
    test_combos, search_combos = combos[: recipe.test_clips], combos[recipe.test_clips :]
    v = space.video
    split = {}
    for name, count, pool in (("search", recipe.clips, search_combos), ("test", recipe.test_clips, test_combos)):
        folder = root / "videos" / name
        folder.mkdir(parents=True)
        rows = []
        for index in range(count):
            shape, colour, motion = pool[index % len(pool)] if name == "test" else rng.choice(pool)
            clip, shift = _render(shape, COLOURS[colour], motion, v.frames, v.height, v.width, rng)
            file = f"clip_{index:04d}.mp4"
            write_video(folder / file, clip)
            rows.append(
                {
                    "file": file,
                    "caption": f"a {colour} {shape} {motion}",
                    "shape": shape,
                    "colour": colour,
                    "motion": motion,
                    "dx_px": shift[0],
                    "dy_px": shift[1],
                }
            )
        split[name] = pd.DataFrame(rows)
        split[name].to_csv(folder / "captions.csv", index=False)
    return split


def _render(shape: str, colour, motion: str, frames: int, height: int, width: int, rng: random.Random):
    """(F, H, W, 3) uint8 frames and the centre's displacement per frame in pixels (dx, dy)."""
    size = rng.uniform(0.16, 0.22) * min(height, width)
    jitter = (rng.uniform(-0.08, 0.08) * width, rng.uniform(-0.08, 0.08) * height)
    centre = (width / 2 + jitter[0], height / 2 + jitter[1])
    step = max(frames - 1, 1)
    if motion in ROTATIONS:
        angle0 = rng.uniform(0, 90)
        poses = [(centre, angle0 + ROTATIONS[motion] * f / step) for f in range(frames)]
        shift = (0.0, 0.0)
    else:
        _, direction, speed = motion.split()
        dx, dy = DIRECTIONS[direction]
        travel = SPEEDS[speed] * width
        shift = (dx * travel / step, dy * travel / step)
        first = (centre[0] - dx * travel / 2, centre[1] - dy * travel / 2)
        poses = [((first[0] + shift[0] * f, first[1] + shift[1] * f), 0.0) for f in range(frames)]
    clip = np.stack([_draw(shape, colour, c, a, size, width, height) for c, a in poses])
    return clip, shift


def _frames_of(folder: Path, file: str) -> np.ndarray:
    from nas.data.media import read_video

    return read_video(folder / file)


def _write_reference_latents(root: Path, space: SearchSpace) -> None:
    """The background's latent (what an empty frame encodes to) and the empty caption's embedding."""
    from nas.data.pretrained import encode_text, load_text_encoder, load_vae, vae_scale

    vae = load_vae(root / "vae")
    scaling, shift = vae_scale(vae)
    v = space.video
    blank = torch.tensor(BACKGROUND, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, v.height, v.width) / 127.5 - 1
    with torch.no_grad():
        background = (vae.encode(blank).latent_dist.mean[0] - shift) * scaling
    tokenizer, text_model = load_text_encoder(root / "text_encoder")
    empty, _ = encode_text(tokenizer, text_model, [""], space.text_tokens)
    save_file(
        {"background": background.contiguous(), "empty_text": empty[0].contiguous()},
        str(root / "reference.safetensors"),
    )


# ------------------------------------------------------------------------------------- backbone
def _train_backbone(root: Path, space: SearchSpace, recipe: WorldRecipe, progress: bool) -> dict[str, Any]:
    """Train the space's 2D UNet on single frames of the search pool (text-to-image denoising)."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from tqdm import tqdm

    from nas.data.latents import LatentDataset

    torch.manual_seed(recipe.seed)
    unet = UNet2DConditionModel(**space.backbone)
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    data = LatentDataset(root / "latents")
    test = LatentDataset(root / "test")
    empty = load_file(str(root / "reference.safetensors"))["empty_text"]
    generator = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=recipe.backbone_lr)
    held = test.get(test.videos)
    frames = held["latents"].permute(0, 2, 1, 3, 4).flatten(0, 1)  # every test frame as an image
    texts = held["text"].repeat_interleave(test.frames, 0)
    eval_noise = torch.randn(frames.shape, generator=torch.Generator().manual_seed(recipe.seed + 1))
    eval_t = torch.linspace(50, 950, len(frames)).long()

    @torch.no_grad()
    def held_out() -> float:
        noisy = scheduler.add_noise(frames, eval_noise, eval_t)
        return float(torch.nn.functional.mse_loss(unet(noisy, eval_t, texts).sample, eval_noise))

    before = held_out()
    losses = []
    for _ in tqdm(range(recipe.backbone_train_steps), desc="backbone", unit="step", disable=not progress):
        indices, picks = data.draw(generator, recipe.backbone_batch, "image", data.videos)
        batch = data.get(indices, picks)
        x, text = batch["latents"][:, :, 0], batch["text"]
        drop = torch.rand(len(x), generator=generator) < recipe.caption_dropout
        text[drop] = empty
        noise = torch.randn(x.shape, generator=generator)
        t = torch.randint(0, 1000, (len(x),), generator=generator)
        loss = torch.nn.functional.mse_loss(unet(scheduler.add_noise(x, noise, t), t, text).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    unet.save_pretrained(root / "backbone")
    return {
        "held_out_loss_before": round(before, 4),
        "held_out_loss_after": round(held_out(), 4),
        "train_loss_last_20": round(float(np.mean(losses[-20:])), 4),
        "train_steps": recipe.backbone_train_steps,
    }


# ---------------------------------------------------------------------------------- using a world
class World:
    """A world folder: its space, data pools, backbone and the reference latents of the motion metric."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        for part in ("latents", "test", "backbone", "reference.safetensors"):
            if not (self.folder / part).exists():
                raise NasError(f"{self.folder}: no {part} here (make a world with `nas world make`)")
        reference = load_file(str(self.folder / "reference.safetensors"))
        self.background, self.empty_text = reference["background"], reference["empty_text"]
        self.info = json.loads((self.folder / WORLD).read_text()) if (self.folder / WORLD).is_file() else {}

    @property
    def latents(self) -> Path:
        """The search pool (``nas data encode`` folder): what proxies may train and validate on."""
        return self.folder / "latents"

    @property
    def test(self) -> Path:
        """The held-out pool: only the ground truth scores on it."""
        return self.folder / "test"

    @property
    def backbone(self) -> Path:
        return self.folder / "backbone"

    def space(self) -> SearchSpace:
        return SearchSpace.load(self.folder / "space.yaml")

    def test_motion(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / "videos" / "test" / "captions.csv")

    def centroids(self, latents: torch.Tensor) -> torch.Tensor:
        """Object centre per frame, (B, F, 2) as (x, y) in latent pixels: the centroid of the squared
        distance of each latent pixel from the background's latent."""
        weight = ((latents - self.background[None, :, None]) ** 2).sum(1)  # (B, F, h, w)
        weight = weight / weight.sum((-1, -2), keepdim=True).clamp_min(1e-8)
        h, w = weight.shape[-2:]
        ys, xs = torch.arange(h, dtype=weight.dtype), torch.arange(w, dtype=weight.dtype)
        return torch.stack([(weight.sum(-2) * xs).sum(-1), (weight.sum(-1) * ys).sum(-1)], -1)

    def trajectories(self, latents: torch.Tensor) -> torch.Tensor:
        """Centroid displacement of every frame from the first, (B, F, 2) in latent pixels."""
        c = self.centroids(latents)
        return c - c[:, :1]

    def motion_error(self, samples: torch.Tensor, clips: torch.Tensor) -> float:
        """Mean distance in latent pixels, over samples and frames after the first, between the
        object's trajectory in each sample and in the real clip of its caption (same order)."""
        return float((self.trajectories(samples) - self.trajectories(clips))[:, 1:].norm(dim=-1).mean())

    def motion_calibration(self) -> dict[str, float]:
        """How well the latent trajectory follows the true one on the test clips themselves."""
        from nas.data.latents import LatentDataset

        test = LatentDataset(self.test)
        rows = self.test_motion().set_index("file")
        scale = 1.0 / 8  # pixels -> latent pixels (the VAE's factor)
        truth = []
        for sample in (test.samples[i] for i in test.videos):
            row = rows.loc[sample["source"]]
            f = torch.arange(test.frames, dtype=torch.float32)[:, None]
            truth.append(f * torch.tensor([row["dx_px"], row["dy_px"]], dtype=torch.float32) * scale)
        truth = torch.stack(truth)
        measured = self.trajectories(test.get(test.videos)["latents"])
        moving = truth.abs().sum((1, 2)) > 0
        error = (measured - truth).norm(dim=-1)[:, 1:]
        return {
            "mean_true_travel_latent_px": round(float(truth[:, -1].norm(dim=-1)[moving].mean()), 3),
            "mean_error_latent_px": round(float(error.mean()), 3),
            "direction_cosine": round(
                float(torch.nn.functional.cosine_similarity(measured[moving, -1], truth[moving, -1], dim=-1).mean()), 3
            ),
        }


def load_world(folder: str | Path) -> World:
    return World(folder)
