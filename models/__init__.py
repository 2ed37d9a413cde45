"""Vid-ODE networks: the generator, the discriminators and one training iteration."""
from models.vidode import VidODE
from models.discriminator import Discriminator, create_netD
from models.train_step import train_step, update_learning_rate

__all__ = ["VidODE", "Discriminator", "create_netD", "train_step", "update_learning_rate"]
