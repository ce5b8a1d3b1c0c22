"""Multi-sample, multi-reference metrics.

Texts are compared as lowercase whitespace tokens. With b(h, r) = NLTK sentence BLEU
(weights 1/3 each for 1-3 grams, smoothing method 7):

    bleu_precision  per source: mean over samples of the max over references of b
    bleu_recall     per source: mean over references of the max over samples of b
    bleu_f1         2PR / (P + R) of the source-averaged P and R
    distinct_n      distinct n-grams over all samples of all sources / total generated tokens
    mode_precision  share of samples equal to some valid target        (references list all targets)
    mode_coverage   share of valid targets produced by at least one sample
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from slcvae.data.corpus import iter_json_objects
from slcvae.errors import InputError

_SMOOTH = SmoothingFunction().method7
_WEIGHTS = (1 / 3, 1 / 3, 1 / 3)
_WORDS = re.compile(r"\w+|[^\w\s]")


def bleu(hypothesis: Sequence[str], reference: Sequence[str]) -> float:
    """b(h, r): NLTK sentence BLEU-3 with smoothing method 7 (0 for an empty hypothesis)."""
    if not hypothesis:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns on zero n-gram overlaps; the score is still defined
        return float(sentence_bleu([list(reference)], list(hypothesis), weights=_WEIGHTS, smoothing_function=_SMOOTH))


def bleu_precision_recall(samples: Sequence[str], references: Sequence[str]) -> tuple[float, float]:
    """Per-source BLEU precision and recall, texts split as lowercase whitespace tokens."""
    hyps = [s.lower().split() for s in samples]
    refs = [r.lower().split() for r in references]
    table = [[bleu(h, r) for r in refs] for h in hyps]  # [sample][reference]
    precision = sum(max(row) for row in table) / len(hyps)
    recall = sum(max(table[i][j] for i in range(len(hyps))) for j in range(len(refs))) / len(refs)
    return precision, recall


def distinct(all_samples: Sequence[Sequence[str]], n: int) -> float:
    """Distinct-n: distinct n-grams across every sample of every source / total generated tokens."""
    grams, total = set(), 0
    for samples in all_samples:
        for text in samples:
            tokens = text.lower().split()
            total += len(tokens)
            grams.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return len(grams) / total if total else 0.0


def _mode_key(text: str) -> tuple[str, ...]:
    return tuple(_WORDS.findall(text.lower()))


def mode_precision_coverage(samples: Sequence[str], references: Sequence[str]) -> tuple[float, float]:
    """Share of samples that are a valid target; share of valid targets hit by some sample."""
    valid = {_mode_key(r) for r in references}
    produced = {_mode_key(s) for s in samples}
    precision = sum(_mode_key(s) in valid for s in samples) / len(samples)
    return precision, len(valid & produced) / len(valid)


def evaluate_texts(
    predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]], modes: bool = False
) -> dict[str, float]:
    """All metrics for paired lists: predictions[i] (N samples) against references[i] (>= 1 text)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("nothing to evaluate")
    pr = [bleu_precision_recall(p, r) for p, r in zip(predictions, references, strict=True)]
    p = sum(x for x, _ in pr) / len(pr)
    r = sum(y for _, y in pr) / len(pr)
    out = {
        "bleu_precision": p,
        "bleu_recall": r,
        "bleu_f1": 2 * p * r / (p + r) if p + r else 0.0,
        "distinct_1": distinct(predictions, 1),
        "distinct_2": distinct(predictions, 2),
        "sources": len(predictions),
        "samples_per_source": sum(map(len, predictions)) / len(predictions),
    }
    if modes:
        mpc = [mode_precision_coverage(p, r) for p, r in zip(predictions, references, strict=True)]
        out["mode_precision"] = sum(x for x, _ in mpc) / len(mpc)
        out["mode_coverage"] = sum(y for _, y in mpc) / len(mpc)
    return out


def read_predictions(path: str | Path) -> list[tuple[object, list[str]]]:
    """Read `generate` output: one `{"source", "samples": [str, ...]}` per line -> [(source, samples)]."""
    path = Path(path)
    rows = []
    for number, obj in iter_json_objects(path):
        samples = obj.get("samples")
        if not isinstance(samples, list) or not samples or not all(isinstance(s, str) for s in samples):
            raise InputError(path, number, 'expected {"source": ..., "samples": [non-empty list of strings]}')
        rows.append((obj.get("source"), samples))
    return rows
