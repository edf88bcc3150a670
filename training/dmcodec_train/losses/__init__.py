"""Training losses: multi-scale mel (`dmcodec_train.mel`), GAN critics and losses, distillation."""

from .adversarial import discriminator_loss, feature_matching_loss, generator_loss
from .discriminators import Discriminators
from .distillation import DistillationHead, distillation_loss, select_levels

__all__ = ["Discriminators", "DistillationHead", "discriminator_loss", "distillation_loss",
           "feature_matching_loss", "generator_loss", "select_levels"]
