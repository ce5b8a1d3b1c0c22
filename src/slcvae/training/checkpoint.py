"""Atomic checkpoints: write to a temporary file in the same folder, then rename over the target (read: loading.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from slcvae.io import replace_atomic
from slcvae.loading import load_checkpoint

__all__ = ["load_checkpoint", "save_atomic"]


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to `path` so that a crash leaves either the old file or the new one, never half."""
    replace_atomic(path, lambda tmp: torch.save(obj, tmp))
