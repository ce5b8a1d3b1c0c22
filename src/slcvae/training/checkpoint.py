"""Atomic checkpoints: write to a temporary file in the same folder, then rename over the target."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from slcvae.errors import InputError
from slcvae.io import replace_atomic


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to `path` so that a crash leaves either the old file or the new one, never half."""
    replace_atomic(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by `save_atomic`: tensors and plain values only (no unpickling of code).

    A truncated or foreign file is an InputError naming it, not a traceback from the zip reader.
    """
    try:
        ckpt = torch.load(path, weights_only=True, map_location=map_location)
    except FileNotFoundError:
        raise InputError(path, None, "no such checkpoint") from None
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise InputError(path, None, f"corrupt or truncated checkpoint ({str(err).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise InputError(path, None, "not a checkpoint written by `slcvae train`")
    return ckpt
