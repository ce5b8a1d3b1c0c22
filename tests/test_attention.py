"""The attention decoder (models/attention.py): the source's token memory, teacher forcing against step-by-step
decoding, copying, and every model family with it."""

from __future__ import annotations

import pytest
import torch

from slcvae.config import build_config
from slcvae.data.batching import Encoded, collate
from slcvae.data.tokenizer import TextTokenizer
from slcvae.errors import InputError
from slcvae.models import SLCVAE, build_model
from slcvae.models.attention import AttentionDecoder
from slcvae.models.modules import run_rnn
from tests import sizes
from tests.test_models import assert_only_the_labeler_learned

SMALL = [*sizes.LEGACY[:2], *sizes.SMALL, "slcvae.gate_kl=0", "model.attention=true"]
FAMILIES = ["seq2seq", "cvae", "cvae-bow", "slcvae"]


@pytest.fixture(scope="module")
def tok():
    return TextTokenizer.train(["a b c d e f g", "h i j k"], mode="word")


def batch(tok):
    # source 0: two turns (3 + 1 tokens), source 1: one turn of 2, source 2: one turn of 1
    data = Encoded(turns=[[[4, 5, 6], [7]], [[8, 9]], [[5]]], targets=[[4, 5, 6, 7, 8], [9], [10, 11]])
    return collate(data, range(3), tok)


def make(name, tok, *sets, seed=0):
    torch.manual_seed(seed)
    return build_model(build_config(name, sets=[*SMALL, *sets]), tok.vocab_size, tok.unk_id).eval()


def test_memory_holds_every_turns_tokens_in_order_with_their_turn_distance(tok):
    model, b = make("seq2seq", tok), batch(tok)
    ctx, memory = model.encoder.read(b)
    assert ctx.shape == (3, 12) and memory.values.shape == (3, 4, 16)
    assert memory.ids.tolist() == [[4, 5, 6, 7], [8, 9, 0, 0], [5, 0, 0, 0]]
    assert memory.mask.tolist() == [[True] * 4, [True, True, False, False], [True, False, False, False]]
    assert (memory.values[~memory.mask] == 0).all()
    # a token's state is the utterance GRU's output there plus its turn's distance from the last turn
    out, _ = model.encoder.utterance.states(b.turns, b.turn_lens, outputs=True)
    turn = model.encoder.turn.weight
    assert torch.allclose(memory.values[0, 0], out[0, 0] + turn[1])  # source 0, first turn: one back
    assert torch.allclose(memory.values[0, 3], out[1, 0] + turn[0])  # source 0, last turn
    assert torch.allclose(memory.values[1, 1], out[2, 1] + turn[0])
    assert torch.allclose(ctx, model.encoder.source(b))  # the context is the one the first-state models read


@pytest.mark.parametrize("bidirectional", [True, False])
def test_rnn_outputs_equal_a_packed_rnn_at_real_positions(bidirectional):
    torch.manual_seed(0)
    rnn = torch.nn.GRU(3, 4, num_layers=2, batch_first=True, bidirectional=bidirectional)
    lens = torch.tensor([1, 2, 1, 1, 1, 1, 1, 30])  # pads most in one group: the two-group path
    x = torch.randn(8, 30, 3)
    out, _ = run_rnn(rnn, x, lens, outputs=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(rnn(packed)[0], batch_first=True, total_length=30)
    assert torch.allclose(out, expected, atol=1e-5)  # pads are 0 in both


@pytest.mark.parametrize("copy", [False, True])
@pytest.mark.parametrize("name", ["seq2seq", "cvae"])
def test_teacher_forced_nll_equals_step_by_step_decoding(tok, name, copy):
    """The batched training path and the incremental decoding path compute one distribution: the sum of -log p of
    each target token, read from `step`'s logits, is the nll (with copy, the step's logits are log-probabilities)."""
    model, b = make(name, tok, f"model.copy={str(copy).lower()}"), batch(tok)
    assert isinstance(model.decoder, AttentionDecoder)
    ctx, memory = model.encoder.read(b)
    cond = torch.cat([ctx, torch.randn(3, 4)], -1) if model.has_latent else ctx
    nll = model.decoder.nll(cond, b.target, b.target_lens, memory=memory)
    state = model.decoder.init_state(cond, memory)
    total = torch.zeros(3)
    for t in range(b.target.shape[1] - 1):
        logits, state = model.decoder.step(b.target[:, t], state)
        real = t < b.target_lens - 1
        total -= torch.where(real, logits.log_softmax(-1).gather(1, b.target[:, t + 1 : t + 2]).squeeze(1), 0.0)
    assert torch.allclose(nll, total, atol=1e-5)


def test_copy_puts_probability_on_source_tokens(tok):
    """With the gate shut on generation (g -> 0), p(y_t) is the attention mass on y_t in the source: a token in
    the source gets it, one absent from the source gets none."""
    model, b = make("seq2seq", tok, "model.copy=true"), batch(tok)
    with torch.no_grad():
        model.decoder.gate.bias.fill_(-50.0)
        model.decoder.gate.weight.zero_()
    ctx, memory = model.encoder.read(b)
    logits, _ = model.decoder.step(torch.full((3,), tok.bos_id), model.decoder.init_state(ctx, memory))
    p = logits.exp().detach()
    assert torch.allclose(p.sum(-1), torch.ones(3), atol=1e-5)
    assert p[1, 8] + p[1, 9] == pytest.approx(1.0, abs=1e-5)  # source 1 holds only tokens 8 and 9
    assert p[2, 5] == pytest.approx(1.0, abs=1e-5)
    assert p[0, 10] < 1e-20


def test_copy_needs_attention():
    with pytest.raises(InputError, match="^--set model.copy=true: model.copy = true needs model.attention"):
        build_config("seq2seq", sets=["model.attention=false", "model.copy=true"])
    assert not build_config("seq2seq", sets=["model.attention=false"]).model.copy  # the default copies when attending
    assert build_config("seq2seq").model.copy and build_config("seq2seq").model.attention


@pytest.mark.parametrize("copy", [False, True])
@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_trains_with_attention_and_decodes(tok, name, copy):
    model, b = make(name, tok, f"model.copy={str(copy).lower()}"), batch(tok)
    model.train()
    for phase in model.phases:
        _, losses = model(b, step=10_000, phase=phase)
        assert torch.isfinite(losses["loss"])
        losses["loss"].backward()
    # the decoder's reading of the source trains the token encoder through the memory
    assert model.encoder.turn.weight.grad is not None and model.encoder.turn.weight.grad.abs().sum() > 0
    model.eval()
    state = model.init_state(b, 5)
    assert state.h.shape == (1, 15, 10) and state.memory.values.shape == (15, 4, 16)
    logits, nxt = model.step(torch.full((15,), tok.bos_id), state)
    assert logits.shape == (15, tok.vocab_size) and nxt.h.shape == state.h.shape
    assert torch.isfinite(model.log_likelihood(b, 2)).all()


def test_labeling_phase_with_attention_trains_only_the_labeler(tok):
    """The recovery loss reads the source through the frozen attention decoder: only g learns."""
    model, b = make("slcvae", tok, "slcvae.label_base=none"), batch(tok)
    assert isinstance(model, SLCVAE)
    model.train()
    model(b, phase="cvae")  # the labeling phase reads this phase's detached encodings, memory included
    model.zero_grad()
    _, losses = model(b, phase="label")
    losses["loss"].backward()
    assert_only_the_labeler_learned(model)


def test_attention_reads_the_source_the_first_state_decoder_cannot_tell_apart(tok):
    """Two sources with the same context vector but other tokens: the first-state decoder scores a target alike for
    both; the attention decoder does not."""
    for attention, differ in (("false", False), ("true", True)):
        model, b = make("seq2seq", tok, f"model.attention={attention}"), batch(tok)
        ctx, memory = model.encoder.read(b)
        same = ctx[:1].expand(3, -1)
        a = model.decoder.nll(same, b.target, b.target_lens, memory=memory)
        if memory is not None:
            memory = memory.index(torch.tensor([2, 0, 1]))
        c = model.decoder.nll(same, b.target, b.target_lens, memory=memory)
        assert (not torch.allclose(a, c)) == differ


def test_attention_with_copy_through_the_cli_the_api_and_the_server(tmp_path, synth_dir):
    """Trained with `--set model.attention=true --set model.copy=true`, a model generates from its run folder (CLI)
    and from an exported folder (API, HTTP), and `evaluate --model-dir` reports its source use."""
    import json

    from fastapi.testclient import TestClient

    import slcvae
    from slcvae.serving.app import create_app
    from tests.test_cli import TINY, invoke

    run = tmp_path / "run"
    r = invoke("train", "--model", "slcvae", "--train", synth_dir / "train.tsv", "--valid", synth_dir / "valid.jsonl",
               "--out", run, "--max-steps", 6, *TINY, "--set", "model.attention=true", "--set", "model.copy=true")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "source_use" in json.loads((run / "summary.json").read_text())["valid"]
    pred = tmp_path / "pred.jsonl"
    for beams in (1, 3):  # greedy, beam
        r = invoke("generate", "--model-dir", run, "--input", synth_dir / "test.jsonl", "--output", pred,
                   "--num-samples", 3, "--num-beams", beams)  # fmt: skip
        assert r.exit_code == 0, r.output
    r = invoke("evaluate", "--predictions", pred, "--references", synth_dir / "test.jsonl", "--model-dir", run,
               "--iw-samples", 2, "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout)
    assert {"source_use", "generic_share", "kl"} <= set(metrics) and 0 <= metrics["generic_share"] <= 1
    exported = tmp_path / "exported"
    assert invoke("export", "--model-dir", run, "--out", exported).exit_code == 0
    # an exported folder serves `generate` and `evaluate` as its run folder does: the same samples for the same seed
    again = tmp_path / "again.jsonl"
    r = invoke("generate", "--model-dir", exported, "--input", synth_dir / "test.jsonl", "--output", again,
               "--num-samples", 3, "--num-beams", 3)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert again.read_text() == pred.read_text()
    r = invoke("evaluate", "--predictions", again, "--references", synth_dir / "test.jsonl", "--model-dir", exported,
               "--iw-samples", 2, "--json")  # fmt: skip
    assert r.exit_code == 0 and json.loads(r.stdout)["source_use"] == pytest.approx(metrics["source_use"], abs=1e-4)
    gen = slcvae.Generator.from_pretrained(exported, seed=0)
    assert gen.model.decoder.gate is not None
    assert [len(row) for row in gen.generate(["item : hat | color : red"], num_return_sequences=4)] == [4]
    with TestClient(create_app(gen, name="att")) as client:
        reply = client.post("/v1/generate", json={"sources": ["item : hat | color : red"], "n": 2})
        assert reply.status_code == 200 and [len(row) for row in reply.json()["samples"]] == [2]


def test_a_saved_config_without_the_attention_fields_loads_as_it_was_trained(tmp_path):
    """Runs saved before model.attention existed used the first-state decoder: they load that way whatever the
    default becomes (config.LEGACY)."""
    import json

    from slcvae.config import Config

    saved = build_config("cvae").to_dict()
    del saved["model"]["attention"], saved["model"]["copy"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = Config.load(tmp_path / "config.json")
    # the missing fields take LEGACY's values (off), not today's defaults (on)
    assert (loaded.model.attention, loaded.model.copy) == (False, False)
    assert (Config().model.attention, Config().model.copy) == (True, True)
    saved["model"]["attention"] = True  # a field the config holds is read as saved
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert Config.load(tmp_path / "config.json").model.attention is True
