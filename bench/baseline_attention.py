"""A straightforward PyTorch attention seq2seq: the reference point for bench/attention_speed.py.

Written the way the common tutorials write one (PyTorch's chatbot tutorial, LuongAttnDecoderRNN): the decoder runs
one step at a time in training too, each step attends over the source (Luong's "general" score) and projects to the
whole vocabulary, every text is padded to a fixed length, the loss is masked afterwards, sampling draws with
`torch.multinomial` and decoding always runs max_len steps, each source encoded once per sample. The same math and
sizes as slcvae's seq2seq with model.attention = true ([context] fed at every step, turn-distance embeddings left
out); not used by the library.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BaselineAttentionSeq2Seq(nn.Module):
    def __init__(self, vocab: int, emb: int = 200, utt: int = 300, ctx: int = 600, dec: int = 400):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb, padding_idx=0)
        self.utt = nn.GRU(emb, utt, batch_first=True, bidirectional=True)
        self.ctx = nn.GRU(2 * utt, ctx, batch_first=True)
        self.dec_embed = nn.Embedding(vocab, emb, padding_idx=0)
        self.init = nn.Linear(ctx, dec)
        self.dec = nn.GRU(emb + ctx, dec, batch_first=True)
        self.key = nn.Linear(2 * utt, dec, bias=False)
        self.concat = nn.Linear(dec + 2 * utt + ctx, dec)
        self.out = nn.Linear(dec, vocab)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """src [batch, turns, len] (0 = pad) -> context [batch, ctx], memory [batch, turns * len, 2u], mask."""
        b, t, length = src.shape
        states, h = self.utt(self.embed(src.view(b * t, length)))
        _, c = self.ctx(torch.cat([h[0], h[1]], -1).view(b, t, -1))
        return c[0], states.reshape(b, t * length, -1), (src.view(b, t * length) != 0)

    def step(self, tok, h, c, memory, mask):
        o, h = self.dec(torch.cat([self.dec_embed(tok), c], -1).unsqueeze(1), h)
        scores = torch.bmm(self.key(memory), o.transpose(1, 2)).squeeze(2) / o.shape[-1] ** 0.5
        attn = F.softmax(scores.masked_fill(~mask, -1e9), -1)
        read = torch.bmm(attn.unsqueeze(1), memory).squeeze(1)
        return self.out(torch.tanh(self.concat(torch.cat([o[:, 0], read, c], -1)))), h

    def loss(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """tgt [batch, len] = <bos> words <eos> pad...; the mean summed NLL, one decoder step at a time."""
        c, memory, mask = self.encode(src)
        h = torch.tanh(self.init(c)).unsqueeze(0)
        logits = []
        for t in range(tgt.shape[1] - 1):
            step_logits, h = self.step(tgt[:, t], h, c, memory, mask)
            logits.append(step_logits)
        logits = torch.stack(logits, 2)  # [batch, vocab, len - 1]: every position, padding included
        return F.cross_entropy(logits, tgt[:, 1:], ignore_index=0, reduction="none").sum(1).mean()

    @torch.no_grad()
    def sample(self, src: torch.Tensor, n: int, max_len: int, bos: int, greedy: bool) -> torch.Tensor:
        src = src.repeat_interleave(n, 0)
        c, memory, mask = self.encode(src)
        h = torch.tanh(self.init(c)).unsqueeze(0)
        tok = torch.full((src.shape[0],), bos, dtype=torch.long)
        out = []
        for _ in range(max_len):  # no early stop
            logits, h = self.step(tok, h, c, memory, mask)
            probs = F.softmax(logits, -1)
            tok = probs.argmax(-1) if greedy else torch.multinomial(probs, 1).squeeze(1)
            out.append(tok)
        return torch.stack(out, 1)
