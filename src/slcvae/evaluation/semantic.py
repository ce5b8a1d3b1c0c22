"""Meaning-level metrics: relevance and diversity measured with a sentence encoder instead of shared n-grams.

Two samples can differ in every bigram and say the same thing, or share most words and mean different things;
BLEU and Distinct see only the words. With unit vectors from a sentence encoder (`slcvae.pretrained`), per source:

    semantic_precision   mean over samples of the best cosine to any reference        (as BLEU-P is to BLEU)
    semantic_recall      mean over references of the best cosine from any sample      (as BLEU-R)
    semantic_diversity   mean over pairs of samples of 1 - cosine (0: all the same meaning; 0 for one sample)
    meaning_distinct     how many samples remain when a sample within cosine >= threshold of an earlier kept one
                         counts as a repeat (greedy, in output order)

each averaged over sources. The threshold (0.9 by default) is reported with the numbers as `meaning_threshold`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

THRESHOLD = 0.9  # cosine at or above which two outputs count as one meaning


def source_scores(samples: torch.Tensor, references: torch.Tensor, threshold: float = THRESHOLD) -> dict[str, float]:
    """One source: samples [n, dim] and references [m, dim], unit vectors -> its four scores."""
    cos = samples @ references.T  # [n, m]
    n = samples.shape[0]
    pair = samples @ samples.T
    diversity = float((1 - pair).sum() / (n * (n - 1))) if n > 1 else 0.0  # the diagonal adds 1 - 1 = 0
    kept: list[int] = []
    for i in range(n):
        if all(float(pair[i, j]) < threshold for j in kept):
            kept.append(i)
    return {
        "semantic_precision": float(cos.max(1).values.mean()),
        "semantic_recall": float(cos.max(0).values.mean()),
        "semantic_diversity": diversity,
        "meaning_distinct": float(len(kept)),
    }


def semantic_scores(
    predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]], encode, threshold: float = THRESHOLD
) -> dict[str, float]:
    """The four scores averaged over sources; `encode(texts) -> [len, dim]` unit vectors (one call for all texts)."""
    groups = [*predictions, *references]
    vectors = encode([t for group in groups for t in group]).split([len(group) for group in groups])
    k = len(predictions)
    per_source = [source_scores(vectors[i], vectors[k + i], threshold) for i in range(k)]
    out = {key: sum(s[key] for s in per_source) / len(per_source) for key in per_source[0]}
    out["meaning_threshold"] = threshold
    return out
