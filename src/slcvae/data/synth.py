"""The embedded default corpus: item attributes -> K clearly different valid descriptions.

Every source (item, color, material) has `len(STYLES)` valid targets, one per style, each
mentioning all three attributes, so a model must both copy the content and choose a style.
Train pairs draw a random style per occurrence (one-to-many); validation and test sources are
attribute combinations never seen in training, written with all their valid targets listed.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from slcvae.io import write_text_atomic

ITEMS = ["shirt", "jacket", "dress", "scarf", "skirt", "coat", "sweater", "hat"]
COLORS = ["red", "blue", "green", "black", "white", "yellow", "grey", "pink"]
MATERIALS = ["cotton", "wool", "linen", "silk", "denim", "leather"]
STYLES = [
    "a {color} {item} made of {material} .",
    "this {material} {item} comes in {color} !",
    "looking for a {item} ? try our {color} one in soft {material} .",
    "{color} , {material} and built to last : the {item} you need .",
]


def source_text(item: str, color: str, material: str) -> str:
    return f"item : {item} | color : {color} | material : {material}"


def targets(item: str, color: str, material: str) -> list[str]:
    return [s.format(item=item, color=color, material=material) for s in STYLES]


def synth(out: Path, seed: int = 0, n_valid: int = 32, n_test: int = 48, draws: int = 8) -> dict[str, int]:
    """Write train.tsv, valid.jsonl and test.jsonl under `out`; returns the counts written.

    `draws` train pairs per train source, each with a uniformly drawn style.
    """
    rng = random.Random(seed)
    combos = list(itertools.product(ITEMS, COLORS, MATERIALS))
    rng.shuffle(combos)
    test, valid, train = combos[:n_test], combos[n_test : n_test + n_valid], combos[n_test + n_valid :]
    train_lines = [f"{source_text(*c)}\t{rng.choice(targets(*c))}" for c in train for _ in range(draws)]
    rng.shuffle(train_lines)

    def listed(split: list[tuple[str, str, str]]) -> str:
        rows = ({"source": source_text(*c), "targets": targets(*c)} for c in split)
        return "".join(json.dumps(r) + "\n" for r in rows)

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "train.tsv", "\n".join(train_lines) + "\n")
    write_text_atomic(out / "valid.jsonl", listed(valid))
    write_text_atomic(out / "test.jsonl", listed(test))
    return {"train_pairs": len(train_lines), "train_sources": len(train), "valid_sources": len(valid), "test_sources": len(test)}
