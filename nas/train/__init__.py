"""Training: stage 1 ``distill`` (the searched architecture into a full video model) and stage 2
``adversarial`` (latent adversarial fine-tuning to a few-step generator), and ``decoder`` (a pruned
VAE decoder recovered by distillation), with the shared machinery -- configs, the training loop,
checkpoints with exact resume, EMA, loss logs -- in small modules.
"""

from nas.train.adversarial import adversarial
from nas.train.config import AdversarialConfig, DecoderConfig, DistillConfig, load_config
from nas.train.decoder import decoder
from nas.train.distill import distill

__all__ = ["AdversarialConfig", "DecoderConfig", "DistillConfig", "adversarial", "decoder", "distill", "load_config"]
