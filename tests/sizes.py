"""Config overrides the tests share: small models that train in seconds, and the settings the tests were written for."""

# the first-state decoder and word tokens, lowercased (the library defaults read the source and use cased BPE)
LEGACY = ["model.attention=false", "model.copy=false", "data.tokenizer=word", "data.lowercase=true"]
SMALL = ["model.embedding=8", "model.utterance=8", "model.context=12", "model.latent=4", "model.decoder=10", "model.mlp=8"]
TINY = ["model.embedding=16", "model.utterance=16", "model.context=24", "model.latent=4", "model.decoder=24", "model.mlp=16"]
QUIET = ["train.progress=false", "train.tensorboard=false"]


def labels_after(steps: int) -> list[str]:
    """SLCVAE's labels after a fixed warm-up of `steps`, whatever z does: the schedule the training tests check."""
    return ["slcvae.start=steps", f"slcvae.warmup_steps={steps}", "slcvae.gate_kl=0"]


def cli(sets: list[str]) -> list[str]:
    """--set options for the CLI: ["a=1", "b=2"] -> ["--set", "a=1", "--set", "b=2"]."""
    return [part for item in sets for part in ("--set", item)]
