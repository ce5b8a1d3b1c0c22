"""Accuracy and diversity metrics over N samples per source, and a model's latent health."""

from __future__ import annotations

from pathlib import Path

from slcvae.data.corpus import Example
from slcvae.errors import InputError
from slcvae.evaluation.metrics import evaluate_texts, read_predictions

__all__ = ["evaluate_texts", "latent_health", "meaning_scores", "read_predictions", "score_files"]


def latent_health(model, tokenizer, cfg, pairs: list[Example], iw_samples: int = 20) -> dict[str, float]:
    """KL, active units, MI, -ELBO, source use and importance-weighted NLL / perplexity of a loaded model on
    (source, target) pairs (one target each, as `read_pairs` gives them)."""
    from slcvae.data.batching import encode
    from slcvae.evaluation.validation import validate

    if iw_samples < 1:
        raise InputError("--iw-samples", None, f"must be >= 1, got {iw_samples}")
    data = encode(pairs, tokenizer, cfg.data)
    metrics = validate(model, data, tokenizer, cfg.train.batch_size, step=10**9, iw_samples=iw_samples)
    keep = ("rec", "kl" if model.has_latent else "", "elbo", "nll_per_token", "ppl", "source_use", "active_units", "mi", "iw_nll",
            "iw_ppl")  # fmt: skip
    return {k: metrics[k] for k in keep if k in metrics}


def score_files(
    predictions: Path,
    references: Path,
    model_dir: Path | None = None,
    checkpoint: str = "best",
    iw_samples: int = 20,
    encoder: str | None = None,
) -> dict[str, float]:
    """`slcvae evaluate`: text metrics of a predictions file against its corpus (+ latent health with a model folder,
    + meaning-level metrics with a sentence encoder)."""
    from slcvae.data.corpus import read_corpus

    preds = read_predictions(predictions)
    refs = read_corpus(references)
    if len(preds) != len(refs):
        raise InputError(predictions, len(preds), f"{len(preds)} predictions but {references} has {len(refs)} distinct sources")
    for i, ((source, _), ex) in enumerate(zip(preds, refs, strict=True), start=1):
        given = [source] if isinstance(source, str) else source
        if source is not None and [" ".join(str(t).split()) for t in given] != list(ex.source):
            raise InputError(predictions, i, f"source does not match {references}:{ex.line} (files out of order?)")
    metrics = evaluate_texts([s for _, s in preds], [ex.targets for ex in refs], modes=all(ex.complete for ex in refs))
    if model_dir is not None:
        from slcvae.data.corpus import read_pairs
        from slcvae.loading import load_model

        model, tokenizer, cfg, _ = load_model(model_dir, checkpoint)
        metrics.update(latent_health(model, tokenizer, cfg, read_pairs(references), iw_samples))
    if encoder is not None:
        metrics.update(meaning_scores([s for _, s in preds], [ex.targets for ex in refs], encoder))
    return metrics


def meaning_scores(predictions: list[list[str]], references: list[list[str]], encoder: str) -> dict[str, float]:
    """evaluation/semantic.py's scores with the named encoder, its encodings cached on disk."""
    from slcvae.evaluation.semantic import semantic_scores
    from slcvae.pretrained import EncodingCache, encoder_for

    model, cache = encoder_for(encoder), EncodingCache()  # loaded (and its weights hashed) once per process
    return semantic_scores(predictions, references, lambda texts: cache.encode(model, texts))
