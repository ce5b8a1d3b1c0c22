"""A straightforward PyTorch CVAE: the reference point for bench/throughput.py.

Written the way most CVAE dialogue code is: plain padded batches of a fixed length, full logits
and softmax over every position (padding included, masked only in the loss), per-step
`torch.multinomial` over the whole vocabulary when sampling, no early stop, and each context
encoded once per sample. Same sizes and math as slcvae's CVAE; not used by the library.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BaselineCVAE(nn.Module):
    def __init__(
        self, vocab: int, emb: int = 200, utt: int = 300, ctx: int = 600, latent: int = 200, dec: int = 400, mlp: int = 400
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb, padding_idx=0)
        self.utt = nn.GRU(emb, utt, batch_first=True, bidirectional=True)
        self.ctx = nn.GRU(2 * utt, ctx, batch_first=True)
        self.prior = nn.Sequential(nn.Linear(ctx, mlp), nn.Tanh(), nn.Linear(mlp, 2 * latent))
        self.post = nn.Sequential(nn.Linear(ctx + 2 * utt, mlp), nn.Tanh(), nn.Linear(mlp, 2 * latent))
        self.dec_embed = nn.Embedding(vocab, emb, padding_idx=0)
        self.init = nn.Linear(ctx + latent, dec)
        self.dec = nn.GRU(emb, dec, batch_first=True)
        self.out = nn.Linear(dec, vocab)

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        """src [batch, turns, len] (padded, 0 = pad) -> [batch, ctx]; every turn runs at full length."""
        b, t, length = src.shape
        _, h = self.utt(self.embed(src.view(b * t, length)))
        _, c = self.ctx(torch.cat([h[0], h[1]], -1).view(b, t, -1))
        return c[0]

    def loss(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """tgt [batch, len] = <bos> words <eos> pad...; returns the mean negative ELBO."""
        c = self.encode(src)
        _, hy = self.utt(self.embed(tgt[:, 1:]))
        mu_p, lv_p = self.prior(c).chunk(2, -1)
        mu_q, lv_q = self.post(torch.cat([c, hy[0], hy[1]], -1)).chunk(2, -1)
        z = mu_q + torch.randn_like(mu_q) * (0.5 * lv_q).exp()
        h0 = torch.tanh(self.init(torch.cat([c, z], -1))).unsqueeze(0)
        states, _ = self.dec(self.dec_embed(tgt[:, :-1]), h0)
        logits = self.out(states)  # [batch, len - 1, vocab]: every position, padding included
        rec = F.cross_entropy(logits.transpose(1, 2), tgt[:, 1:], ignore_index=0, reduction="none").sum(1)
        kl = 0.5 * (lv_p - lv_q + (lv_q.exp() + (mu_q - mu_p) ** 2) / lv_p.exp() - 1).sum(-1)
        return (rec + kl).mean()

    @torch.no_grad()
    def sample(self, src: torch.Tensor, n: int, max_len: int, bos: int, greedy: bool) -> torch.Tensor:
        """n outputs per source: the source batch is repeated n times and encoded again for each."""
        src = src.repeat_interleave(n, 0)
        c = self.encode(src)
        mu, lv = self.prior(c).chunk(2, -1)
        z = mu + torch.randn_like(mu) * (0.5 * lv).exp()
        h = torch.tanh(self.init(torch.cat([c, z], -1))).unsqueeze(0)
        tok = torch.full((src.shape[0], 1), bos, dtype=torch.long)
        out = []
        for _ in range(max_len):  # no early stop: always max_len steps
            o, h = self.dec(self.dec_embed(tok), h)
            probs = F.softmax(self.out(o[:, -1]), -1)
            tok = probs.argmax(-1, keepdim=True) if greedy else torch.multinomial(probs, 1)
            out.append(tok)
        return torch.cat(out, 1)
