"""slcvae: diverse conditional text generation with Self-Labeling CVAEs (Zhang et al., 2019)."""

from slcvae.errors import InputError

__version__ = "0.1.0"
__all__ = ["InputError", "__version__"]
