"""Seq2Seq baseline: hierarchical encoder -> GRU decoder started from the context. No latent.

`LanguageModel` is the same decoder with no source: p(y), the anti-language model that
MMI-antiLM reranking (Li et al. 2016) subtracts to penalize generic replies.
"""

from __future__ import annotations

import torch
from torch import nn

from slcvae.config import Config
from slcvae.data.batching import Batch
from slcvae.models.attention import build_decoder
from slcvae.models.modules import Decoder, Encoder, param_groups
from slcvae.models.state import State


class Seq2Seq(nn.Module):
    """p(y|x). Diversity comes only from the decoding strategy (sampling, beams)."""

    has_latent = False
    phases: tuple[str, ...] = ("main",)  # training phases, each with its own optimizer

    def __init__(self, vocab: int, cfg: Config, unk_id: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(vocab, cfg.model, cfg.data)
        self.decoder = build_decoder(vocab, cfg.model.context, cfg.model, unk_id)

    def optimizer_groups(self, lr: float) -> dict[str, list[dict]]:
        """Parameters each training phase updates, as torch optimizer param groups."""
        return {"main": param_groups(self, list(self.parameters()), lr, self.cfg.train.encoder_lr)}

    def phases_at(self, step: int) -> list[str]:
        """The phases run at training step `step`, in order."""
        return ["main"]

    def selectable(self, step: int) -> bool:
        """Whether a checkpoint at `step` may be chosen as best (False while a warm-up changes the objective)."""
        return True

    def observe(self, step: int, progress: float) -> None:
        """Told by the trainer before training step `step`: the share of the step or time budget spent (0..1).
        Models whose schedule follows the run use it (SLCVAE's start); the rest ignore it."""

    def schedule(self, step: int) -> dict[str, float | None]:
        """Facts about the run's own schedule at `step`, for its summary (SLCVAE: where the labels started)."""
        return {}

    def forward(self, batch: Batch, step: int = 0, phase: str = "main") -> tuple[dict, dict[str, torch.Tensor]]:
        ctx, memory = self.encoder.read(batch)  # [batch, context], the token memory (attention) or None
        rec = self.decoder.nll(ctx, batch.target, batch.target_lens, memory=memory)  # [batch]
        return {}, {"loss": rec.mean(), "rec": rec.mean()}

    def log_likelihood(self, batch: Batch, num_samples: int = 1) -> torch.Tensor:
        """log p(y|x) per source, [batch]; exact here (no latent), so `num_samples` is unused."""
        ctx, memory = self.encoder.read(batch)
        return -self.decoder.nll(ctx, batch.target, batch.target_lens, memory=memory)

    def init_state(self, batch: Batch, num_samples: int, latent: str = "prior", noise: float = 0.0) -> State:
        """The decoder's state for `num_samples` outputs per source (batch * num_samples rows, source by source).

        noise > 0: each output's context vector gets its own N(0, noise^2) perturbation (SEQ2SEQ+noise).
        """
        ctx, memory = self.encoder.read(batch)
        ctx = ctx.repeat_interleave(num_samples, 0)
        memory = memory.repeat(num_samples) if memory is not None else None
        return self.decoder.init_state(ctx + noise * torch.randn_like(ctx) if noise else ctx, memory)

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One decoding step: tokens [n] -> logits [n, vocab] and the next state."""
        return self.decoder.step(tokens, state)


class LanguageModel(Seq2Seq):
    """p(y): the decoder started from a learned constant state; the source is ignored (no attention either)."""

    def __init__(self, vocab: int, cfg: Config, unk_id: int):
        nn.Module.__init__(self)
        self.cfg = cfg
        self.start = nn.Parameter(torch.zeros(1, cfg.model.context))  # stands in for the context vector
        self.decoder = Decoder(vocab, cfg.model.context, cfg.model, unk_id)

    def _cond(self, n: int) -> torch.Tensor:
        return self.start.expand(n, -1)

    def forward(self, batch: Batch, step: int = 0, phase: str = "main") -> tuple[dict, dict[str, torch.Tensor]]:
        rec = -self.prefix_log_prob(batch.target, batch.target_lens)
        return {}, {"loss": rec.mean(), "rec": rec.mean()}

    def log_likelihood(self, batch: Batch, num_samples: int = 1) -> torch.Tensor:
        return self.prefix_log_prob(batch.target, batch.target_lens)

    def init_state(self, batch: Batch, num_samples: int, latent: str = "prior", noise: float = 0.0) -> State:
        cond = self._cond(batch.size * num_samples)
        return self.decoder.init_state(cond + noise * torch.randn_like(cond) if noise else cond)

    def start_state(self, n: int) -> State:
        """The state before <bos>, for decoding n rows (MMI-antiLM's search term)."""
        return self.decoder.init_state(self._cond(n))

    def prefix_log_prob(self, target: torch.Tensor, target_lens: torch.Tensor) -> torch.Tensor:
        """log p(y_1..y_k) for rows of <bos> y_1..y_k (padded): [n]. MMI-antiLM scores the first gamma tokens."""
        return -self.decoder.nll(self._cond(target.shape[0]), target, target_lens)
