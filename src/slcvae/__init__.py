"""slcvae: diverse conditional text generation with Self-Labeling CVAEs (Zhang et al., 2019).

import slcvae
gen = slcvae.Generator.from_pretrained("runs/mine")   # a `slcvae train --out` folder or an exported one
gen.generate(["how are you ?"], num_return_sequences=10)
slcvae.GenerationConfig                             # every decoding option, its default and range
"""

from slcvae.errors import InputError

__version__ = "0.1.0"
__all__ = ["GenerationConfig", "Generator", "InputError", "__version__"]


def __getattr__(name: str):
    # Generator pulls in torch and the models: imported on first use, so `import slcvae` stays light
    if name == "Generator":
        from slcvae.generator import Generator

        return Generator
    if name == "GenerationConfig":
        from slcvae.generation.config import GenerationConfig

        return GenerationConfig
    raise AttributeError(f"module 'slcvae' has no attribute {name!r}")
