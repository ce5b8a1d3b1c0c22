"""Attention decoder throughput: slcvae's seq2seq with model.attention = true against a straightforward PyTorch
attention seq2seq of the same size and math (bench/baseline_attention.py), both in this one process.

    python bench/attention_speed.py [--json] [--threads N] [--repeats R] [--batches B]

Sizes: the reference ones (vocab 10k, embedding 200, bidirectional utterance GRU 300, context 600, decoder 400,
batch 30, Adam). Figures (median of --repeats after one warm-up, as bench/throughput.py):

- train_tokens_per_s_fixed: random batches, one 40-word source turn, 40 predicted target tokens each.
- train_tokens_per_s_dailydialog: real target tokens/s on DailyDialog batches (3 context turns; needs ../shared).
- generate_replies_per_s_{greedy,sample}: 64 contexts x 10 replies, at most 40 tokens; ours as trained above
  (stops rows at <eos>), the baseline always decodes 40 steps. `_40_tokens`: <eos> forbidden in ours too.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from baseline_attention import BaselineAttentionSeq2Seq  # noqa: E402

from slcvae.benchmark.throughput import DAILYDIALOG, LENGTH, VOCAB, baseline_source, dailydialog_batches, random_batches  # noqa: E402
from slcvae.benchmark.timing import median_time, throughput_args  # noqa: E402
from slcvae.config import build_config  # noqa: E402
from slcvae.data.batching import encode  # noqa: E402
from slcvae.data.corpus import Example  # noqa: E402
from slcvae.data.tokenizer import TextTokenizer  # noqa: E402
from slcvae.generation.config import build, from_legacy  # noqa: E402
from slcvae.generation.decode import generate  # noqa: E402
from slcvae.models import build_model  # noqa: E402


def trainer(model, loss_fn):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(*batch):
        loss = loss_fn(*batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    return step


def main() -> None:
    args, r = throughput_args(__doc__, repeats=3, batches=5)
    cfg = build_config("seq2seq", sets=["model.attention=true", "train.batch_size=30"])
    torch.manual_seed(0)
    ours = build_model(cfg, VOCAB, 1)
    ours_step = trainer(ours, lambda b: ours(b)[1]["loss"])
    torch.manual_seed(0)
    base = BaselineAttentionSeq2Seq(VOCAB)
    base_step = trainer(base, base.loss)
    r["parameters"] = sum(x.numel() for x in ours.parameters())
    r["baseline_parameters"] = sum(x.numel() for x in base.parameters())

    fixed = random_batches(args.batches, np.random.default_rng(0))
    tokens = sum(int((b.target_lens - 1).sum()) for b, _, _ in fixed)
    r["train_tokens_per_s_fixed"] = tokens / median_time(lambda: [ours_step(b) for b, _, _ in fixed], args.repeats)
    r["baseline_train_tokens_per_s_fixed"] = tokens / median_time(lambda: [base_step(s, t) for _, s, t in fixed], args.repeats)
    tests = None
    if DAILYDIALOG.is_dir():
        dd, tok, tests = dailydialog_batches(args.batches)
        real = sum(int((b.target_lens - 1).sum()) for b, _, _ in dd)
        r["train_tokens_per_s_dailydialog"] = real / median_time(lambda: [ours_step(b) for b, _, _ in dd], args.repeats)
        base_time = median_time(lambda: [base_step(s, t) for _, s, t in dd], args.repeats)
        r["baseline_train_tokens_per_s_dailydialog"] = real / base_time
    if tests is None:
        words = [str(i) for i in range(VOCAB - 4)]
        tok = TextTokenizer.train([" ".join(words)], "word", True, VOCAB - 4, 1)
        rng = np.random.default_rng(1)
        tests = [Example((" ".join(rng.choice(words, 15)),), ["x"]) for _ in range(64)]
    ours.eval()
    base.eval()
    src = baseline_source(encode(tests, tok, cfg.data).turns)
    for mode in ("greedy", "sample"):
        r[f"baseline_generate_replies_per_s_{mode}"] = 640 / median_time(
            lambda m=mode: [base.sample(src[i : i + 3], 10, LENGTH, 2, m == "greedy") for i in range(0, 64, 3)], args.repeats
        )
    for suffix in ("", "_40_tokens"):
        if suffix:
            with torch.no_grad():
                ours.decoder.out.bias[tok.eos_id] = -1e4
        for mode in ("greedy", "sample"):
            gen = build(from_legacy({"num_return_sequences": 10, "decode": mode}))
            r[f"generate_replies_per_s_{mode}{suffix}"] = 640 / median_time(
                lambda g=gen: generate(ours, tok, tests, cfg.data, g), args.repeats
            )
            r[f"baseline_generate_replies_per_s_{mode}{suffix}"] = r[f"baseline_generate_replies_per_s_{mode}"]
    if args.json:
        print(json.dumps(r))
        return
    print(f"threads {r['threads']}, torch {r['torch']}, parameters {r['parameters']:,} (baseline {r['baseline_parameters']:,})")
    print(f"{'figure':40s} {'slcvae':>10s} {'baseline':>10s} {'ratio':>7s}")
    keys = ["train_tokens_per_s_fixed", "train_tokens_per_s_dailydialog"]
    keys += [f"generate_replies_per_s_{m}{x}" for x in ("", "_40_tokens") for m in ("greedy", "sample")]
    for key in keys:
        if key in r:
            print(f"{key:40s} {r[key]:10.2f} {r[f'baseline_{key}']:10.2f} {r[key] / r[f'baseline_{key}']:6.2f}x")


if __name__ == "__main__":
    main()
