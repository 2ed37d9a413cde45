"""Vid-ODE networks: the generator, the discriminators and one training iteration
(apply_performance, models/performance, applies the speed and memory options from outside)."""
from models.vidode import VidODE
from models.discriminator import Discriminator, create_netD
from models.training_step import train_step, update_learning_rate
from models.performance import apply_performance

__all__ = ["VidODE", "Discriminator", "create_netD", "train_step", "update_learning_rate", "apply_performance"]
