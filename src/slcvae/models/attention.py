"""A decoder that reads its source at every step: attention over the source's tokens, [context; z] at every input,
and optionally a copy mechanism.

A decoder started from [context; z] and given nothing else learns to ignore its first state: on DailyDialog every
such model took 0.000 nats from its context (studies/context_use.py). Here the source reaches every step three ways:

    input   x_t = [embed(y_{t-1}); c]                  c = [context; z], the conditioning vector
    state   s_t = GRU(x_t, s_{t-1}),  s_0 = tanh(W_init c)
    attend  a_t = softmax_j(s_t . K m_j / sqrt(d)),   r_t = sum_j a_tj m_j   over the source's token states m_j
    output  o_t = tanh(W_o [s_t; r_t; c]),             p_vocab = softmax(W_out o_t)

Attention after the GRU (Luong et al. 2015), not inside it: teacher forcing runs the GRU over the whole target
in one call and attends for every position in one batched product, so training costs little more than the
first-state decoder. With `copy` (pointer-generator, See et al. 2017), a gate g_t = sigmoid(w [o_t; r_t; x_t])
mixes in the attention itself as a distribution over the source's token ids:

    p(y_t) = g_t p_vocab(y_t) + (1 - g_t) sum_{j: id_j = y_t} a_tj

so a source word the output layer rarely predicts (a name, a colour) can be written by pointing at it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from slcvae.config import ModelConfig
from slcvae.models.modules import Decoder, _mask, gold_tokens, per_row
from slcvae.models.softmax import linear_cross_entropy
from slcvae.models.state import Memory, State

TINY = 1e-30  # floor of a copy probability before its log: a token absent from the source has none


class AttentionDecoder(Decoder):
    """`Decoder`'s interface (nll, init_state, step), reading `memory` [n, source_len, n_memory] at every step."""

    def __init__(self, vocab: int, n_cond: int, n_memory: int, cfg: ModelConfig, unk_id: int):
        super().__init__(vocab, n_cond, cfg, unk_id, step_input=n_cond)
        self.key = nn.Linear(n_memory, cfg.decoder, bias=False)  # bilinear score s_t . K m_j
        self.combine = nn.Linear(cfg.decoder + n_memory + n_cond, cfg.decoder)
        self.gate = nn.Linear(cfg.decoder + n_memory + cfg.embedding + n_cond, 1) if cfg.copy else None
        self.scale = 1.0 / math.sqrt(cfg.decoder)

    def init_state(self, cond: torch.Tensor, memory: Memory | None = None) -> State:
        if memory is None:
            raise ValueError("AttentionDecoder: the source's memory is required (Encoder.read)")
        keyed = Memory(memory.values, memory.mask, memory.ids, self.key(memory.values))
        return State(self.first_hidden(cond), cond, keyed)

    def attend(self, states: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """states [n, t, decoder] -> (weights [n, t, source_len], read [n, t, n_memory])."""
        scores = states @ memory.keys.transpose(1, 2) * self.scale
        weights = scores.masked_fill(~memory.mask.unsqueeze(1), -torch.inf).softmax(-1)
        return weights, weights @ memory.values

    def head(self, states: torch.Tensor, read: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """o_t = tanh(W_o [s_t; r_t; c]) (with dropout in training) and the copy gate's logit (None without copy);
        x = [embed(y_{t-1}); c], the step's input. states, read, x: [..., decoder], [..., n_memory],
        [..., embedding + n_cond]; teacher forcing and decoding share it, so both compute one distribution."""
        cond = x[..., self.embed.embedding_dim :]
        out = self.drop(torch.tanh(self.combine(torch.cat([states, read, cond], -1))))
        return out, (self.gate(torch.cat([out, read, x], -1)) if self.gate is not None else None)

    def nll(
        self,
        cond: torch.Tensor,
        target: torch.Tensor,
        target_lens: torch.Tensor,
        word_dropout: float = 0.0,
        memory: Memory | None = None,
    ) -> torch.Tensor:
        """-log p(y | cond, source) per row, [n]; teacher forcing, every position at once."""
        state = self.init_state(cond, memory)
        inputs = self.drop(self.embed(self.inputs(cond, target, target_lens, word_dropout)))  # [n, t, embedding]
        x = torch.cat([inputs, cond.unsqueeze(1).expand(-1, inputs.shape[1], -1)], -1)
        states = self.rnn(x, state.h)[0]  # [n, t, decoder]; causal, so real positions are exact
        weights, read = self.attend(states, state.memory)
        out, gate = self.head(states, read, x)
        real = _mask(target_lens - 1, inputs.shape[1])  # [n, t]
        gold = gold_tokens(target, target_lens)
        token_nll = linear_cross_entropy(out[real], self.out.weight, self.out.bias, gold)  # [n_tokens], fused on CPU
        if gate is not None:
            gate = gate[real].squeeze(-1)  # [n_tokens], a logit
            rows = real.nonzero()[:, 0]
            copied = (weights[real] * (memory.ids[rows] == gold.unsqueeze(1))).sum(-1)  # [n_tokens]: attention on gold
            token_nll = -torch.logaddexp(F.logsigmoid(gate) - token_nll, F.logsigmoid(-gate) + copied.clamp(min=TINY).log())
        return per_row(token_nll, target_lens)

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """tokens [n] -> (logits [n, vocab], the next state). With copy the logits are log-probabilities."""
        x = torch.cat([self.embed(tokens), state.cond], -1)  # [n, embedding + n_cond]
        states, h = self.rnn(x.unsqueeze(1), state.h)
        weights, read = self.attend(states, state.memory)  # [n, 1, source_len], [n, 1, n_memory]
        out, gate = self.head(states[:, 0], read[:, 0], x)  # gate: [n, 1]
        logits = self.out(out)
        if gate is not None:
            copied = torch.zeros_like(logits).scatter_add_(1, state.memory.ids, weights[:, 0])  # [n, vocab]
            generated = F.logsigmoid(gate) + logits.log_softmax(-1)
            logits = torch.logaddexp(generated, F.logsigmoid(-gate) + copied.clamp(min=TINY).log())
        return logits, State(h, state.cond, state.memory)


def build_decoder(vocab: int, n_cond: int, cfg: ModelConfig, unk_id: int) -> Decoder:
    """The decoder `cfg` asks for: attention over the source (`cfg.attention`) or the first-state decoder."""
    if cfg.attention:
        return AttentionDecoder(vocab, n_cond, 2 * cfg.utterance, cfg, unk_id)
    return Decoder(vocab, n_cond, cfg, unk_id)
