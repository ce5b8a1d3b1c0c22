from __future__ import annotations

import math

import pytest
import torch

from slcvae.generation.decode import AntiLM, beam_search, mmi_rerank, sample_loop, sample_tokens
from slcvae.generation.processors import MinNewTokens, NoRepeatNGram, RepetitionPenalty, SuppressTokens, Temperature, TopK, TopP
from slcvae.models.state import State
from tests import sizes

EOS = 3
# vocabulary: 0 pad, 1 unk, 2 bos, 3 eos, 4 a, 5 b; every step: eos 0.5, a 0.3, b 0.2
PROBS = torch.tensor([0.0, 0.0, 0.0, 0.5, 0.3, 0.2])


def fixed_step(tokens: torch.Tensor, h: State):
    return PROBS.log().expand(tokens.shape[0], -1).clone(), h


def test_greedy_stops_when_every_row_ended():
    out = sample_loop(fixed_step, State(torch.zeros(1, 4, 2)), bos=2, eos=EOS, max_len=10, greedy=True)
    assert out.tolist() == [[EOS]] * 4


def test_sampling_matches_the_distribution():
    torch.manual_seed(0)
    out = sample_loop(fixed_step, State(torch.zeros(1, 40_000, 2)), bos=2, eos=EOS, max_len=1, greedy=False)
    freq = torch.bincount(out[:, 0], minlength=6).float() / out.shape[0]
    assert torch.allclose(freq, PROBS, atol=0.01)
    # masked tokens (-inf, e.g. by top-k) are never drawn, even with a uniform draw of exactly 0
    logits = torch.tensor([[-torch.inf, 0.0, -torch.inf, 0.0]]).expand(1000, -1)
    assert set(sample_tokens(logits).tolist()) == {1, 3}
    import unittest.mock

    with unittest.mock.patch("torch.rand", lambda *shape, **kw: torch.zeros(*shape, **kw)):
        assert sample_tokens(logits[:1]).tolist() == [1]


def test_beam_search_n_best_by_length_normalized_score():
    out, logprob, lengths = beam_search(fixed_step, State(torch.zeros(1, 1, 2)), bos=2, eos=EOS, max_len=5, width=3, n_best=3)
    assert torch.allclose(logprob, torch.tensor([[math.log(0.5), math.log(0.3 * 0.5), math.log(0.2 * 0.5)]]))
    assert lengths.tolist() == [[1, 2, 2]]
    # hypotheses: "<eos>" log .5 / 1 = -0.69; "a <eos>" (log .3 + log .5) / 2 = -0.95; "b <eos>" -1.15
    assert out.shape[:2] == (1, 3)
    assert [row[row != 0].tolist() for row in out[0]] == [[EOS], [4, EOS], [5, EOS]]


def test_processors():
    logits = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.2)]])
    none = torch.zeros(1, 0, dtype=torch.long)
    assert torch.isinf(TopK(2)(none, logits)).tolist() == [[False, False, True]]
    assert torch.isinf(TopP(0.7)(none, logits)).tolist() == [[False, False, True]]
    assert torch.isinf(TopP(0.5)(none, logits)).tolist() == [[False, True, True]]
    assert torch.isinf(TopP(1.0)(none, logits)).sum() == 0
    assert torch.allclose(Temperature(2.0)(none, logits), logits / 2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Temperature(0.0)


def test_ban_processors():
    """Exact masks on a 6-word vocabulary; ids are what each row generated so far."""
    logits = torch.tensor([[2.0, -1.0, 0.5, 1.0, 0.0, 3.0], [2.0, -1.0, 0.5, 1.0, 0.0, 3.0]])
    ids = torch.tensor([[4, 5, 4], [5, 5, 1]])
    banned = torch.isinf(SuppressTokens([1])(ids, logits))
    assert banned.tolist() == [[False, True, False, False, False, False]] * 2
    # row 0 has "4 5" and ends in 4: 5 would repeat the bigram; row 1 ends in 1, no bigram "1 ?" yet
    assert torch.isinf(NoRepeatNGram(2)(ids, logits)).nonzero().tolist() == [[0, 5]]
    assert torch.isinf(NoRepeatNGram(1)(ids, logits)).nonzero().tolist() == [[0, 4], [0, 5], [1, 1], [1, 5]]
    assert torch.isinf(NoRepeatNGram(4)(ids, logits)).sum() == 0  # shorter than the n-gram
    assert torch.isinf(MinNewTokens(4, eos_id=3)(ids, logits)).nonzero().tolist() == [[0, 3], [1, 3]]
    assert torch.equal(MinNewTokens(3, eos_id=3)(ids, logits), logits)
    penalized = RepetitionPenalty(2.0)(ids, logits)
    assert penalized[0].tolist() == [2.0, -1.0, 0.5, 1.0, 0.0, 1.5]  # 5: 3 / 2; 4: 0 stays 0
    assert penalized[1].tolist() == [2.0, -2.0, 0.5, 1.0, 0.0, 1.5]  # 1: -1 * 2
    for bad, match in [(lambda: NoRepeatNGram(0), "no_repeat_ngram_size"), (lambda: RepetitionPenalty(0), "repetition")]:
        with pytest.raises(ValueError, match=match):
            bad()


def test_finished_rows_leave_the_batch_without_changing_outputs():
    """Row i says `a` i times then <eos>; the step function sees only the rows still decoding."""
    seen = []

    def countdown(tokens, state):
        seen.append(state.rows)
        logits = torch.full((tokens.shape[0], 6), -10.0)
        logits[:, 4] = 0.0
        logits[state.h[0, :, 0] <= 0, EOS] = 10.0
        return logits, State(state.h - 1)

    h = State(torch.arange(4.0).view(1, 4, 1))
    out = sample_loop(countdown, h, bos=2, eos=EOS, max_len=10, greedy=True)
    assert out.tolist() == [[3, 0, 0, 0], [4, 3, 0, 0], [4, 4, 3, 0], [4, 4, 4, 3]]
    assert seen == [4, 3, 2, 1]


def test_diverse_beam_search_returns_distinct_beams():
    h = State(torch.zeros(1, 1, 2))
    # three groups of width 1 without a penalty: three copies of the greedy output
    same = beam_search(fixed_step, h, bos=2, eos=EOS, max_len=5, width=3, n_best=3, groups=3, diversity=0.0)[0]
    assert [row[row != 0].tolist() for row in same[0]] == [[EOS]] * 3
    # with the Hamming penalty each group avoids the tokens earlier groups chose at that step:
    # t=1 <eos> | a | b; t=2 group 2 chose <eos>, so group 3 (0.5 e^-2 < 0.3) continues with a
    out, logprob, _ = beam_search(fixed_step, h, bos=2, eos=EOS, max_len=5, width=3, n_best=3, groups=3, diversity=2.0)
    assert [row[row != 0].tolist() for row in out[0]] == [[EOS], [4, EOS], [5, 4, EOS]]
    # the returned scores are the model's log-probabilities, without the penalty
    assert torch.allclose(logprob, torch.tensor([[math.log(0.5), math.log(0.15), math.log(0.03)]]))
    with pytest.raises(ValueError, match="not a multiple"):
        beam_search(fixed_step, h, bos=2, eos=EOS, max_len=5, width=4, n_best=1, groups=3)


def test_mmi_rerank_penalizes_what_the_language_model_finds_likely():
    ids, logprob, lengths = beam_search(fixed_step, State(torch.zeros(1, 1, 2)), bos=2, eos=EOS, max_len=5, width=3, n_best=3)
    seen = {}

    class GenericLM:  # p_LM("<eos>") = 1: the generic reply; every other prefix e^-5
        def prefix_log_prob(self, target, lens):
            seen["target"], seen["lens"] = target.tolist(), lens.tolist()
            return torch.where(target[:, 1] == EOS, 0.0, -5.0)

    best = mmi_rerank(ids, logprob, lengths, GenericLM(), bos=2, weight=1.0, gamma=1, keep=2)
    # scores: "<eos>" -0.69 - 0; "a <eos>" -0.95 + 5; "b <eos>" -1.15 + 5
    assert [row[row != 0].tolist() for row in best[0]] == [[4, EOS], [5, EOS]]
    assert seen["target"] == [[2, EOS], [2, 4], [2, 5]] and seen["lens"] == [2, 2, 2]  # gamma = 1: one token each
    plain = mmi_rerank(ids, logprob, lengths, GenericLM(), bos=2, weight=0.0, gamma=1, keep=2)
    assert [row[row != 0].tolist() for row in plain[0]] == [[EOS], [4, EOS]]  # weight 0: the beam's own order


def test_anti_lm_steers_the_beam_to_other_replies():
    """Reranking a width-N beam's N best cannot change which N replies come out (our first MMI-antiLM row equalled
    beam search's on every metric); the anti-LM term inside the search does."""

    class GenericLM:  # p_LM(<eos> first) ~ 1: the generic reply
        def start_state(self, n):
            return State(torch.zeros(1, n, 1))

        def step(self, tokens, h):
            logits = torch.full((tokens.shape[0], 6), -5.0)
            logits[:, EOS] = 0.0
            return logits, h

    h = State(torch.zeros(1, 1, 2))
    plain = beam_search(fixed_step, h, bos=2, eos=EOS, max_len=5, width=2, n_best=2)[0]
    assert [row[row != 0].tolist() for row in plain[0]] == [[EOS], [4, EOS]]
    anti = AntiLM(GenericLM(), bos=2, weight=1.0, gamma=1)
    out, logprob, lengths = beam_search(fixed_step, h, bos=2, eos=EOS, max_len=5, width=2, n_best=2, bias=anti)
    # t = 0: <eos> -0.69 + 0.03, a -1.20 + 5.03, b -1.61 + 5.03 keep a and b; from t = gamma on, no term
    assert [row[row != 0].tolist() for row in out[0]] == [[4, EOS], [5, EOS]]
    assert torch.allclose(logprob, torch.tensor([[math.log(0.15), math.log(0.1)]]))  # the model's own
    assert lengths.tolist() == [[2, 2]]
    assert AntiLM(GenericLM(), bos=2, weight=0.0, gamma=1)(torch.zeros(3, 0, dtype=torch.long)) is None


def test_seq2seq_noise_perturbs_each_sample_of_the_context():
    """SEQ2SEQ+noise: without noise greedy gives one reply N times; with it each sample starts elsewhere."""
    from slcvae.config import build_config
    from slcvae.data.batching import collate, encode
    from slcvae.data.corpus import Example
    from slcvae.data.tokenizer import TextTokenizer
    from slcvae.errors import InputError
    from slcvae.generation import GenerationConfig, generate
    from slcvae.models import build_model

    tok = TextTokenizer.train(["a b c d e f g h"], mode="word")
    sets = [*sizes.LEGACY[:2], *sizes.SMALL]
    torch.manual_seed(0)
    seq2seq = build_model(build_config("seq2seq", sets=sets), tok.vocab_size, tok.unk_id)
    examples = [Example(source=("a b c",))]
    cfg = build_config("seq2seq", sets=sets).data
    plain = generate(seq2seq, tok, examples, cfg, GenerationConfig(num_return_sequences=6))[0]
    noisy = generate(seq2seq, tok, examples, cfg, GenerationConfig(num_return_sequences=6, noise=5.0))[0]
    assert len(set(plain)) == 1 and len(set(noisy)) > 1
    batch = collate(encode(examples, tok, cfg), [0], tok)
    torch.manual_seed(1)
    h = seq2seq.init_state(batch, 3, noise=0.5)
    torch.manual_seed(1)
    expected = seq2seq.decoder.init_state(seq2seq.encoder.source(batch).repeat_interleave(3, 0) + 0.5 * torch.randn(3, 12))
    assert torch.allclose(h.h, expected.h, atol=1e-6)
    cvae = build_model(build_config("cvae", sets=sets), tok.vocab_size, tok.unk_id)
    with pytest.raises(InputError, match="^noise: is a seq2seq decoding baseline"):
        generate(cvae, tok, examples, cfg, GenerationConfig(noise=0.5))
    with pytest.raises(InputError, match="^noise: goes with greedy decoding or sampling"):
        GenerationConfig(noise=0.5, num_beams=2).check()
