"""Accuracy and diversity metrics over N samples per source."""

from slcvae.evaluation.metrics import evaluate_texts, read_predictions

__all__ = ["evaluate_texts", "read_predictions"]
