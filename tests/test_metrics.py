from __future__ import annotations

import itertools
import math

import pytest
import sacrebleu
import torch
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from slcvae.evaluation.metrics import (
    bleu,
    bleu_precision_recall,
    corpus_sacrebleu,
    distinct,
    evaluate_texts,
    intra_inter_distinct,
    mode_coverage_at,
    mode_precision_coverage,
    score_tokens,
    self_bleu,
)
from slcvae.models.latent import active_units, mutual_information


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


def nltk_bleu_n(h: str, refs: list[str], n: int) -> float:
    return sentence_bleu(
        [r.split() for r in refs], h.split(), weights=(1 / n,) * n, smoothing_function=SmoothingFunction().method7
    )


def test_bleu_orders_and_self_bleu_by_hand():
    h, r = "the cat sat on the mat", "the cat is on the mat"
    for n in (1, 2, 3, 4):
        assert bleu(h.split(), r.split(), order=n) == pytest.approx(nltk_bleu_n(h, [r], n))
    m = evaluate_texts([[h, "a dog"]], [[r]])
    assert m["bleu1_precision"] == pytest.approx((nltk_bleu_n(h, [r], 1) + nltk_bleu_n("a dog", [r], 1)) / 2)
    assert m["bleu4_recall"] == pytest.approx(max(nltk_bleu_n(h, [r], 4), nltk_bleu_n("a dog", [r], 4)))
    assert m["bleu3_precision"] == m["bleu_precision"]
    # self-BLEU: each sample against the others (multi-reference)
    samples = ["a b c d e", "a b c d f", "x y z"]
    expected = (nltk_bleu_n(samples[0], samples[1:], 3) + nltk_bleu_n(samples[1], [samples[0], samples[2]], 3) + 0.0) / 3
    assert self_bleu(samples) == pytest.approx(expected)
    assert self_bleu(["p q", "r s"]) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        self_bleu(["a"])


def test_paper_bleu_is_the_max_of_the_mean_of_bleu_1_to_3():
    """Zhang et al. 2019: d(r, h) = (BLEU-1 + BLEU-2 + BLEU-3) / 3; precision and recall as for b_3."""
    h1, h2, r1, r2 = "the cat sat on the mat", "a dog", "the cat is on the mat", "a dog ran"

    def d(h, r):
        return sum(nltk_bleu_n(h, [r], n) for n in (1, 2, 3)) / 3

    m = evaluate_texts([[h1, h2]], [[r1, r2]])
    assert m["paper_bleu_precision"] == pytest.approx((max(d(h1, r1), d(h1, r2)) + max(d(h2, r1), d(h2, r2))) / 2)
    assert m["paper_bleu_recall"] == pytest.approx((max(d(h1, r1), d(h2, r1)) + max(d(h1, r2), d(h2, r2))) / 2)
    # an exact 6-token match: (4/3 + 1.2 + 1.154...) / 3, method 7 lets each order exceed 1
    exact = evaluate_texts([[r1]], [[r1]])["paper_bleu_precision"]
    assert exact == pytest.approx(d(r1, r1)) and exact > 1


def test_intra_inter_distinct_unique_and_length_by_hand():
    preds = [["a a b", "a b"], ["c"]]
    # n=1: intra 2/3, 1, 1 -> 8/9; inter: source 1 {a, b} over 5 unigrams = 2/5, source 2 1/1 -> 0.7
    assert intra_inter_distinct(preds, 1) == pytest.approx((8 / 9, 0.7))
    # n=2: "c" has no bigram and is left out; intra 1, 1; inter: (a a) (a b) (a b) -> 2/3
    assert intra_inter_distinct(preds, 2) == pytest.approx((1.0, 2 / 3))
    m = evaluate_texts([["a a b", "a b"], ["c", "c"]], [["a"], ["c"]])
    assert m["unique_per_source"] == 1.5 and m["avg_length"] == pytest.approx(7 / 4)


def test_sacrebleu_uses_every_reference_of_a_source():
    hyps = ["the cat sat on the mat today", "a dog ran in the park"]
    refs = [["the cat sat on the mat today"], ["one dog ran to a park", "a dog ran in the park"]]
    # sacreBLEU ignores None slots; repeating a reference instead changes neither max counts nor lengths
    same = sacrebleu.corpus_bleu(hyps, [[refs[0][0], refs[1][0]], [refs[0][0], refs[1][1]]]).score
    assert corpus_sacrebleu(hyps, refs) == pytest.approx(same) == pytest.approx(100.0)
    assert evaluate_texts([[hyps[0], "x"], [hyps[1], "y"]], refs)["sacrebleu"] == pytest.approx(100.0)


def test_samples_and_references_share_one_scoring_tokenization():
    # issue 9's defect: a raw reference against the model's lowercased, punctuation-split sample
    ref = "Abilene Regional Airport serves the city of Abilene, Texas."
    sample = "abilene regional airport serves the city of abilene , texas ."
    assert score_tokens(ref) == score_tokens(sample) == sample.split()
    m = evaluate_texts([[sample, sample]], [[ref]])
    assert m["bleu_precision"] == pytest.approx(bleu(sample.split(), sample.split()))  # the maximum, as for an exact match
    assert m["bleu_precision"] == pytest.approx(1.1538876, abs=1e-6) and m["sacrebleu"] == pytest.approx(100.0)
    assert m["avg_length"] == 11 and m["distinct_1"] == pytest.approx(10 / 22)  # "abilene" twice in each sample
    # CJK characters are tokens on both sides, whether or not the text has spaces
    assert score_tokens("我爱T恤 100 cm") == ["我", "爱", "t", "恤", "100", "cm"]
    zh = evaluate_texts([["我爱北京天安门", "我 爱 北京"]], [["我爱北京天安门"]])
    assert zh["distinct_1"] == pytest.approx(7 / 11) and zh["sacrebleu"] == pytest.approx(100.0)
    assert zh["bleu_recall"] == pytest.approx(1.1538876, abs=1e-6)  # was 0: the whole sentence was one token
    assert score_tokens("don't ... ?!") == ["don", "'", "t", "...", "?!"]  # punctuation runs stay whole, as the tokenizer's


def test_mutual_information_and_active_units_limits():
    g = torch.Generator().manual_seed(0)
    same_mu, logvar = torch.zeros(6, 3), torch.zeros(6, 3)
    assert mutual_information(same_mu, logvar, g) == pytest.approx(0.0, abs=1e-6)  # z tells nothing about the item
    apart = torch.arange(6.0).unsqueeze(1).repeat(1, 3) * 100.0
    assert mutual_information(apart, logvar, g) == pytest.approx(math.log(6), abs=1e-5)  # z names the item
    mu = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.05], [0.0, 1.0, -0.05]])
    assert active_units(mu) == 1  # variance 1.33 on dim 2; 0.0025 on dim 3 is under the 0.01 threshold


def test_coverage_at_k_exact_and_equal_to_the_mean_over_every_k_subset():
    samples, refs = ["a", "a", "b", "c", "A", "zz"], ["a", "b", "d"]  # "A" scores as "a"
    # a: 3 of 6, b: 1 of 6, d: 0 -> (1 - C(3,2)/C(6,2) + 1 - C(5,2)/C(6,2) + 0) / 3 = (12/15 + 5/15) / 3
    assert mode_coverage_at(samples, refs, 2) == pytest.approx(17 / 45)
    for k in range(1, 7):  # unbiased: the mean coverage of all k-sample subsets, enumerated
        subsets = list(itertools.combinations(samples, k))
        brute = sum(mode_precision_coverage(list(s), refs)[1] for s in subsets) / len(subsets)
        assert mode_coverage_at(samples, refs, k) == pytest.approx(brute)
    assert mode_coverage_at(samples, refs, 6) == pytest.approx(mode_precision_coverage(samples, refs)[1])  # k = N
    with pytest.raises(ValueError, match="k = 7"):
        mode_coverage_at(samples, refs, 7)


def test_generic_share_counts_the_ten_most_frequent_outputs_over_all_sources():
    from slcvae.evaluation.metrics import generic_share

    # 12 distinct outputs, "ok ." 5 times (case and spacing fold to one output): the top 10 hold 5 + 9 of 16 samples
    samples = [["OK.", "ok .", "ok ."], ["ok .", "Ok ."], [f"reply {i}" for i in range(11)]]
    assert generic_share(samples) == pytest.approx(14 / 16)
    assert generic_share(samples, top=1) == pytest.approx(5 / 16)
    assert generic_share([["a"], ["a"]]) == 1.0
    assert evaluate_texts([["a b", "a b"], ["c d", "e f"]], [["a b"], ["c d"]])["generic_share"] == 1.0
