"""The demo's claim, as a test: on the synthetic corpus SLCVAE covers the modes, plain CVAE does not.

Trains cvae and slcvae with the demo's config (3,000 steps each, in parallel, ~2 minutes here).
"""

from __future__ import annotations

import json

from slcvae.pipeline.demo import run


def test_slcvae_covers_modes_where_cvae_collapses(tmp_path):
    results = run(tmp_path, max_minutes=6.0, workers=2, models=("cvae", "slcvae"))
    slcvae, cvae = results["slcvae"], results["cvae"]
    assert slcvae["steps"] == cvae["steps"] == 3000
    # The demo config sets no SLCVAE schedule, distance or base: the library defaults (mean_sq on CVAE + BOW, start
    # auto with plateau 0.1). Over seeds 1-3 they cover 0.905 +- 0.020 of the styles at this budget
    # (docs/results/schedule/demo3e.md); the demo's seed 1234 gave 0.865, and 0.896 since the labeling phase reuses the CVAE's
    # encodings. The bar, 0.85, is under every seed seen.
    assert slcvae["mode_precision"] >= 0.9 and slcvae["mode_coverage"] >= 0.85, slcvae
    assert slcvae["mode_coverage"] >= cvae["mode_coverage"] + 0.2, (slcvae, cvae)
    # z stays in use; the plain CVAE's KL is not asserted: with the fused output layer's rounding (models/softmax.py)
    # this seed's CVAE kept KL 2.8 (coverage 0.578) where it collapses with other code versions (KL ~0, coverage 0.38)
    assert slcvae["kl"] > 1.0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"]["slcvae"]["mode_coverage"] == slcvae["mode_coverage"]
    assert (tmp_path / "results.png").stat().st_size > 10_000 and "| slcvae |" in (tmp_path / "results.md").read_text()
