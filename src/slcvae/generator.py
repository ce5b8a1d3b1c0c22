"""The Python API: load a trained model, ask for N outputs per source, save a self-contained copy.

    import slcvae
    gen = slcvae.Generator.from_pretrained("runs/dd")           # a `slcvae train` folder or a saved model folder
    gen.generate(["how are you ?"], num_return_sequences=10)    # -> list[list[str]]: [sources][10]

A saved model folder (`save_pretrained`) holds `model.safetensors` (weights only, no optimizer),
`config.json`, the tokenizer (`tokenizer.json`, `tokenizer_mode.json`) and `slcvae.json` (format
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
from slcvae.generation.decode import GenerateConfig, generate
from slcvae.io import replace_atomic, write_json_atomic
from slcvae.loading import FORMAT, FORMAT_VERSION, META, WEIGHTS, load_lm, load_model, resolve_device


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
    ):
        self.model, self.tokenizer, self.config = model.eval(), tokenizer, config
        self.summary = summary or {}
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
        return cls(model, tokenizer, config, summary, seed).to(device)

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
        num_return_sequences: int = 10,
        *,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        num_beams: int = 1,
        num_beam_groups: int = 1,
        diversity_penalty: float = 0.5,
        noise: float = 0.0,
        lm: str | Path | None = None,
        mmi_weight: float = 0.5,
        mmi_tokens: int = 5,
        latent: str = "prior",
        targets: Sequence[str] | None = None,
        max_new_tokens: int | None = None,
        min_new_tokens: int = 0,
        no_repeat_ngram_size: int = 0,
        repetition_penalty: float = 1.0,
        suppress_unk: bool = True,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 64,
        **unknown: Any,
    ) -> list[list[str]]:
        """num_return_sequences outputs per source: [len(sources)][num_return_sequences].

        sources: one source or a list; a source is a string (turns separated by ` __eou__ `) or a list
        of turns. Greedy decoding by default: a CVAE's diversity comes from z ~ p(z|x) (`latent`
        "prior"); "posterior" draws z ~ q(z|x, y) and needs one target per source in `targets`.
        num_beams > 1: beam search (per z for latent models; an N-best list for seq2seq); with num_beam_groups > 1,
        diverse beam search (seq2seq; diversity_penalty per earlier group's choice). The other seq2seq decoding
        baselines: noise > 0 (Gaussian noise on the context vector per output), lm = a trained `lm` folder
        (MMI-antiLM: beam search steered and reranked by -mmi_weight log p_LM of the first mmi_tokens tokens).
        Errors name the argument as spelled here.
        """
        if unknown:
            name = next(iter(unknown))
            hint = " (use max_new_tokens)" if name == "max_length" else ""
            raise InputError(name, None, f"unknown argument{hint}; see help(Generator.generate)")
        items = [sources] if isinstance(sources, str) else list(sources)
        if not items:
            raise InputError("sources", None, "no sources given")
        examples = [as_example(s, f"sources[{i}]") for i, s in enumerate(items)]
        if latent == "posterior":
            if targets is None or len(targets) != len(examples):
                got = None if targets is None else len(targets)
                raise InputError("targets", None, f"latent='posterior' needs one target per source ({len(examples)}), got {got}")
            for i, (example, target) in enumerate(zip(examples, targets, strict=True)):
                example.targets.append(as_example(target, f"targets[{i}]").source[0])
        if do_sample and num_beams > 1:
            raise InputError(
                "num_beams",
                None,
                f"beam search does not sample: use do_sample=True or num_beams > 1, got both (num_beams={num_beams})",
            )
        if num_beams < 1:
            raise InputError("num_beams", None, f"must be >= 1, got {num_beams}")
        if max_new_tokens is not None and max_new_tokens < 1:
            raise InputError("max_new_tokens", None, f"must be >= 1, got {max_new_tokens}")
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator or self.rng))
        if num_beam_groups < 1:
            raise InputError("num_beam_groups", None, f"must be >= 1, got {num_beam_groups}")
        decode = "beam" if num_beams > 1 else ("sample" if do_sample else "greedy")
        if num_beam_groups > 1:
            decode = "diverse_beam"
        if lm is not None:
            decode = "mmi"
        cfg = GenerateConfig(
            num_samples=num_return_sequences,
            decode=decode,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            beam_size=num_beams,
            beam_groups=num_beam_groups if num_beam_groups > 1 else 0,
            diversity=diversity_penalty,
            lm=str(lm or ""),
            mmi_weight=mmi_weight,
            mmi_tokens=mmi_tokens,
            noise=noise,
            latent=latent,
            suppress_unk=suppress_unk,
            no_repeat_ngram_size=no_repeat_ngram_size,
            min_new_tokens=min_new_tokens,
            repetition_penalty=repetition_penalty,
            max_new_tokens=max_new_tokens or 0,
            batch_size=batch_size,
            seed=seed,
        )
        try:
            anti_lm = self.language_model(Path(lm)) if lm is not None else None
            return generate(self.model, self.tokenizer, examples, self.config.data, cfg, anti_lm)
        except InputError as err:  # GenerateConfig speaks the CLI's option names; say this method's
            if isinstance(err.path, str) and err.path in API_NAMES:
                raise InputError(API_NAMES[err.path], err.line, err.message.replace("--decode mmi", "lm")) from None
            raise


# GenerateConfig's errors name CLI options; these are the same options as this API's arguments
API_NAMES = {
    "--num-samples": "num_return_sequences",
    "--decode": "do_sample / num_beams / num_beam_groups / lm",
    "--beam-size": "num_beams",
    "--beam-groups": "num_beam_groups",
    "--diversity": "diversity_penalty",
    "--lm": "lm",
    **{f"--{name.replace('_', '-')}": name for name in (
        "temperature", "top_k", "top_p", "mmi_weight", "mmi_tokens", "noise", "latent", "no_repeat_ngram_size",
        "min_new_tokens", "repetition_penalty", "max_new_tokens", "batch_size")},
}  # fmt: skip
