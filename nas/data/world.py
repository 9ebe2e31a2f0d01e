"""The tiny world: a trained toy text-to-video setting in which quality proxies can be checked.

``nas world make OUT`` builds, on a CPU in minutes and reproducibly from one seed:

- clips of coloured shapes and scikit-learn's handwritten digits that move (left/right/up/down,
  ``slowly``: 1 latent px a frame, ``quickly``: 1.5), captioned with what they do, written as .mp4 +
  captions.csv with the true per-frame displacement; the captions of the *test* clips are
  (subject, motion) combinations that no search clip has, so held-out captions are really unseen;
  the *positions* clips have seen captions but starting offsets no search clip has;
- a tiny AutoencoderKL and a tiny CLIP text encoder (random weights: the VAE's latents keep the
  object where it is in the frame, which is all the motion metric needs; its scaling brings the
  latents to unit variance), and ``nas data encode`` latents of the pools (``latents/``: the
  search pool proxies may use; ``test/`` and ``positions/``: clips only the ground truth scores on);
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
from PIL import Image
from safetensors.torch import load_file, save_file

from nas import outputs
from nas.data.media import write_video
from nas.data.schedule import SD15_SCHEDULE, noise_scheduler
from nas.data.synth import COLOURS, SHAPES, _draw
from nas.data.tiny_models import write_text_encoder, write_vae
from nas.errors import NasError
from nas.options import renamed_kwargs
from nas.space import SearchSpace

WORLD = "world.json"
PARTIAL_OWNER = ".nas-partial"  # marks OUT.partial as make_world's work folder, so only such a folder is removed
RECIPE_VERSION = 3  # 2: latent speed >= 1 px/frame, digits, unseen positions; 3: SD1.5's noise schedule
CONTENTS = ("shapes", "digits", "both")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SPEEDS = {"slowly": 1.0, "quickly": 1.5}  # latent pixels travelled per frame (the VAE's 8 px)
OBJECT_SIZE = 2.5  # the object's size in latent pixels (a shape's radius is half of it; a digit's box)
SEEN_OFFSETS, UNSEEN_OFFSETS = (-1.0, 0.0, 1.0), (-0.5, 0.5)  # start offsets across the motion, latent px
BACKGROUND = (20, 20, 28)
DIGIT_COLOUR = (235, 235, 235)


@dataclass
class WorldRecipe:
    """Everything that determines a world: same recipe, same world (bit for bit on one machine)."""

    clips: int = 96  # search-pool clips (proxies and the ground truth train on these)
    test_clips: int = 16  # held-out clips, each with a caption no search clip has
    position_clips: int = 16  # held-out clips with seen captions but starting positions no search clip has
    content: str = "both"  # shapes, digits (scikit-learn's bundled handwritten digits) or both
    digits: int = 10  # how many digit classes (0 .. digits-1)
    backbone_train_steps: int = 1200  # optimizer steps of the spatial backbone's image-model training
    backbone_batch: int = 16
    backbone_lr: float = 1e-3
    caption_dropout: float = 0.1  # empty captions in backbone training, for guidance at sampling
    seed: int = 0


WorldRecipe.__init__ = renamed_kwargs(backbone_steps="backbone_train_steps")(WorldRecipe.__init__)  # for one release


def motions() -> list[str]:
    return [f"moving {d} {s}" for d in DIRECTIONS for s in SPEEDS]


def subjects(content: str, digits: int = 10) -> list[tuple[str, str]]:
    """(subject, caption stem) pairs of a content: ("red circle", "a red circle"), ("digit 7", "the digit 7")."""
    out = []
    if content in ("shapes", "both"):
        out += [(f"{c} {s}", f"a {c} {s}") for s in SHAPES for c in COLOURS]
    if content in ("digits", "both"):
        out += [(f"digit {d}", f"the digit {d}") for d in range(digits)]
    return out


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
    encode_dataset(work / "videos" / "positions", work / "vae", work / "text_encoder", work / "positions", space)
    _write_reference_latents(work, space)
    backbone = _train_backbone(work, space, recipe, progress)
    info = {
        "recipe_version": RECIPE_VERSION,
        "space": space.name,
        "recipe": asdict(recipe),
        "noise_schedule": SD15_SCHEDULE,
        "search_clips": len(split["search"]),
        "test_clips": len(split["test"]),
        "position_clips": len(split["positions"]),
        "test_captions_unseen": sorted(set(split["test"]["caption"]) - set(split["search"]["caption"])),
        "backbone": backbone,
    }
    shutil.copyfile(space.source, work / "space.yaml")
    (work / WORLD).write_text(json.dumps(info, indent=1))
    info["motion_calibration"] = World(work).motion_calibration()
    info["seconds"] = round(time.perf_counter() - start, 1)
    (work / WORLD).write_text(json.dumps(info, indent=1))
    (work / PARTIAL_OWNER).unlink()
    if out.exists():
        out.rmdir()
    work.rename(out)
    return info


def _check_recipe(recipe: WorldRecipe, space: SearchSpace) -> None:
    if recipe.content not in CONTENTS:
        raise NasError(f"nas world make: --content must be one of {', '.join(CONTENTS)}, got {recipe.content!r}")
    if recipe.content != "shapes" and not 1 <= recipe.digits <= 10:
        raise NasError(f"nas world make: --digits must be 1 to 10 (the digits 0-9 can be drawn), got {recipe.digits}")
    if recipe.clips < 8 or recipe.test_clips < 2 or recipe.position_clips < 2:
        raise NasError(
            "nas world make: needs at least 8 search clips, 2 test clips and 2 position clips "
            f"(got {recipe.clips}, {recipe.test_clips}, {recipe.position_clips})"
        )
    combos = len(subjects(recipe.content, recipe.digits)) * len(motions())
    if recipe.test_clips > combos // 2:
        raise NasError(f"nas world make: at most {combos // 2} test clips (one unseen caption each)")
    if recipe.backbone_train_steps < 1 or recipe.backbone_batch < 1 or not 0 <= recipe.caption_dropout < 1:
        raise NasError("nas world make: backbone train steps and batch must be positive, caption dropout in [0, 1)")
    if not space.source or not Path(space.source).is_file():
        raise NasError(f"nas world make: the space must come from a YAML file (got {space.source!r})")
    v = space.video
    if v.latent_channels != 4:
        raise NasError(f"{space.source}: the world's VAE has 4 latent channels, the space needs {v.latent_channels}")
    reach = (OBJECT_SIZE + max(SPEEDS.values()) * (v.frames - 1)) * v.latent_scale
    if v.frames < 2 or reach > min(v.height, v.width):
        raise NasError(
            f"{space.source}: {v.frames} frames of {v.height}x{v.width} px cannot draw an object of "
            f"{OBJECT_SIZE * v.latent_scale:g} px moving {max(SPEEDS.values()):g} latent px a frame "
            f"(needs 2+ frames and {reach:g} px of frame)"
        )


# ------------------------------------------------------------------------------------------ clips
def _write_clips(root: Path, space: SearchSpace, recipe: WorldRecipe) -> dict[str, pd.DataFrame]:
    """Search clips; test clips with held-out (subject, motion) captions; position clips with seen
    captions whose starting offsets across the motion no search clip has."""
    rng = random.Random(recipe.seed)
    combos = [(subject, stem, m) for subject, stem in subjects(recipe.content, recipe.digits) for m in motions()]
    rng.shuffle(combos)
    test_combos, search_combos = combos[: recipe.test_clips], combos[recipe.test_clips :]
    digits = _digit_images() if recipe.content != "shapes" else None
    split = {}
    seen = [rng.choice(search_combos) for _ in range(recipe.clips)]
    for name, count, pool, offsets in (
        ("search", recipe.clips, seen, SEEN_OFFSETS),
        ("test", recipe.test_clips, test_combos, SEEN_OFFSETS),
        ("positions", recipe.position_clips, list(dict.fromkeys(seen)), UNSEEN_OFFSETS),
    ):
        folder = root / "videos" / name
        folder.mkdir(parents=True)
        rows = []
        for index in range(count):
            subject, stem, motion = pool[index % len(pool)]
            offset = rng.choice(offsets)
            clip, shift, start = _render(subject, motion, offset, space, rng, digits)
            file = f"clip_{index:04d}.mp4"
            write_video(folder / file, clip)
            _, direction, speed = motion.split()
            rows.append(
                {
                    "file": file,
                    "caption": f"{stem} {motion}",
                    "subject": subject,
                    "motion": motion,
                    "direction": direction,
                    "speed": speed,
                    "dx_px": shift[0],
                    "dy_px": shift[1],
                    "start_x_px": start[0],
                    "start_y_px": start[1],
                }
            )
        split[name] = pd.DataFrame(rows)
        split[name].to_csv(folder / "captions.csv", index=False)
    return split


def _digit_images() -> dict[int, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download), grouped by class."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return {d: data.images[data.target == d] / 16.0 for d in range(10)}


def _render(subject: str, motion: str, offset: float, space: SearchSpace, rng: random.Random, digits):
    """(F, H, W, 3) uint8 frames, the centre's displacement per frame in pixels (dx, dy) and its start."""
    v = space.video
    frames, height, width, scale = v.frames, v.height, v.width, v.latent_scale
    _, direction, speed = motion.split()
    dx, dy = DIRECTIONS[direction]
    per_frame = SPEEDS[speed] * scale
    shift = (dx * per_frame, dy * per_frame)
    travel = per_frame * (frames - 1)
    across = offset * scale
    start = (width / 2 - dx * travel / 2 + abs(dy) * across, height / 2 - dy * travel / 2 + abs(dx) * across)
    size = OBJECT_SIZE * scale
    if subject.startswith("digit "):
        images = digits[int(subject.split()[1])]
        glyph = Image.fromarray((images[rng.randrange(len(images))] * 255).astype(np.uint8)).resize(
            (round(size), round(size)), Image.BILINEAR
        )
    clip = []
    for f in range(frames):
        centre = (start[0] + shift[0] * f, start[1] + shift[1] * f)
        if subject.startswith("digit "):
            image = Image.new("RGB", (width, height), BACKGROUND)
            image.paste(
                Image.new("RGB", glyph.size, DIGIT_COLOUR),
                (round(centre[0] - size / 2), round(centre[1] - size / 2)),
                glyph,
            )
            clip.append(np.asarray(image))
        else:
            colour, shape = subject.split()
            clip.append(_draw(shape, COLOURS[colour], centre, 0.0, size / 2, width, height))
    return np.stack(clip), shift, start


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
    from diffusers import UNet2DConditionModel
    from tqdm import tqdm

    from nas.data.latents import LatentDataset

    torch.manual_seed(recipe.seed)
    unet = UNet2DConditionModel(**space.backbone)
    scheduler = noise_scheduler()
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
        for part in ("latents", "test", "positions", "backbone", "reference.safetensors", WORLD):
            if not (self.folder / part).exists():
                raise NasError(f"{self.folder}: no {part} here (make a world with `nas world make`)")
        try:
            self.info = json.loads((self.folder / WORLD).read_text())
        except json.JSONDecodeError:
            raise NasError(f"{self.folder / WORLD}: not JSON (make the world again with `nas world make`)") from None
        version = self.info.get("recipe_version", 1) if isinstance(self.info, dict) else None
        if version != RECIPE_VERSION:
            raise NasError(
                f"{self.folder / WORLD}: a world of recipe version {version}, this nas reads version "
                f"{RECIPE_VERSION} (make it again with `nas world make`)"
            )
        reference = load_file(str(self.folder / "reference.safetensors"))
        self.background, self.empty_text = reference["background"], reference["empty_text"]

    @property
    def latents(self) -> Path:
        """The search pool (``nas data encode`` folder): what proxies may train and validate on."""
        return self.folder / "latents"

    @property
    def test(self) -> Path:
        """The held-out pool: only the ground truth scores on it."""
        return self.folder / "test"

    @property
    def positions(self) -> Path:
        """The held-out pool of seen captions at starting positions no search clip has."""
        return self.folder / "positions"

    @property
    def backbone(self) -> Path:
        return self.folder / "backbone"

    def space(self) -> SearchSpace:
        return SearchSpace.load(self.folder / "space.yaml")

    def scheduler(self):
        """The noise schedule the backbone was trained on (a ``DDPMScheduler``): what trains and samples on it."""
        return noise_scheduler(self.info["noise_schedule"])

    def test_motion(self, pool: str = "test") -> pd.DataFrame:
        """The true motion of a held-out pool's clips (``test`` or ``positions``), one row a clip."""
        return pd.read_csv(self.folder / "videos" / pool / "captions.csv")

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
