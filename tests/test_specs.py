"""Every committed compare spec still loads: model names, --set keys and values, generate fields.

A spec that no longer loads cannot reproduce the table it made. The data paths are pointed at a
tiny corpus, since the corpora themselves are not in the repository.
"""

from pathlib import Path

import pytest

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
    monkeypatch.chdir(ROOT)  # specs name their config files relative to the repository root
    data = tmp_path / "pairs.tsv"
    data.write_text("a b\tc d\n", encoding="utf-8")
    loaded = load_spec(spec, overrides={"train": str(data), "valid": str(data), "test": str(data)})
    assert loaded.entries
