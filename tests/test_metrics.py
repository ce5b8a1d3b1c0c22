from __future__ import annotations

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from slcvae.evaluation.metrics import bleu, bleu_precision_recall, distinct, evaluate_texts, mode_precision_coverage


def nltk_bleu(h: str, r: str) -> float:
    return sentence_bleu([r.split()], h.split(), weights=(1 / 3, 1 / 3, 1 / 3), smoothing_function=SmoothingFunction().method7)


def test_bleu_is_nltk_method7_bleu3():
    h, r = "the cat sat on the mat", "the cat is on the mat"
    assert bleu(h.split(), r.split()) == pytest.approx(nltk_bleu(h, r))
    assert bleu([], ["a"]) == 0.0
    # NLTK's method 7 exceeds 1 on an exact match (method 5 averages neighbouring n-gram orders)
    assert bleu(["a", "b", "c", "d"], ["a", "b", "c", "d"]) == pytest.approx(nltk_bleu("a b c d", "a b c d"))


def test_precision_recall_by_hand():
    samples, refs = ["a b c d", "x y z w"], ["a b c d", "e f g h"]
    b = {(s, r): nltk_bleu(s, r) for s in samples for r in refs}
    p, r = bleu_precision_recall(samples, refs)
    assert p == pytest.approx(
        (max(b["a b c d", "a b c d"], b["a b c d", "e f g h"]) + max(b["x y z w", "a b c d"], b["x y z w", "e f g h"])) / 2
    )
    assert r == pytest.approx(
        (max(b["a b c d", "a b c d"], b["x y z w", "a b c d"]) + max(b["a b c d", "e f g h"], b["x y z w", "e f g h"])) / 2
    )
    # lowercasing: case does not matter
    assert bleu_precision_recall(["A B C D"], ["a b c d"]) == bleu_precision_recall(["a b c d"], ["a b c d"])


def test_distinct_counts_over_all_sources():
    preds = [["a b a", "a b"], ["c"]]  # tokens: 3 + 2 + 1 = 6
    assert distinct(preds, 1) == pytest.approx(3 / 6)  # a b c
    assert distinct(preds, 2) == pytest.approx(2 / 6)  # (a b) (b a)
    assert distinct([[""]], 1) == 0.0


def test_mode_metrics_split_punctuation_and_case():
    p, c = mode_precision_coverage(["A red hat.", "a red hat .", "nope"], ["a red hat .", "this hat !"])
    assert p == pytest.approx(2 / 3) and c == pytest.approx(1 / 2)


def test_evaluate_texts_keys_and_f1():
    m = evaluate_texts([["a b c", "a b d"]], [["a b c"]], modes=True)
    assert m["bleu_f1"] == pytest.approx(2 * m["bleu_precision"] * m["bleu_recall"] / (m["bleu_precision"] + m["bleu_recall"]))
    assert m["mode_precision"] == 0.5 and m["mode_coverage"] == 1.0
    assert m["distinct_1"] == pytest.approx(4 / 6) and m["distinct_2"] == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="1 predictions but 2 references"):
        evaluate_texts([["a"]], [["a"], ["b"]])
