from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    from slcvae.data.synth import synth

    out = tmp_path_factory.mktemp("synth")
    synth(out, seed=0)
    return out


def shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent: the real corpora live in ../shared/data beside the repository (CI has them)")
    return path
