"""Model families: `Seq2Seq`, `CVAE` (with its remedies) and `SLCVAE`, built by name."""

from __future__ import annotations

from slcvae.config import Config
from slcvae.models.cvae import CVAE
from slcvae.models.seq2seq import LanguageModel, Seq2Seq
from slcvae.models.slcvae import SLCVAE

__all__ = ["CVAE", "SLCVAE", "LanguageModel", "Seq2Seq", "build_model"]


def build_model(cfg: Config, vocab: int, unk_id: int) -> Seq2Seq:
    """The model family for `cfg.model_name`: seq2seq, lm, slcvae, or a CVAE for every cvae-* name."""
    if cfg.model_name == "lm":
        return LanguageModel(vocab, cfg, unk_id)
    if cfg.model_name == "seq2seq":
        return Seq2Seq(vocab, cfg, unk_id)
    if cfg.model_name == "slcvae":
        return SLCVAE(vocab, cfg, unk_id)
    return CVAE(vocab, cfg, unk_id)
