"""Convert the real corpora in `../shared/data` to the project's JSONL format.

- dailydialog: every utterance after the first is a target; its source is the previous
  `context_turns` utterances as a list of turns (for the hierarchical encoder). With `windows`
  = W, the SLCVAE paper's rows instead: sliding windows of at most W utterances, lowercased.
- webnlg: triples linearized as `subject | predicate | object ; ...` (underscores and camelCase
  split into words); all texts of an entry become its `targets`.
- advertisegen: `key#value*...` attributes -> `key value | ...`; only the dev split exists here,
  so it is split deterministically by source (80 / 10 / 10) into train / valid / test.

Everything is read and checked before anything is written, so a bad input leaves OUT_DIR as it was.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from slcvae.data.corpus import iter_json_objects, iter_lines
from slcvae.errors import InputError
from slcvae.io import write_text_atomic

CORPORA = ("dailydialog", "webnlg", "advertisegen")


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def dialogue_windows(turns: list[str], size: int) -> list[tuple[list[str], str]]:
    """The SLCVAE paper's rows: windows of at most `size` consecutive utterances, sliding by one;
    the last utterance of a window is the target, the ones before it the context. A dialogue of
    `size` or fewer utterances is one window."""
    if len(turns) <= size:
        return [(turns[:-1], turns[-1])]
    return [(turns[i : i + size - 1], turns[i + size - 1]) for i in range(len(turns) - size + 1)]


def dailydialog(src: Path, context_turns: int = 10, windows: int = 0) -> dict[str, list[dict]]:
    """Every turn after the first as a target (windows = 0), or the paper's sliding windows of
    `windows` utterances, lowercased (Zhang et al. 2019: 39,567 / 3,681 / 3,471 rows for 6)."""
    splits = {}
    for split, name in (("train", "train"), ("validation", "valid"), ("test", "test")):
        path = src / split / f"dialogues_{split}.txt"
        rows = []
        for number, text in iter_lines(path):
            turns = [" ".join(u.split()) for u in text.split("__eou__")]
            turns = [u for u in turns if u]
            if len(turns) < 2:
                raise InputError(path, number, f"a dialogue needs >= 2 utterances, found {len(turns)}")
            if windows:
                turns = [t.lower() for t in turns]
                rows.extend({"source": ctx, "target": tgt} for ctx, tgt in dialogue_windows(turns, windows))
                continue
            for i in range(1, len(turns)):
                rows.append({"source": turns[max(0, i - context_turns) : i], "target": turns[i]})
        splits[name] = rows
    return splits


def _words(text: str) -> str:
    text = text.strip().strip('"').replace("_", " ")
    return " ".join(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text).split())


def linearize_triples(triples: list[str]) -> str:
    """`Aarhus_Airport | cityServed | "Aarhus, Denmark"` -> `Aarhus Airport | city Served | Aarhus, Denmark`."""
    return " ; ".join(" | ".join(_words(part) for part in t.split("|")) for t in triples)


def webnlg(src: Path) -> dict[str, list[dict]]:
    splits = {}
    for split, name in (("train", "train"), ("dev", "valid"), ("test", "test")):
        path = src / f"{split}.jsonl"
        rows = []
        for number, obj in iter_json_objects(path):
            triples, texts = obj.get("triples"), obj.get("texts")
            if not isinstance(triples, list) or not triples or not all(isinstance(t, str) for t in triples):
                raise InputError(path, number, 'missing or empty "triples" (a list of "s | p | o" strings)')
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
                raise InputError(path, number, 'missing or empty "texts" (a list of strings)')
            rows.append({"source": linearize_triples(triples), "targets": list(dict.fromkeys(t.strip() for t in texts))})
        splits[name] = rows
    return splits


def advertisegen(src: Path) -> dict[str, list[dict]]:
    path = src / "dev.jsonl"
    splits: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for number, obj in iter_json_objects(path):
        content, summary = obj.get("content"), obj.get("summary")
        if not isinstance(content, str) or not content.strip():
            raise InputError(path, number, 'missing or empty "content"')
        if not isinstance(summary, str) or not summary.strip():
            raise InputError(path, number, 'missing or empty "summary"')
        source = " | ".join(pair.replace("#", " ") for pair in content.split("*"))
        bucket = int(hashlib.sha256(source.encode()).hexdigest(), 16) % 10  # same source, same split
        name = "test" if bucket == 0 else "valid" if bucket == 1 else "train"
        splits[name].append({"source": source, "target": summary.strip()})
    return splits


def prepare(corpus: str, src: Path, out: Path, context_turns: int = 10, windows: int = 0) -> dict[str, int]:
    """Read corpus `corpus` from `src`, write train/valid/test.jsonl under `out`; returns row counts."""
    if not Path(src).is_dir():
        raise InputError(src, None, "no such directory")
    if corpus == "dailydialog":
        if context_turns < 1:
            raise InputError("--context-turns", None, f"must be >= 1, got {context_turns}")
        if windows == 1 or windows < 0:
            raise InputError("--windows", None, f"must be 0 (every turn) or >= 2 utterances, got {windows}")
        splits = dailydialog(Path(src), context_turns, windows)
    elif corpus == "webnlg":
        splits = webnlg(Path(src))
    elif corpus == "advertisegen":
        splits = advertisegen(Path(src))
    else:
        raise InputError("CORPUS", None, f"unknown corpus {corpus!r} (choose from {', '.join(CORPORA)})")
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        write_text_atomic(out / f"{name}.jsonl", _jsonl(rows))
    return {name: len(rows) for name, rows in splits.items()}
