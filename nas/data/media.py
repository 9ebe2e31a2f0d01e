"""Reading and writing pixels: videos through PyAV (FFmpeg), still images through Pillow.

Frames are uint8 arrays (F, H, W, 3) at the file's size; ``fit`` turns them into the model's
video shape (resize so the target is covered, then centre-crop), as float in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def read_video(path: str | Path) -> np.ndarray:
    """All frames of the first video stream, (F, H, W, 3) uint8. Raises on unreadable files."""
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    if not frames:
        raise ValueError("no video frames")
    return np.stack(frames)


def read_image(path: str | Path) -> np.ndarray:
    """One still image as a one-frame clip, (1, H, W, 3) uint8."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))[None]


def write_video(path: str | Path, frames: np.ndarray, fps: int = 8) -> None:
    """Write (F, H, W, 3) uint8 frames as H.264 (yuv420p, so height and width must be even)."""
    f, h, w, _ = frames.shape
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18"}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def clip_starts(total: int, frames: int, stride: int, clips: int) -> list[int]:
    """First frame of up to ``clips`` evenly spaced windows of ``frames`` frames ``stride`` apart."""
    span = (frames - 1) * stride + 1
    if total < span:
        return []
    last = total - span
    if clips <= 1 or last == 0:
        return [0]
    count = min(clips, last + 1)
    return sorted({round(i * last / (count - 1)) for i in range(count)})


def fit(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 (F, H, W, 3) -> float (F, 3, height, width) in [-1, 1]: cover-resize, centre-crop."""
    x = torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    h, w = x.shape[-2:]
    scale = max(height / h, width / w)
    size = (max(height, round(h * scale)), max(width, round(w * scale)))
    if size != (h, w):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return x[:, :, top : top + height, left : left + width].clamp(-1, 1)


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """float (F, 3, H, W) in [-1, 1] -> uint8 (F, H, W, 3), the layout write_video takes."""
    x = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
