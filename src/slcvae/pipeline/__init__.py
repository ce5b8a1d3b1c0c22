"""train -> generate -> score, and the sweeps built on it: compare specs, the demo, the ablation.

The layer above evaluation and below the CLI: errors/config -> data -> models -> training,
generation -> evaluation -> pipeline -> cli.
"""

from slcvae.pipeline.run import generate_file, load_lm, score_run, train_run

__all__ = ["generate_file", "load_lm", "score_run", "train_run"]
