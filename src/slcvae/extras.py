"""Optional features and the extra that installs each: a missing one is an error that says what to install.

pip install "slcvae[serve]"       HTTP serving (fastapi, uvicorn)
pip install "slcvae[plots]"       compare/demo plots and TensorBoard logs (matplotlib, tensorboard)
pip install "slcvae[human-eval]"  agreement of human ratings (krippendorff)
pip install "slcvae[jieba]"       Chinese word segmentation (jieba)
pip install "slcvae[pretrained]"  pretrained sentence encoders (transformers)
"""

from __future__ import annotations

import importlib
from types import ModuleType

from slcvae.errors import InputError

EXTRAS = {"fastapi": "serve", "uvicorn": "serve", "matplotlib": "plots", "tensorboard": "plots",
          "krippendorff": "human-eval", "jieba": "jieba", "transformers": "pretrained",
          "huggingface_hub": "pretrained"}  # fmt: skip


def available(module: str) -> bool:
    """Whether `module` imports (its extra is installed)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def require(module: str, feature: str) -> ModuleType:
    """`module`, imported; an InputError naming the extra to install when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS[module.split(".")[0]]
        raise InputError(feature, None, f'needs {module.split(".")[0]}: pip install "slcvae[{extra}]"') from None
