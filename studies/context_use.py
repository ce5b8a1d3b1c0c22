"""How many nats of a reply a trained model takes from its context: validation loss with each reply's own context
against the same replies paired with other contexts.

    python studies/context_use.py RUN_DIR [CHECKPOINT.pt ...] [--data data/dd-paper/valid.jsonl] [--threads 1]

For each checkpoint (default: RUN_DIR/best.pt) it prints one JSON line: the step, the validation `rec` and `elbo`
(nats per reply; for seq2seq `rec` is -log p(y|x)) with the true contexts, the same with the contexts shuffled
among the examples (a fixed permutation that moves every example; the targets and their order stay), and the
gap, shuffled - true. A gap near 0 says the model's likelihood of a reply does not depend on its context: it
writes the same replies whatever it is asked (docs/design/findings.md, findings 7 and 12). Latent models are scored as in
training (z from q(z|x, y)), with validation's fixed seed, so both pairings see the same noise.
It also reports the context GRU's output (before `model.context_norm`) over the true contexts: `context_abs`, its
mean |value| (1 = every unit saturated), and `context_spread`, the mean over units of its std across sources
(0 = the same vector for every source).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from slcvae.data.batching import Encoded, encode
from slcvae.data.corpus import read_corpus
from slcvae.evaluation.validation import validate
from slcvae.loading import load_run_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def shuffled(data: Encoded, seed: int = 0) -> Encoded:
    """The same targets, each with another example's turns: a random cycle, so no example keeps its own."""
    order = np.random.default_rng(seed).permutation(len(data))
    source_of = np.empty_like(order)
    source_of[order] = np.roll(order, 1)  # order[i] takes the turns of order[i - 1]
    return data.select(source_of)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("checkpoints", type=Path, nargs="*")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "dd-paper" / "valid.jsonl")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    true = other = None
    for path in args.checkpoints or [args.run / "best.pt"]:
        model, tok, cfg, ckpt = load_run_checkpoint(args.run, path)
        if true is None:
            true = encode(read_corpus(args.data), tok, cfg.data)
            other = shuffled(true)
        step = ckpt["state"]["step"]
        seen: list[torch.Tensor] = []
        hook = model.encoder.context.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out.detach()))
        a = validate(model, true, tok, cfg.train.batch_size, step)
        hook.remove()
        ctx = torch.cat(seen)
        spread = ctx.std(0).mean().item()
        b = validate(model, other, tok, cfg.train.batch_size, step)
        out = {"run": str(args.run), "checkpoint": path.name, "step": step, "model": cfg.model_name,
               "rec": round(a["rec"], 3), "rec_shuffled": round(b["rec"], 3), "rec_gap": round(b["rec"] - a["rec"], 3),
               "elbo": round(a["elbo"], 3), "elbo_shuffled": round(b["elbo"], 3),
               "elbo_gap": round(b["elbo"] - a["elbo"], 3), "kl": round(a["kl"], 3),
               "context_abs": round(ctx.abs().mean().item(), 3), "context_spread": round(spread, 3)}  # fmt: skip
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
