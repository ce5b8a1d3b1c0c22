"""Training and generation throughput: slcvae's real code paths against a straightforward baseline.

    slcvae bench [--json] [--threads N] [--repeats R]     (also: python bench/throughput.py)

Both run in this one process at the reference sizes (vocab 10k, embedding 200, bidirectional GRU
300, context 600, latent 200, decoder 400, batch 30, Adam):

- gemm_gflops: fp32 matrix multiply [1200 x 400] @ [400 x 10000], the output projection's shape.
- train_tokens_per_s_fixed: random batches whose every target has 40 predicted tokens (no padding
  for anyone to skip); mfu = achieved model FLOP/s / gemm_gflops.
- train_tokens_per_s_dailydialog: real (non-pad) target tokens/s on DailyDialog training batches
  (3 context turns), when ../shared/data/dailydialog (from the working directory) exists: the baseline pads every
  text to 40 tokens.
- generate_replies_per_s_{greedy,sample}: 64 contexts x 10 samples, at most 40 tokens, with the models
  as trained by the runs above (on DailyDialog when present); ours stops rows at <eos>, the baseline
  always decodes 40 steps. The `_40_tokens` twins forbid <eos> in our model: per-step work only.

Each figure is the median of --repeats timed repetitions after one warm-up repetition.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path

import numpy as np
import torch

from slcvae.benchmark.baseline_cvae import BaselineCVAE
from slcvae.benchmark.timing import median_time, throughput_args
from slcvae.config import build_config
from slcvae.data.batching import Encoded, bucket_order, collate, encode
from slcvae.data.corpus import Example
from slcvae.data.tokenizer import TextTokenizer
from slcvae.generation.config import build, from_legacy
from slcvae.generation.decode import generate
from slcvae.models import build_model

DAILYDIALOG = Path("../shared/data/dailydialog")  # the project's shared corpora, beside a checkout
VOCAB, BATCH, LENGTH = 10_000, 30, 40


def gemm_gflops(repeats: int) -> float:
    a, b = torch.randn(BATCH * LENGTH, 400), torch.randn(400, VOCAB)
    seconds = median_time(lambda: [a @ b for _ in range(10)], repeats) / 10
    return 2 * a.shape[0] * a.shape[1] * b.shape[1] / seconds / 1e9


def model_flops_per_token(src_len: float, turns: float) -> float:
    """Training FLOPs per target token (forward + backward = 3x forward), matmuls only."""
    e, u, c, z, d, m = 200, 300, 600, 200, 400, 400
    gru = lambda n_in, h: 2 * 3 * (n_in * h + h * h)  # noqa: E731  per token, one direction
    per_target_token = gru(e, d) + 2 * d * VOCAB + 2 * gru(e, u)  # decoder + projection + posterior's target encoder
    per_source = turns * src_len * 2 * gru(e, u) + turns * gru(2 * u, c) + 2 * (c * m + m * 2 * z) * 2 + 2 * (c + z) * d
    return 3 * (per_target_token + per_source / LENGTH)


def ours(tok_vocab: int):
    cfg = build_config("cvae", sets=["data.max_vocab=10000"])
    torch.manual_seed(0)
    model = build_model(cfg, tok_vocab, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)

    def step(batch):
        _, losses = model(batch)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    return model, cfg, step


def baseline():
    torch.manual_seed(0)
    model = BaselineCVAE(VOCAB)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(src, tgt):
        loss = model.loss(src, tgt)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    return model, step


class FakeTokenizer:
    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3


def random_batches(n: int, rng: np.random.Generator) -> list[tuple]:
    """n fixed-length batches: 1 source turn of 40 words, 39 target words + <eos> = 40 predicted tokens."""
    out = []
    for _ in range(n):
        src = rng.integers(4, VOCAB, (BATCH, LENGTH))
        tgt = rng.integers(4, VOCAB, (BATCH, LENGTH - 1))
        data = Encoded(turns=[[list(s)] for s in src], targets=[list(t) for t in tgt])
        ours_batch = collate(data, range(BATCH), FakeTokenizer)
        base_tgt = ours_batch.target.clone()  # <bos> 39 words <eos>
        out.append((ours_batch, torch.as_tensor(src).unsqueeze(1), base_tgt))
    return out


def baseline_source(turns: list[list[list[int]]], n_turns: int = 3) -> torch.Tensor:
    """The baseline's source: the last `n_turns` turns, right-aligned, every turn padded to 40: [batch, n_turns, 40]."""
    src = torch.zeros(len(turns), n_turns, LENGTH, dtype=torch.long)
    for i, source in enumerate(turns):
        kept = source[-n_turns:]
        for k, t in enumerate(kept):
            src[i, n_turns - len(kept) + k, : len(t)] = torch.tensor(t[:LENGTH])
    return src


def dailydialog_batches(n: int) -> tuple[list[tuple], int, list[Example]]:
    from slcvae.data.prepare import dailydialog

    rows = dailydialog(DAILYDIALOG, context_turns=3)
    train = [Example(tuple(r["source"]), [r["target"]]) for r in rows["train"]]
    tests = [Example(tuple(r["source"]), [r["target"]]) for r in rows["test"][:64]]
    cfg = build_config("cvae")
    tok = TextTokenizer.train([t for ex in train for t in (*ex.source, *ex.targets)], "word", True, VOCAB - 4, 1)
    data = encode(train, tok, cfg.data)
    order = bucket_order(data.lengths(), BATCH, 50, seed=0, epoch=0)[:n]
    out = []
    for idx in order:
        batch = collate(data, idx, tok)
        src = baseline_source([data.turns[j] for j in idx])
        tgt = torch.zeros(len(idx), LENGTH + 1, dtype=torch.long)
        tgt[:, : batch.target.shape[1]] = batch.target
        out.append((batch, src, tgt))
    return out, tok, tests


def main(argv: list[str] | None = None) -> None:
    args, r = throughput_args(__doc__, repeats=5, batches=10, argv=argv)
    r["gemm_gflops"] = gemm_gflops(args.repeats)

    rng = np.random.default_rng(0)
    fixed = random_batches(args.batches, rng)
    tokens = args.batches * BATCH * LENGTH
    model, cfg, step = ours(VOCAB)
    r["train_tokens_per_s_fixed"] = tokens / median_time(lambda: [step(b) for b, _, _ in fixed], args.repeats)
    base_model, base_step = baseline()
    r["baseline_train_tokens_per_s_fixed"] = tokens / median_time(lambda: [base_step(s, t) for _, s, t in fixed], args.repeats)
    r["mfu"] = r["train_tokens_per_s_fixed"] * model_flops_per_token(LENGTH, 1) / (r["gemm_gflops"] * 1e9)
    r["baseline_mfu"] = r["baseline_train_tokens_per_s_fixed"] * model_flops_per_token(LENGTH, 1) / (r["gemm_gflops"] * 1e9)

    tests = None
    if DAILYDIALOG.is_dir():
        dd, tok, tests = dailydialog_batches(args.batches)
        real = sum(int((b.target_lens - 1).sum()) for b, _, _ in dd)
        r["dailydialog_real_tokens_per_batch"] = real / len(dd)
        r["train_tokens_per_s_dailydialog"] = real / median_time(lambda: [step(b) for b, _, _ in dd], args.repeats)
        r["baseline_train_tokens_per_s_dailydialog"] = real / median_time(
            lambda: [base_step(s, t) for _, s, t in dd], args.repeats
        )

    # generation: 64 contexts x 10 samples; DailyDialog test contexts when present, else random ones
    if tests is None:
        words = [str(i) for i in range(VOCAB - 4)]
        tok = TextTokenizer.train([" ".join(words)], "word", True, VOCAB - 4, 1)
        tests = [Example((" ".join(rng.choice(words, 15)),), ["x"]) for _ in range(64)]
    model.eval()
    base_model.eval()
    src = baseline_source(encode(tests, tok, cfg.data).turns)
    for mode in ("greedy", "sample"):
        r[f"baseline_generate_replies_per_s_{mode}"] = 640 / median_time(
            lambda m=mode: [base_model.sample(src[i : i + 3], 10, LENGTH, 2, m == "greedy") for i in range(0, 64, 3)],
            args.repeats,
        )
    for suffix, eos_bias in (("", None), ("_40_tokens", -1e4)):
        # "": the model as trained above, replies end at its own <eos> (the real path: early stop);
        # "_40_tokens": <eos> forbidden, every reply runs 40 steps like the baseline's: per-step work only
        if eos_bias is not None:
            with torch.no_grad():
                model.decoder.out.bias[tok.eos_id] = eos_bias
        for mode in ("greedy", "sample"):
            gen = build(from_legacy({"num_return_sequences": 10, "decode": mode}))
            r[f"generate_replies_per_s_{mode}{suffix}"] = 640 / median_time(
                lambda g=gen: generate(model, tok, tests, cfg.data, g), args.repeats
            )
            r[f"baseline_generate_replies_per_s_{mode}{suffix}"] = r[f"baseline_generate_replies_per_s_{mode}"]
            replies = [x for row in generate(model, tok, tests, cfg.data, gen) for x in row]
            r[f"generate_mean_words_{mode}{suffix}"] = sum(len(x.split()) for x in replies) / len(replies)
    r["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(json.dumps(r))
        return
    print(f"threads {r['threads']}, torch {r['torch']}, GEMM {r['gemm_gflops']:.0f} GFLOP/s, peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"{'figure':40s} {'slcvae':>10s} {'baseline':>10s} {'ratio':>7s}")
    keys = ["train_tokens_per_s_fixed", "train_tokens_per_s_dailydialog", "mfu"]
    keys += [f"generate_replies_per_s_{m}{x}" for x in ("", "_40_tokens") for m in ("greedy", "sample")]
    for key in keys:
        if key in r:
            base = r[f"baseline_{key}"]
            print(f"{key:40s} {r[key]:10.2f} {base:10.2f} {r[key] / base:6.2f}x")
    words = ", ".join(f"{m} {r[f'generate_mean_words_{m}']:.1f}" for m in ("greedy", "sample"))
    print(f"mean words per reply (ours, stopping at <eos>): {words}; the baseline always decodes {LENGTH}")


if __name__ == "__main__":
    main()
