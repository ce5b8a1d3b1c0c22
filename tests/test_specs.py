"""Every committed compare spec still loads: model names, --set keys and values, generate fields.

A spec that no longer loads cannot reproduce the table it made. The data paths are pointed at a
tiny corpus, since the corpora themselves are not in the repository.
"""

from pathlib import Path

import pytest

from slcvae.config import REMOVED_AT
from slcvae.errors import InputError
from slcvae.pipeline.compare import load_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(
    p
    for pattern in ("configs/compare/*.toml", "src/slcvae/configs/*compare*.toml", "docs/results/**/*.toml")
    for p in ROOT.glob(pattern)
    if "[models]" in p.read_text(encoding="utf-8")
)


def test_specs_found():
    assert len(SPECS) >= 20, [str(p) for p in SPECS]


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_spec_loads(spec, tmp_path, monkeypatch):
    """A spec loads, or says in its first line which commit reproduces it and fails naming that commit."""
    monkeypatch.chdir(ROOT)  # specs name their config files relative to the repository root
    data = tmp_path / "pairs.tsv"
    data.write_text("a b\tc d\n", encoding="utf-8")
    overrides = {"train": str(data), "valid": str(data), "test": str(data)}
    if f"removed after commit {REMOVED_AT}" in spec.read_text(encoding="utf-8").splitlines()[0]:
        with pytest.raises(InputError, match=f"removed .* commit {REMOVED_AT}"):
            load_spec(spec, overrides=overrides)
        return
    assert load_spec(spec, overrides=overrides).entries
