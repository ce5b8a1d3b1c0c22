"""The Python API: load a trained model, ask for N outputs per source, save a self-contained copy.

    import slcvae
    gen = slcvae.Generator.from_pretrained("runs/dd")           # a `slcvae train` folder or a saved model folder
    gen.generate(["how are you ?"], num_return_sequences=10)    # -> list[list[str]]: [sources][10]

A saved model folder (`save_pretrained`) holds `model.safetensors` (weights only, no optimizer),
`config.json`, the tokenizer (`tokenizer.json`, `tokenizer_mode.json`), `generation_config.json` (the model's
decoding defaults) and `slcvae.json` (format
version, model name, the run's summary). Loading it reads JSON and safetensors only: nothing is
unpickled. A run folder's `.pt` checkpoints are read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from slcvae import __version__
from slcvae.config import Config
from slcvae.data.corpus import TURN_SEP, Example
from slcvae.data.tokenizer import TextTokenizer
from slcvae.errors import InputError
from slcvae.generation import config as generation_config
from slcvae.generation.config import GenerationConfig, build
from slcvae.generation.decode import generate
from slcvae.io import replace_atomic, write_json_atomic
from slcvae.loading import FORMAT, FORMAT_VERSION, META, WEIGHTS, load_generation_config, load_lm, load_model, resolve_device


def as_example(source: object, where: str) -> Example:
    """One source: a string (turns separated by ` __eou__ `, as in TSV corpora) or a list of turns, oldest first."""
    if isinstance(source, str):
        turns = [" ".join(t.split()) for t in source.split(TURN_SEP)]
    elif isinstance(source, list | tuple) and all(isinstance(t, str) for t in source):
        turns = [" ".join(t.split()) for t in source]
    else:
        raise InputError(where, None, f"a source must be a string or a list of strings (turns), got {type(source).__name__}")
    if not turns or not all(turns):
        raise InputError(where, None, f"empty source or empty turn: {source!r}")
    return Example(tuple(turns), [])


class Generator:
    """A trained model with its tokenizer and config, ready to generate.

    seed: where this object's random stream starts (an int makes a program's successive calls
    repeatable); None draws fresh entropy. Each `generate` call without its own `seed` or
    `generator` takes the next seed from this stream, so two calls give different samples and the
    global torch RNG is never touched.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: TextTokenizer,
        config: Config,
        summary: dict | None = None,
        seed: int | None = None,
        generation: GenerationConfig | None = None,
    ):
        self.model, self.tokenizer, self.config = model.eval(), tokenizer, config
        self.summary = summary or {}
        # this model's decoding defaults, which every generate() call starts from
        self.generation_config = generation or generation_config.for_model(config.model_name)
        self.last_drawn: list[int] = []  # outputs each source drew in the last call (distinct redraws duplicates)
        self.lms: dict[str, torch.nn.Module] = {}  # MMI's anti-language models by folder, loaded on first use
        self.rng = torch.Generator()
        if seed is None:
            self.rng.seed()
        else:
            self.rng.manual_seed(seed)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> Generator:
        self.model.to(resolve_device(str(device)))
        return self

    @classmethod
    def from_pretrained(
        cls, path: str | Path, checkpoint: str = "best", device: str = "cpu", seed: int | None = None
    ) -> Generator:
        """Load an exported model folder (`save_pretrained`, `slcvae export`) or a `slcvae train --out` folder.

        checkpoint: for a run folder, `best` (falls back to `last` with a message when no validation
        was eligible) or `last`; a saved folder has one set of weights and ignores it.
        """
        model, tokenizer, config, summary = load_model(path, checkpoint)
        return cls(model, tokenizer, config, summary, seed, load_generation_config(path, config.model_name)).to(device)

    def language_model(self, path: Path) -> torch.nn.Module:
        """The anti-language model in `path` (MMI), loaded once per folder and kept on this generator's device."""
        key = str(path.resolve())
        if key not in self.lms:
            self.lms[key] = load_lm(path, self.tokenizer)
        return self.lms[key].to(self.device)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write a self-contained model folder (weights as safetensors, config and tokenizer as JSON); returns it."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise InputError(directory, None, "exists and is not a folder")
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.model.state_dict().items()}
        replace_atomic(directory / WEIGHTS, lambda tmp: save_file(state, tmp, metadata={"format": FORMAT}))
        self.config.save(directory / "config.json")
        self.tokenizer.save(directory)
        self.generation_config.save(directory)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "slcvae_version": __version__,
            "model_name": self.config.model_name,
            "summary": self.summary,
        }
        write_json_atomic(directory / META, meta)
        return directory

    def generate(
        self,
        sources: str | Sequence[str | Sequence[str]],
        num_return_sequences: int | None = None,
        *,
        targets: Sequence[str] | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> list[list[str]]:
        """num_return_sequences outputs per source: [len(sources)][num_return_sequences].

        sources: one source or a list; a source is a string (turns separated by ` __eou__ `) or a list of turns.
        options: any `slcvae.GenerationConfig` field (Hugging Face's names: do_sample, temperature, top_k, top_p,
        num_beams, num_beam_groups, diversity_penalty, max_new_tokens, min_new_tokens, no_repeat_ngram_size,
        repetition_penalty; and ours: latent, noise, lm, mmi_weight, mmi_tokens, distinct, max_draws, suppress_unk,
        batch_size), over this model's defaults (`self.generation_config`, its folder's generation_config.json).
        latent="posterior" draws z ~ q(z|x, y) and needs one target per source in `targets`. With distinct=True,
        `self.last_drawn` says how many outputs each source drew. Errors name the argument as spelled here.
        A call without `seed` or `generator` takes its seed from this object's stream.
        """
        items = [sources] if isinstance(sources, str) else list(sources)
        if not items:
            raise InputError("sources", None, "no sources given")
        examples = [as_example(s, f"sources[{i}]") for i, s in enumerate(items)]
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator or self.rng))
        options = {"num_return_sequences": num_return_sequences, **options, "seed": seed}
        cfg = build(options, self.generation_config)
        if cfg.latent == "posterior":
            if targets is None or len(targets) != len(examples):
                got = None if targets is None else len(targets)
                raise InputError("targets", None, f"latent='posterior' needs one target per source ({len(examples)}), got {got}")
            for i, (example, target) in enumerate(zip(examples, targets, strict=True)):
                example.targets.append(as_example(target, f"targets[{i}]").source[0])
        anti_lm = self.language_model(Path(cfg.lm)) if cfg.lm else None
        stats: dict[str, list[int]] = {}
        samples = generate(self.model, self.tokenizer, examples, self.config.data, cfg, anti_lm, stats=stats)
        self.last_drawn = stats["drawn"]
        return samples
