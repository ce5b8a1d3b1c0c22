"""slcvae: diverse conditional text generation with Self-Labeling CVAEs (Zhang et al., 2019).

import slcvae
gen = slcvae.Generator.from_pretrained("runs/demo/slcvae")
gen.generate(["how are you ?"], num_return_sequences=10)
"""

from slcvae.errors import InputError

__version__ = "0.1.0"
__all__ = ["Generator", "InputError", "__version__"]


def __getattr__(name: str):
    # Generator pulls in torch and the models: imported on first use, so `import slcvae` stays light
    if name == "Generator":
        from slcvae.generator import Generator

        return Generator
    raise AttributeError(f"module 'slcvae' has no attribute {name!r}")
