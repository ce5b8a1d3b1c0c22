"""Multi-sample, multi-reference metrics.

Samples and references go through the same scoring tokenization, `score_tokens`: lowercase, then
every CJK character is a token, runs of other letters / digits / underscores are tokens, and runs
of other non-space characters (punctuation) are tokens - the model tokenizer's own split (its
Whitespace pre-tokenizer, CJK isolated), so a sample the model decodes as "abilene , texas ."
matches the raw reference "Abilene, Texas.". With b_n(h, r) = NLTK sentence BLEU
(weights 1/n for 1..n-grams, smoothing method 7; method 7 lets an exact match score above 1)
and b = b_3:

    bleu_precision      per source: mean over samples of the max over references of b
    bleu_recall         per source: mean over references of the max over samples of b
    bleu_f1             2PR / (P + R) of the source-averaged P and R
    bleuN_precision/recall  the same with b_N, N = 1..4 (Zhao et al. 2017 report 1-4)
    paper_bleu_precision/recall  the same with d = (b_1 + b_2 + b_3) / 3, the SLCVAE paper's BLEU (Zhang et al. 2019)
    sacrebleu           sacreBLEU corpus BLEU (0-100; lowercase, its 13a tokenizer, or its zh tokenizer
                        when the references hold CJK) of each source's first sample against all its
                        references: the number MT-style papers print
    distinct_n          distinct n-grams over all samples of all sources / total generated tokens (Li et al. 2016)
    intra_distinct_n    per sample: distinct n-grams / n-grams, averaged (Gu et al. 2019, DialogWAE)
    inter_distinct_n    per source: distinct n-grams / n-grams across its N samples, averaged
    self_bleu           per sample: b against the source's other samples as references, averaged;
                        high = the samples repeat each other (Zhu et al. 2018)
    unique_per_source   distinct sample strings per source, averaged
    generic_share       share of all samples of all sources taken by the 10 most frequent outputs (as scoring
                        tokens): near 1 when the same few replies serve every source; DailyDialog's human
                        replies score 0.023
    avg_length          tokens per sample
    mode_precision      share of samples equal to some valid target        (references list all targets)
    mode_coverage       share of valid targets produced by at least one sample
    mode_coverage_at(k) mode coverage that k of the N samples would have in expectation, estimated without
                        bias from all N (per target 1 - C(N - c, k) / C(N, k), c = samples on it; the
                        pass@k estimator of Chen et al. 2021): with N >> k it separates a model's coverage
                        from the noise of drawing k samples once
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Sequence
from math import comb
from pathlib import Path

import sacrebleu
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from slcvae.data.corpus import iter_json_objects
from slcvae.data.tokenizer import CJK
from slcvae.errors import InputError

_SMOOTH = SmoothingFunction().method7
_WEIGHTS = (1 / 3, 1 / 3, 1 / 3)
# the model tokenizer's split (data/tokenizer.py): a CJK character, a run of other word characters, a punctuation run
_TOKENS = re.compile(f"[{CJK}]|(?:(?![{CJK}])\\w)+|[^\\w\\s]+")
_CJK_CHAR = re.compile(f"[{CJK}]")


def score_tokens(text: str) -> list[str]:
    """The scoring tokenization of samples and references alike: lowercase; CJK characters, word runs and
    punctuation runs apart. "Abilene, Texas." -> [abilene, ",", texas, "."]; "我爱T恤" -> [我, 爱, t, 恤]."""
    return _TOKENS.findall(text.lower())


_ORDERS = (1, 2, 3, 4)


def bleu(
    hypothesis: Sequence[str], reference: Sequence[str] | Sequence[Sequence[str]], multi: bool = False, order: int = 3
) -> float:
    """b_order(h, r): NLTK sentence BLEU with weights 1/order and smoothing method 7 (0 for an empty hypothesis).

    multi=True takes a list of references (NLTK's multi-reference BLEU), as self-BLEU needs.
    """
    if not hypothesis:
        return 0.0
    refs = [list(r) for r in reference] if multi else [list(reference)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns on zero n-gram overlaps; the score is still defined
        # one order per call: NLTK's method 7 given several weight tuples at once smooths them differently
        weights = _WEIGHTS if order == 3 else tuple([1 / order] * order)
        return float(sentence_bleu(refs, list(hypothesis), weights=weights, smoothing_function=_SMOOTH))


def bleu_orders(hypothesis: Sequence[str], reference: Sequence[str]) -> list[float]:
    """[b_1, b_2, b_3, b_4](h, r)."""
    return [bleu(hypothesis, reference, order=n) for n in _ORDERS]


def bleu_precision_recall_orders(samples: Sequence[str], references: Sequence[str]) -> list[tuple[float, float]]:
    """Per-source (precision, recall) for b_1 .. b_4, then for the SLCVAE paper's d = (b_1 + b_2 + b_3) / 3."""
    hyps = [score_tokens(s) for s in samples]
    refs = [score_tokens(r) for r in references]
    table = [[[*b, sum(b[:3]) / 3] for b in (bleu_orders(h, r) for r in refs)] for h in hyps]  # [sample][reference][b]
    out = []
    for k in range(len(_ORDERS) + 1):
        precision = sum(max(cell[k] for cell in row) for row in table) / len(hyps)
        recall = sum(max(table[i][j][k] for i in range(len(hyps))) for j in range(len(refs))) / len(refs)
        out.append((precision, recall))
    return out


def bleu_precision_recall(samples: Sequence[str], references: Sequence[str]) -> tuple[float, float]:
    """Per-source BLEU precision and recall (b = b_3) over score_tokens."""
    return bleu_precision_recall_orders(samples, references)[2]


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def intra_inter_distinct(all_samples: Sequence[Sequence[str]], n: int) -> tuple[float, float]:
    """(intra, inter) distinct-n: per sample, and across each source's samples; ratios of n-grams.

    Samples shorter than n have no n-grams and are left out of the intra mean (DialogWAE's convention
    counts them as 0, which would reward padding the output).
    """
    intra, inter = [], []
    for samples in all_samples:
        grams = [_ngrams(score_tokens(text), n) for text in samples]
        intra.extend(len(set(g)) / len(g) for g in grams if g)
        pooled = [x for g in grams for x in g]
        if pooled:
            inter.append(len(set(pooled)) / len(pooled))
    return (sum(intra) / len(intra) if intra else 0.0), (sum(inter) / len(inter) if inter else 0.0)


def self_bleu(samples: Sequence[str]) -> float:
    """Mean over samples of b(sample, the other samples): 1.15 when all samples are one >= 5-token text."""
    if len(samples) < 2:
        raise ValueError("self-BLEU needs at least 2 samples per source")
    hyps = [score_tokens(s) for s in samples]
    return sum(bleu(h, hyps[:i] + hyps[i + 1 :], multi=True) for i, h in enumerate(hyps)) / len(hyps)


def corpus_sacrebleu(first_samples: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacreBLEU corpus score (0-100) of one hypothesis per source against all its references."""
    width = max(len(r) for r in references)
    # sacreBLEU takes reference streams; a source with fewer references fills its slots with None
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    tokenize = "zh" if any(_CJK_CHAR.search(r) for refs in references for r in refs) else "13a"
    # force: pre-tokenized corpora (DailyDialog) would make sacreBLEU warn on every call; the score is unchanged
    bleu_ = sacrebleu.corpus_bleu(list(first_samples), streams, force=True, lowercase=True, tokenize=tokenize)
    return float(bleu_.score)


def distinct(all_samples: Sequence[Sequence[str]], n: int) -> float:
    """Distinct-n: distinct n-grams across every sample of every source / total generated tokens."""
    grams, total = set(), 0
    for samples in all_samples:
        for text in samples:
            tokens = score_tokens(text)
            total += len(tokens)
            grams.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return len(grams) / total if total else 0.0


def generic_share(all_samples: Sequence[Sequence[str]], top: int = 10) -> float:
    """Share of all samples that are one of the `top` most frequent outputs (compared as scoring tokens)."""
    counts = Counter(mode_key(text) for samples in all_samples for text in samples)
    total = sum(counts.values())
    return sum(c for _, c in counts.most_common(top)) / total if total else 0.0


def mode_key(text: str) -> tuple[str, ...]:
    """A text as mode precision and coverage compare it: its scoring tokens."""
    return tuple(score_tokens(text))


def mode_precision_coverage(samples: Sequence[str], references: Sequence[str]) -> tuple[float, float]:
    """Share of samples that are a valid target; share of valid targets hit by some sample."""
    valid = {mode_key(r) for r in references}
    produced = {mode_key(s) for s in samples}
    precision = sum(mode_key(s) in valid for s in samples) / len(samples)
    return precision, len(valid & produced) / len(valid)


def mode_coverage_at(samples: Sequence[str], references: Sequence[str], k: int) -> float:
    """Expected share of valid targets hit by k samples drawn without replacement from `samples` (N >= k):
    the mean over targets of 1 - C(N - c, k) / C(N, k), c = the samples equal to the target. Unbiased for
    the coverage of k independent draws from the model when the N samples are independent draws."""
    n = len(samples)
    if not 1 <= k <= n:
        raise ValueError(f"coverage at k = {k} needs 1 <= k <= the number of samples ({n})")
    keys = [mode_key(s) for s in samples]
    valid = {mode_key(r) for r in references}
    return sum(1 - comb(n - keys.count(v), k) / comb(n, k) for v in valid) / len(valid)


def evaluate_texts(
    predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]], modes: bool = False
) -> dict[str, float]:
    """All metrics for paired lists: predictions[i] (N samples) against references[i] (>= 1 text)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("nothing to evaluate")
    per_source = [bleu_precision_recall_orders(p, r) for p, r in zip(predictions, references, strict=True)]
    orders = {}
    for k, n in enumerate([*_ORDERS, "paper_"]):
        orders[n] = (
            sum(s[k][0] for s in per_source) / len(per_source),
            sum(s[k][1] for s in per_source) / len(per_source),
        )
    p, r = orders[3]
    out = {
        "bleu_precision": p,
        "bleu_recall": r,
        "bleu_f1": 2 * p * r / (p + r) if p + r else 0.0,
        "distinct_1": distinct(predictions, 1),
        "distinct_2": distinct(predictions, 2),
        "sources": len(predictions),
        "samples_per_source": sum(map(len, predictions)) / len(predictions),
    }
    for n, (bp, br) in orders.items():
        name = "paper_bleu" if n == "paper_" else f"bleu{n}"
        out[f"{name}_precision"], out[f"{name}_recall"] = bp, br
    out["sacrebleu"] = corpus_sacrebleu([s[0] for s in predictions], references)
    for n in (1, 2):
        out[f"intra_distinct_{n}"], out[f"inter_distinct_{n}"] = intra_inter_distinct(predictions, n)
    if all(len(s) >= 2 for s in predictions):
        out["self_bleu"] = sum(self_bleu(s) for s in predictions) / len(predictions)
    out["unique_per_source"] = sum(len(set(s)) for s in predictions) / len(predictions)
    out["generic_share"] = generic_share(predictions)
    out["avg_length"] = sum(len(score_tokens(t)) for s in predictions for t in s) / sum(map(len, predictions))
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
