from __future__ import annotations

import pytest

from slcvae.config import DataConfig
from slcvae.data.batching import bucket_order, collate, encode
from slcvae.data.corpus import Example
from slcvae.data.tokenizer import TextTokenizer, detect_mode


def test_word_mode_splits_punctuation_and_lowercases(tmp_path):
    tok = TextTokenizer.train(["Hello, World!", "hello again"], mode="word")
    ids = tok.encode(["hello , world ! unseen"])[0]
    assert tok.tokens(ids) == ["hello", ",", "world", "!", "<unk>"]
    assert tok.decode([*ids[:4], tok.eos_id, 5]) == "hello , world !"
    tok.save(tmp_path)
    assert TextTokenizer.load(tmp_path).encode(["hello"]) == tok.encode(["hello"])


def test_char_mode_for_chinese_keeps_latin_words():
    texts = ["简约的牛仔外套，T恤百搭", "白色 100 cm"]
    assert detect_mode(texts) == "char" and detect_mode(["plain english"]) == "word"
    tok = TextTokenizer.train(texts, mode="auto")
    assert tok.mode == "char"
    ids = tok.encode(["牛仔T恤 100 cm"])[0]
    assert tok.tokens(ids) == ["牛", "仔", "t", "恤", "100", "cm"]
    assert tok.decode(ids) == "牛仔t恤100 cm"


def test_truncation_is_counted_and_buckets_are_deterministic():
    tok = TextTokenizer.train(["a b c d e"], mode="word")
    cfg = DataConfig(max_source_len=2, max_target_len=3, max_turns=2)
    data = encode([Example(("x", "a b c", "b"), ["a b c d e"]), Example(("a",), ["b"])], tok, cfg)
    assert data.truncated == 3  # 3 turns > 2, one kept turn > 2 tokens, one target > 3 tokens
    assert data.turns[0] == [tok.encode(["a b"])[0], tok.encode(["b"])[0]]
    batch = collate(data, [0, 1], tok)
    assert batch.target.tolist()[0] == [tok.bos_id, *tok.encode(["a b c"])[0], tok.eos_id]
    assert batch.n_turns.tolist() == [2, 1] and batch.turns.shape == (3, 2)
    import numpy as np

    lengths = np.arange(100)
    a, b = bucket_order(lengths, 8, 4, seed=1, epoch=0), bucket_order(lengths, 8, 4, seed=1, epoch=0)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert sorted(np.concatenate(a).tolist()) == list(range(100))
    # sorted pools: a batch spans ~25 lengths on average, where random batches of 8 from 100 span ~78
    assert np.mean([int(x.max() - x.min()) for x in a]) < 40


def test_bpe_mode_is_cased_has_no_unk_and_decodes_to_plain_text(tmp_path):
    from slcvae.evaluation.metrics import corpus_sacrebleu

    texts = ["We've got two tickets for the show tonight.", "Colour: Blue, size M.", "the show is at 8 pm"] * 20
    tok = TextTokenizer.train(texts, mode="bpe", lowercase=False, max_vocab=300)
    assert tok.mode == "bpe" and tok.vocab_size <= 304
    for text in ["We've got two tickets for the show tonight.", "Colour: Teal (12 oz), café ☕"]:  # unseen words, bytes
        ids = tok.encode([text])[0]
        assert tok.unk_id not in ids
        assert tok.decode([tok.bos_id, *ids, tok.eos_id, 7]) == text  # exactly as written, up to <eos>
    # the same word is one id at the start of a text and inside it (what a copy mechanism points at)
    assert tok.encode(["show"])[0] == tok.encode(["the show"])[0][-len(tok.encode(["show"])[0]) :]
    tok.save(tmp_path)
    again = TextTokenizer.load(tmp_path)
    assert again.mode == "bpe" and again.decode(again.encode(["Colour: Teal"])[0]) == "Colour: Teal"
    # plain text reaches sacreBLEU: an exact match scores 100 whatever its punctuation
    out = tok.decode(tok.encode(["We've got two tickets for the show tonight."])[0])
    assert corpus_sacrebleu([out], [["We've got two tickets for the show tonight."]]) == pytest.approx(100.0)
