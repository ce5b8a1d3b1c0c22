"""One-to-many corpora for checking SLCVAE's defaults on data they were not tuned on.

trains: railway announcements, (service, destination, platform, delay) -> 6 valid announcements,
    one per style. Differs from the embedded synthetic corpus (`slcvae synth`: 3 slots, 4 styles)
    in vocabulary, four slots, six targets per source, more train sources with fewer draws each,
    and longer targets. Made after the first defaults were fixed; then used in one probe
    (docs/results/schedule/bow-trains), so no longer untouched.
hotels: hotel listings, (name, city, stars, price, feature) -> 3 valid blurbs. Five slots, three
    targets per source, a third vocabulary, 2,400 train sources drawn twice each. Made after the
    first final defaults of issue 10 were fixed; they failed on it (labels started too early),
    which led to the start rule's fix, so it is no longer untouched either.

recipes: recipe blurbs, (dish, main ingredient, minutes) -> 5 valid blurbs. Three slots, only 168
    sources (118 for training, each drawn 25 times), short targets. Made after the hotels corpus
    broke the first final defaults and the start rule was fixed (plateau 0.1, watch_every 1);
    run once with those.
concerts: concert listings, (band, city, weekday, tickets) -> 8 valid blurbs. Four slots, eight targets per
    source (more than any other corpus here), a fourth vocabulary, 1,500 train sources drawn three times each. Made
    after the KL gate became the default (issue 10, round 12), and run once with it.

    python studies/heldout_corpus.py --corpus trains --out data/trains
    python studies/heldout_corpus.py --corpus hotels --out data/hotels
    python studies/heldout_corpus.py --corpus recipes --out data/recipes
    python studies/heldout_corpus.py --corpus concerts --out data/concerts
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Corpus:
    slots: dict[str, list[str]]  # slot name -> values; every combination is a source
    styles: list[str]  # one valid target per style, formatted with the slot values
    n_valid: int
    n_test: int
    n_train: int
    draws: int  # training pairs per train source, each with a style drawn at random

    def source(self, values: tuple[str, ...]) -> str:
        return " ; ".join(f"{k} = {v}" for k, v in zip(self.slots, values, strict=True))

    def targets(self, values: tuple[str, ...]) -> list[str]:
        return [s.format(**dict(zip(self.slots, values, strict=True))) for s in self.styles]


CORPORA = {
    "trains": Corpus(
        slots={
            "service": ["express", "regional", "intercity", "night train", "sleeper", "shuttle"],
            "to": ["oxford", "leeds", "bristol", "york", "cardiff", "glasgow", "dover", "bath", "exeter", "derby"],
            "platform": ["one", "two", "three", "four", "five", "six", "seven"],
            "status": ["on time", "five minutes late", "ten minutes late", "delayed"],
        },
        styles=[
            "the {service} to {to} leaves from platform {platform} , {status} .",
            "passengers for {to} : your {service} is {status} at platform {platform} .",
            "platform {platform} now serves the {service} for {to} , running {status} .",
            "attention please , the {to} {service} is {status} and departs platform {platform} .",
            "heading to {to} ? board the {service} at platform {platform} ; it is {status} .",
            "we announce the {service} calling at {to} from platform {platform} , {status} , thank you .",
        ],
        n_valid=40,
        n_test=60,
        n_train=700,
        draws=5,
    ),  # fmt: skip
    "hotels": Corpus(
        slots={
            "name": [
                "the grand",
                "harbour view",
                "maple lodge",
                "the old mill",
                "sunset inn",
                "riverside house",
                "the alder",
                "kings court",
            ],
            "city": ["lisbon", "porto", "seville", "valencia", "nice", "genoa", "naples", "split"],
            "stars": ["two", "three", "four", "five"],
            "price": ["budget", "mid-range", "luxury"],
            "feature": ["a rooftop pool", "free breakfast", "sea views", "a quiet garden", "a spa"],
        },
        styles=[
            "{name} in {city} is a {stars} star {price} stay with {feature} .",
            "stay at {name} : {stars} stars , {price} prices and {feature} , right in {city} .",
            "looking for a {price} hotel in {city} ? {name} offers {feature} and {stars} star comfort .",
        ],
        n_valid=50,
        n_test=80,
        n_train=2400,
        draws=2,
    ),  # fmt: skip
    "recipes": Corpus(
        slots={
            "dish": ["soup", "risotto", "curry", "omelette", "salad", "stew", "pie"],
            "main": ["mushrooms", "chicken", "lentils", "salmon", "pumpkin", "tofu"],
            "minutes": ["ten", "twenty", "forty", "sixty"],
        },
        styles=[
            "a {main} {dish} ready in {minutes} minutes .",
            "try this {dish} with {main} ; it takes {minutes} minutes .",
            "in {minutes} minutes you can cook a warm {dish} of {main} .",
            "{main} make this {dish} special , and it needs only {minutes} minutes .",
            "our {minutes} minute {dish} : simple , with plenty of {main} .",
        ],
        n_valid=20,
        n_test=30,
        n_train=118,
        draws=25,
    ),  # fmt: skip
    "concerts": Corpus(
        slots={
            "band": [
                "the lanterns",
                "blue harbour",
                "night owls",
                "iron meadow",
                "the paper kites",
                "velvet static",
                "cold fronts",
                "the wild hares",
                "silver lines",
                "echo valley",
            ],
            "city": ["berlin", "vienna", "prague", "krakow", "budapest", "zagreb", "munich", "ljubljana"],
            "day": ["monday", "wednesday", "friday", "saturday", "sunday"],
            "tickets": ["sold out", "still available", "half price", "free"],
        },
        styles=[
            "{band} play {city} on {day} ; tickets are {tickets} .",
            "catch {band} live in {city} this {day} , tickets {tickets} .",
            "on {day} {band} come to {city} and the tickets are {tickets} .",
            "{city} , get ready : {band} on {day} , with tickets {tickets} !",
            "tickets {tickets} for {band} , playing {city} on {day} .",
            "this {day} the stage in {city} belongs to {band} ( tickets {tickets} ) .",
            "do not miss {band} in {city} ; the {day} show is {tickets} .",
            "{band} tour stop : {city} , {day} . tickets : {tickets} .",
        ],
        n_valid=40,
        n_test=60,
        n_train=1500,
        draws=3,
    ),  # fmt: skip
}


def write(out: Path, corpus: str = "trains", seed: int = 0) -> dict[str, int]:
    c = CORPORA[corpus]
    rng = random.Random(seed)
    combos = list(itertools.product(*c.slots.values()))
    rng.shuffle(combos)
    test, valid = combos[: c.n_test], combos[c.n_test : c.n_test + c.n_valid]
    train = combos[c.n_test + c.n_valid : c.n_test + c.n_valid + c.n_train]
    lines = [f"{c.source(v)}\t{rng.choice(c.targets(v))}" for v in train for _ in range(c.draws)]
    rng.shuffle(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, split in (("valid", valid), ("test", test)):
        rows = (json.dumps({"source": c.source(v), "targets": c.targets(v)}) for v in split)
        (out / f"{name}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {"train_pairs": len(lines), "train_sources": len(train), "valid_sources": len(valid), "test_sources": len(test)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="trains")
    parser.add_argument("--out", type=Path, default=None, help="default: data/CORPUS")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(write(args.out or Path("data") / args.corpus, args.corpus, args.seed)))
