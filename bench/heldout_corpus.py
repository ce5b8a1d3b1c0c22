"""A second one-to-many corpus for checking SLCVAE's defaults on data they were not tuned on.

Railway announcements: (service, destination, platform, delay) -> 6 valid announcements, one per
style. It differs from the embedded synthetic corpus (`slcvae synth`) in every way we could
choose: its vocabulary, four slots instead of three, six valid targets per source instead of
four, more train sources with fewer draws each, and longer targets. Made only after the defaults
were fixed (issue 10); nothing was tuned on it.

    python bench/heldout_corpus.py --out data/trains
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path

SERVICES = ["express", "regional", "intercity", "night train", "sleeper", "shuttle"]
PLACES = ["oxford", "leeds", "bristol", "york", "cardiff", "glasgow", "dover", "bath", "exeter", "derby"]
PLATFORMS = ["one", "two", "three", "four", "five", "six", "seven"]
DELAYS = ["on time", "five minutes late", "ten minutes late", "delayed"]
STYLES = [
    "the {service} to {place} leaves from platform {platform} , {delay} .",
    "passengers for {place} : your {service} is {delay} at platform {platform} .",
    "platform {platform} now serves the {service} for {place} , running {delay} .",
    "attention please , the {place} {service} is {delay} and departs platform {platform} .",
    "heading to {place} ? board the {service} at platform {platform} ; it is {delay} .",
    "we announce the {service} calling at {place} from platform {platform} , {delay} , thank you .",
]


def source_text(service: str, place: str, platform: str, delay: str) -> str:
    return f"service = {service} ; to = {place} ; platform = {platform} ; status = {delay}"


def targets(service: str, place: str, platform: str, delay: str) -> list[str]:
    return [s.format(service=service, place=place, platform=platform, delay=delay) for s in STYLES]


def write(out: Path, seed: int = 0, n_valid: int = 40, n_test: int = 60, n_train: int = 700, draws: int = 5) -> dict[str, int]:
    rng = random.Random(seed)
    combos = list(itertools.product(SERVICES, PLACES, PLATFORMS, DELAYS))
    rng.shuffle(combos)
    test, valid = combos[:n_test], combos[n_test : n_test + n_valid]
    train = combos[n_test + n_valid : n_test + n_valid + n_train]
    lines = [f"{source_text(*c)}\t{rng.choice(targets(*c))}" for c in train for _ in range(draws)]
    rng.shuffle(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, split in (("valid", valid), ("test", test)):
        rows = (json.dumps({"source": source_text(*c), "targets": targets(*c)}) for c in split)
        (out / f"{name}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {"train_pairs": len(lines), "train_sources": len(train), "valid_sources": len(valid), "test_sources": len(test)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/trains"))
    parser.add_argument("--seed", type=int, default=0)
    print(json.dumps(write(parser.parse_args().out, parser.parse_args().seed)))
