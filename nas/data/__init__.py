"""Training data: synthetic clips, reading videos and images, and cached latent datasets.

``nas data synth`` writes a small video-text set; ``nas data encode`` turns videos and images
plus captions into sharded VAE latents and text embeddings (safetensors + manifest.json), which
``LatentDataset`` serves to the trainer without decoding a pixel again.
"""

from nas.data.encode import encode_dataset
from nas.data.latents import LatentDataset
from nas.data.synth import synth_dataset

__all__ = ["LatentDataset", "encode_dataset", "synth_dataset"]
