"""Corpus readers, tokenization, batching and the synthetic one-to-many corpus."""

from slcvae.data.corpus import Example, read_corpus, read_pairs

__all__ = ["Example", "read_corpus", "read_pairs"]
