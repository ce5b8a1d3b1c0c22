"""`--device cuda`: training, the losses and decoding on a GPU agree with the CPU. Skipped without one (CI has none)."""

from __future__ import annotations

import pytest
import torch

import slcvae
from slcvae.data.batching import Encoded, collate
from slcvae.data.tokenizer import TextTokenizer
from slcvae.generation import GenerationConfig, generate
from slcvae.models import build_model
from slcvae.training import load_model_dir, train
from tests.test_training import tiny

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False")

FAMILIES = ["seq2seq", "cvae", "cvae-bow", "slcvae"]


def _batch():
    tok = TextTokenizer.train(["a b c d e f g", "h i j k"], mode="word")
    data = Encoded(turns=[[[4, 5, 6], [7]], [[8, 9]], [[5]]], targets=[[4, 5, 6, 7, 8], [9], [10, 11]])
    return tok, collate(data, range(3), tok)


@pytest.mark.parametrize("name", FAMILIES)
def test_losses_and_gradients_match_the_cpu(name):
    """The same weights and batch give the same losses and gradients on both devices (packed GRUs, masks, KL)."""
    tok, batch = _batch()
    cfg = tiny(name, "cvae.word_dropout=0.0")  # word dropout draws from the device's RNG stream
    model = build_model(cfg, tok.vocab_size, tok.unk_id)
    results = []
    for device in ("cpu", "cuda"):
        model.to(device).train()
        model.zero_grad()
        torch.manual_seed(0)
        _, losses = model(batch.to(device), 0)
        losses["loss"].backward()
        grads = {k: p.grad.detach().cpu().clone() for k, p in model.named_parameters() if p.grad is not None}
        results.append(({k: v.item() for k, v in losses.items()}, grads))
    (cpu_losses, cpu_grads), (gpu_losses, gpu_grads) = results
    if name == "seq2seq":  # no latent: the two runs are the same computation
        assert gpu_losses == pytest.approx(cpu_losses, rel=1e-4, abs=1e-5)
        assert cpu_grads.keys() == gpu_grads.keys()
        for k in cpu_grads:
            assert torch.allclose(cpu_grads[k], gpu_grads[k], rtol=1e-3, atol=1e-5), k
    else:  # z is drawn on each device from its own RNG: compare what does not depend on the draw
        assert gpu_losses["kl"] == pytest.approx(cpu_losses["kl"], rel=1e-4, abs=1e-5)
        assert cpu_grads.keys() == gpu_grads.keys()


def test_train_on_cuda_then_generate_on_both(tmp_path, synth_dir):
    """`train.device=cuda` trains and saves CPU-loadable checkpoints; greedy beam search decodes the same on both."""
    out = tmp_path / "run"
    summary = train(tiny("seq2seq", "train.max_steps=20", "train.device=cuda"), synth_dir / "train.tsv",
                    synth_dir / "valid.jsonl", out)  # fmt: skip
    assert summary["steps"] == 20 and summary["best_valid_elbo"] is not None
    model, tokenizer, cfg = load_model_dir(out, "best")  # on the CPU
    assert next(model.parameters()).device.type == "cpu"
    sources = ["ask the weather in paris", "ask the time"]
    cpu = slcvae.Generator.from_pretrained(out, seed=0).generate(sources, 3, num_beams=3)
    gpu = slcvae.Generator.from_pretrained(out, device="cuda", seed=0).generate(sources, 3, num_beams=3)
    assert gpu == cpu


def test_slcvae_trains_and_samples_on_cuda(tmp_path, synth_dir):
    out = tmp_path / "run"
    summary = train(tiny("slcvae", "train.max_steps=20", "train.device=cuda"), synth_dir / "train.tsv",
                    synth_dir / "valid.jsonl", out)  # fmt: skip
    assert summary["steps"] == 20
    model, tokenizer, cfg = load_model_dir(out, "last")
    model.to("cuda")
    from slcvae.data.corpus import read_corpus

    examples = read_corpus(synth_dir / "valid.jsonl")[:4]
    gen = GenerationConfig(num_return_sequences=5, seed=1)
    first = generate(model, tokenizer, examples, cfg.data, gen)
    assert first == generate(model, tokenizer, examples, cfg.data, gen)  # seeded: repeatable on the GPU
    assert len(first) == 4 and all(len(row) == 5 for row in first)
