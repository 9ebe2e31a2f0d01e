"""Stage 1 of the paper: prune a pretrained text-to-image UNet to a space's spatial backbone."""

from nas.prune.prune import prune_to_space, prune_unet

__all__ = ["prune_to_space", "prune_unet"]
