"""What the encoding cache saves: a corpus's pretrained vectors (data.encoder) encoded cold, then read back.

    python bench/encoding_cache.py CORPUS [--encoder all-MiniLM-L6-v2] [--limit N] [--threads T] [--json]

Runs what training does before its first step (`data.batching.encode` with data.encoder set) twice against an empty
cache folder: the first call runs the encoder on every distinct turn and target, the second finds them on disk (a
second epoch never encodes: training encodes once per run; the cache is what lets a second run, another seed or
`generate` on the same texts skip the encoder). Prints texts, distinct texts, seconds cold and warm, the cache's size.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from slcvae.config import DataConfig
from slcvae.data.batching import encode, fit_tokenizer
from slcvae.data.corpus import read_corpus
from slcvae.pretrained import CACHE_ENV, bind


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", type=Path, help="a training file (TSV or JSONL)")
    p.add_argument("--encoder", default="all-MiniLM-L6-v2")
    p.add_argument("--limit", type=int, default=0, help="only the first N examples (0 = all)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (a training run uses train.threads = 1)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    examples = read_corpus(args.corpus)
    examples = examples[: args.limit] if args.limit else examples
    cfg = DataConfig(encoder=args.encoder)
    bind(cfg)  # loads the encoder once and records its fingerprint, as training does
    tokenizer = fit_tokenizer(examples, cfg)
    texts = [t for ex in examples for t in (*ex.source[-cfg.max_turns :], ex.targets[0] if ex.targets else "")]
    with tempfile.TemporaryDirectory() as cache:
        os.environ[CACHE_ENV] = cache
        times = []
        for _ in range(2):
            start = time.perf_counter()
            encode(examples, tokenizer, cfg)
            times.append(time.perf_counter() - start)
        size = sum(f.stat().st_size for f in Path(cache).rglob("*.safetensors"))
    out = {"corpus": str(args.corpus), "encoder": args.encoder, "threads": args.threads, "examples": len(examples),
           "texts": len(texts), "distinct_texts": len(set(texts)), "cold_s": round(times[0], 2),
           "warm_s": round(times[1], 2), "cache_mb": round(size / 2**20, 1)}  # fmt: skip
    if args.json:
        print(json.dumps(out))
        return
    for key, value in out.items():
        print(f"{key:>15}: {value}")


if __name__ == "__main__":
    main()
