"""Readers for `source -> target` corpora in TSV or JSONL, validated line by line.

Formats (UTF-8; a BOM and CRLF line ends are accepted; blank lines are skipped):
- `.tsv`:   `source<TAB>target`; a repeated source means several valid targets; a first line that reads
            `source<TAB>target` (or `source` alone, in an input to `generate`) is a header and skipped. A source
            may hold several context turns separated by ` __eou__ ` (DailyDialog's marker).
- `.jsonl`: `{"source": str | [str, ...], "target": str}` or `{"source": ..., "targets": [str]}`;
            a list source is a sequence of turns for the hierarchical encoder.

Every problem raises `InputError(path, line, message)`; nothing is silently dropped.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from slcvae.errors import InputError

TURN_SEP = "__eou__"  # DailyDialog's end-of-utterance marker, accepted inside TSV sources


@dataclass
class Example:
    """One source with every target the corpus gives for it."""

    source: tuple[str, ...]  # the turns of the source, oldest first; a plain source is one turn
    targets: list[str] = field(default_factory=list)
    line: int = 0  # line of the first occurrence, for error messages
    complete: bool = False  # the corpus listed every valid target ("targets" in JSONL)

    @property
    def source_text(self) -> str | list[str]:
        """The source as a user wrote it: a string for one turn, a list for several."""
        return self.source[0] if len(self.source) == 1 else list(self.source)


MAX_LINE_BYTES = 1 << 20  # 1 MiB: far above any sentence or dialogue, small enough that one bad line cannot exhaust memory


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for the non-blank lines, streamed, decoding strictly as UTF-8.

    Lines end at \n only (str.splitlines would also break on U+2028 and friends inside a text);
    a line over MAX_LINE_BYTES is an error naming it, found without reading the rest of it.
    """
    if not path.is_file():
        raise InputError(path, 1, "no such file")
    blank = True
    with open(path, "rb") as f:
        number = 0
        while raw := f.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(path, number, f"line longer than {MAX_LINE_BYTES} bytes (is this a text corpus?)")
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            raw = raw.removesuffix(b"\n").removesuffix(b"\r")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(path, number, f"not valid UTF-8 (byte {err.start}: {raw[err.start : err.start + 1]!r})") from None
            if text.strip():
                blank = False
                yield number, text
    if blank:
        raise InputError(path, 1, "file is empty")


def _clean(text: object, path: Path, number: int, what: str) -> str:
    if not isinstance(text, str):
        raise InputError(path, number, f"{what} must be a string, got {type(text).__name__}")
    text = " ".join(text.split())
    if not text:
        raise InputError(path, number, f"empty {what}")
    return text


def _source(value: object, path: Path, number: int) -> tuple[str, ...]:
    if isinstance(value, list):
        if not value:
            raise InputError(path, number, "empty source (an empty list of turns)")
        return tuple(_clean(turn, path, number, "source turn") for turn in value)
    text = _clean(value, path, number, "source")
    turns = [" ".join(t.split()) for t in text.split(TURN_SEP)] if TURN_SEP in text else [text]
    if not all(turns):
        raise InputError(path, number, f"empty turn in source around {TURN_SEP!r}")
    return tuple(turns)


HEADER = ("source", "target")  # a TSV's first line naming its columns is a header, not a pair to train on


def _tsv_pairs(path: Path, require_target: bool) -> Iterator[tuple[tuple[str, ...], list[str], int, bool]]:
    rows = 0
    for number, text in iter_lines(path):
        if number == 1 and tuple(f.strip().lower() for f in text.split("\t")) in (HEADER, HEADER[:1]):
            continue
        rows += 1
        tabs = text.count("\t")
        if tabs == 0 and not require_target:
            yield _source(text, path, number), [], number, False
            continue
        if tabs != 1:
            found = "no tab" if tabs == 0 else f"{tabs} tabs"
            raise InputError(path, number, f"expected `source<TAB>target`, found {found}")
        source, target = text.split("\t")
        yield _source(source, path, number), [_clean(target, path, number, "target")], number, False
    if not rows:
        raise InputError(path, 1, "only a header row, no data")


def iter_json_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for a JSONL file whose every non-blank line is a JSON object."""
    for number, text in iter_lines(path):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(path, number, f"invalid JSON: {err.msg} (column {err.colno})") from None
        except RecursionError:
            raise InputError(path, number, "invalid JSON: nested too deeply") from None
        if not isinstance(obj, dict):
            raise InputError(path, number, f"expected a JSON object, got {type(obj).__name__}")
        yield number, obj


def _jsonl_pairs(path: Path, require_target: bool) -> Iterator[tuple[tuple[str, ...], list[str], int, bool]]:
    for number, obj in iter_json_objects(path):
        if "source" not in obj:
            raise InputError(path, number, 'missing field "source"')
        if "target" in obj:
            targets = [_clean(obj["target"], path, number, "target")]
        elif "targets" in obj:
            if not isinstance(obj["targets"], list) or not obj["targets"]:
                raise InputError(path, number, '"targets" must be a non-empty list of strings')
            targets = [_clean(t, path, number, "target") for t in obj["targets"]]
        elif not require_target:
            targets = []
        else:
            raise InputError(path, number, 'missing field "target" (or "targets")')
        yield _source(obj["source"], path, number), targets, number, "targets" in obj


def _pairs(path: str | Path, require_target: bool = True) -> Iterator[tuple[tuple[str, ...], list[str], int, bool]]:
    path = Path(path)
    if path.suffix == ".tsv":
        return _tsv_pairs(path, require_target)
    if path.suffix == ".jsonl":
        return _jsonl_pairs(path, require_target)
    raise InputError(path, 1, f"unknown corpus format {path.suffix!r}: use .tsv or .jsonl")


def read_corpus(path: str | Path, require_target: bool = True) -> list[Example]:
    """Read a corpus grouped by source, in order of first appearance.

    With `require_target=False` (inputs to `generate`) a source may come alone: a TSV line
    without a tab, or a JSONL object without "target"/"targets".

    A source given on several lines (TSV) or with `targets` (JSONL) becomes one Example with
    all its targets, deduplicated; `generate` writes one output line per Example and
    `evaluate` pairs predictions with references in this same order.
    """
    groups: dict[tuple[str, ...], Example] = {}
    for source, targets, number, complete in _pairs(path, require_target):
        example = groups.setdefault(source, Example(source, [], number, complete))
        example.targets.extend(t for t in targets if t not in example.targets)
    return list(groups.values())


def read_pairs(path: str | Path) -> list[Example]:
    """Read a corpus as training pairs: one single-target Example per (source, target) line item."""
    return [Example(s, [t], n) for s, targets, n, _ in _pairs(path) for t in targets]


VALID_SHARE, VALID_MAX, SPLIT_SEED = 0.05, 2000, 0  # a held-out split when no validation file is given


def split_valid(pairs: list[Example]) -> tuple[list[Example], list[Example], str]:
    """Hold out 5% of the training sources (at most 2,000, at least 1) for validation: (train, valid, what was done).

    By source, so a source's targets never sit on both sides; with a fixed seed (0), not the run's, so every run
    on one corpus validates on the same split and a resumed run on the one it started with."""
    sources = list(dict.fromkeys(ex.source for ex in pairs))
    if len(sources) < 2:
        raise InputError("--valid", None, f"the training data has {len(sources)} source(s): give a --valid file")
    count = min(VALID_MAX, max(1, round(VALID_SHARE * len(sources))))
    held = set(random.Random(SPLIT_SEED).sample(sources, count))
    train = [ex for ex in pairs if ex.source not in held]
    valid = [ex for ex in pairs if ex.source in held]
    said = f"no --valid given: held out {count} of {len(sources)} training sources ({len(valid)} pairs; 5%, seed 0)"
    return train, valid, said
