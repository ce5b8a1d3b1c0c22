"""Decoding: greedy, sampling (temperature, top-k, top-p), beam, diverse beam and MMI; N outputs per source."""

from slcvae.generation.config import GenerationConfig
from slcvae.generation.decode import generate

__all__ = ["GenerationConfig", "generate"]
