"""Cost of one exact sampling step over a 10k vocabulary, 640 rows (64 contexts x 10 samples).

    python bench/sampling.py

Compares torch.multinomial(softmax), Gumbel-max with exponential_ noise, Gumbel-max from
rand_like, the inverse CDF used by slcvae (`sample_tokens`), and greedy argmax; also the 400 x 10k
output projection that every decoding step pays, for scale. Median milliseconds per call.
"""

from __future__ import annotations

import torch

from slcvae.benchmark.timing import median_time
from slcvae.generation.decode import sample_tokens


def ms(fn, repeats: int = 30) -> float:
    return 1000 * median_time(fn, repeats)


def main() -> None:
    torch.manual_seed(0)
    logits, h, w = torch.randn(640, 10_000), torch.randn(640, 400), torch.randn(10_000, 400)
    rows = {
        "torch.multinomial(softmax)": lambda: torch.multinomial(logits.softmax(-1), 1),
        "Gumbel-max, exponential_": lambda: (logits - torch.empty_like(logits).exponential_().log()).argmax(-1),
        "Gumbel-max, rand_like": lambda: (logits - (-torch.rand_like(logits).log()).log()).argmax(-1),
        "inverse CDF (slcvae)": lambda: sample_tokens(logits),
        "greedy argmax": lambda: logits.argmax(-1),
        "projection 640x400 @ 400x10k (fp32)": lambda: h @ w.T,
        "projection (bf16)": lambda h16=h.bfloat16(), w16=w.bfloat16(): h16 @ w16.T,
    }
    print(f"threads {torch.get_num_threads()}")
    for name, fn in rows.items():
        print(f"{name:38s} {ms(fn):7.1f} ms")


if __name__ == "__main__":
    main()
