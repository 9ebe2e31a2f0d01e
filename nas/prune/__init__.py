"""Stage 1 of the paper: prune a pretrained text-to-image UNet to a space's spatial backbone; and a
pretrained VAE's decoder to a lighter one (the part of a generation that runs once per frame)."""

from nas.prune.prune import prune_decoder, prune_to_space, prune_unet

__all__ = ["prune_decoder", "prune_to_space", "prune_unet"]
