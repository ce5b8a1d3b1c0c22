"""Decoding: greedy, sampling (temperature, top-k, top-p) and beam search; N samples per source."""

from slcvae.generation.decode import GenerateConfig, generate

__all__ = ["GenerateConfig", "generate"]
