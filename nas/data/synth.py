"""A small synthetic video-text set: coloured shapes that move or rotate, with captions.

Real files (H.264 .mp4 through PyAV, PNG stills) and a ``captions.csv`` (columns ``file``,
``caption``), so the whole data path -- decoding, frame sampling, resizing, VAE and text
encoding -- runs on it exactly as on a real data set, with no download. Captions name the
shape, colour and motion, so a text-conditioned model has something to learn from them.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from nas import outputs
from nas.data.media import write_video
from nas.errors import NasError

SHAPES = ("square", "triangle", "circle")
COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 240), "yellow": (240, 220, 40)}
MOTIONS = ("moving left", "moving right", "moving up", "moving down", "rotating clockwise", "rotating counterclockwise")
BACKGROUND = (20, 20, 28)


SYNTH_FILE = re.compile(r"(clip_\d{4}\.mp4|image_\d{4}\.png)")


def synth_captions(path: Path) -> bool:
    """A captions.csv that synth_dataset wrote: columns file, caption, and only its own file names."""
    try:
        rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError):
        return False
    return list(rows.columns) == ["file", "caption"] and all(SYNTH_FILE.fullmatch(f) for f in rows["file"])


def synth_outputs(out: Path, clips: int, images: int) -> list[outputs.Derived]:
    """captions.csv (nas's if it lists only synthetic files) and the clips and images, nas's where it is."""
    captions = out / "captions.csv"
    names = [f"clip_{i:04d}.mp4" for i in range(clips)] + [f"image_{i:04d}.png" for i in range(images)]
    return [
        outputs.Derived(captions, "the synthetic set's captions", synth_captions),
        *(
            outputs.Derived(out / n, "a synthetic clip or image", outputs.ours_if(captions, synth_captions))
            for n in names
        ),
    ]


def synth_dataset(
    out: str | Path,
    clips: int = 16,
    images: int = 4,
    frames: int = 16,
    height: int = 96,
    width: int = 128,
    fps: int = 8,
    seed: int = 0,
) -> Path:
    """Write ``clips`` videos, ``images`` stills and captions.csv into ``out``; returns the CSV path."""
    for name, value in (("clips", clips), ("frames", frames), ("height", height), ("width", width), ("fps", fps)):
        if value < 1:
            raise NasError(f"nas data synth: --{name} must be positive, got {value}")
    if height % 2 or width % 2:
        raise NasError(f"nas data synth: height and width must be even for H.264, got {height}x{width}")
    out = Path(out)
    outputs.claim(synth_outputs(out, clips, images))
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for index in range(clips + images):
        shape, colour, motion = rng.choice(SHAPES), rng.choice(list(COLOURS)), rng.choice(MOTIONS)
        size = rng.uniform(0.18, 0.28) * min(height, width)
        start = (rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height)
        if index < clips:
            name = f"clip_{index:04d}.mp4"
            video = np.stack(
                [
                    _draw(
                        shape,
                        COLOURS[colour],
                        *_pose(motion, start, t / max(frames - 1, 1), width, height),
                        size,
                        width,
                        height,
                    )
                    for t in range(frames)
                ]
            )
            write_video(out / name, video, fps=fps)
            caption = f"a {colour} {shape} {motion}"
        else:
            name = f"image_{index - clips:04d}.png"
            Image.fromarray(_draw(shape, COLOURS[colour], start, rng.uniform(0, 90), size, width, height)).save(
                out / name
            )
            caption = f"a {colour} {shape}"
        rows.append({"file": name, "caption": caption})
    csv = out / "captions.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def synth_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``count`` stills (N, H, W, 3 uint8) of the set's shapes and colours at random places and angles,
    drawn in memory: frames to train or calibrate a VAE on without writing files."""
    rng = random.Random(seed)
    frames = []
    for _ in range(count):
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        size = rng.uniform(0.18, 0.28) * min(height, width)
        centre = (rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height)
        frames.append(_draw(shape, COLOURS[colour], centre, rng.uniform(0, 90), size, width, height))
    return np.stack(frames)


def _pose(motion: str, start: tuple[float, float], t: float, width: int, height: int):
    """Centre and angle (degrees) at time ``t`` in [0, 1]: a third of the frame's travel, or a half turn."""
    x, y = start
    travel = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
    if motion.startswith("moving"):
        dx, dy = travel[motion.split()[1]]
        return (x + dx * t * width / 3, y + dy * t * height / 3), 0.0
    turn = 180 if motion == "rotating clockwise" else -180
    return (x, y), turn * t


def _draw(shape: str, colour, centre, angle: float, size: float, width: int, height: int) -> np.ndarray:
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    cx, cy = centre
    if shape == "circle":  # a circle shows no rotation, so it carries a spot that does
        draw.ellipse([cx - size, cy - size, cx + size, cy + size], fill=colour)
        a = math.radians(angle)
        sx, sy = cx + 0.55 * size * math.cos(a), cy + 0.55 * size * math.sin(a)
        draw.ellipse([sx - size / 4, sy - size / 4, sx + size / 4, sy + size / 4], fill=BACKGROUND)
    else:
        corners = 4 if shape == "square" else 3
        points = [
            (
                cx + size * math.cos(math.radians(angle + 90 + 360 * k / corners)),
                cy + size * math.sin(math.radians(angle + 90 + 360 * k / corners)),
            )
            for k in range(corners)
        ]
        draw.polygon(points, fill=colour)
    return np.asarray(image)
