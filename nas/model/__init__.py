"""The video diffusion model built from a search space and an architecture."""

from nas.model.video_unet import VideoUNet, VideoUNetOutput

__all__ = ["VideoUNet", "VideoUNetOutput"]
