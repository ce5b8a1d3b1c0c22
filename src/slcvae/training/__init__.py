"""Training loop, checkpoints and validation."""

from slcvae.training.trainer import load_model_dir, train

__all__ = ["load_model_dir", "train"]
