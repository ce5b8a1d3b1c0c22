"""The one declaration of decoding options.

`GenerationConfig` (in the spirit of Hugging Face's) is where every decoding option, its default, its range and
its help text live. The CLI's `generate` flags, the Python API's keyword arguments, the HTTP request schema, a
compare spec's `[generate]` table and a model folder's `generation_config.json` are all read through `build`, so
the three surfaces take the same names (Hugging Face's where they exist) and check them the same way; an error
names the option as its caller spelled it (`--top-p`, `top_p`, `n`).

The decoding mode follows from the options, as in Hugging Face: `lm` set -> MMI-antiLM, `num_beam_groups` > 1 ->
diverse beam search, `num_beams` > 1 -> beam search, `do_sample` -> sampling, else greedy.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slcvae.errors import InputError

LATENTS = ("prior", "posterior")
FILE = "generation_config.json"  # a model folder's decoding defaults
SPELL_CLI: Callable[[str], str] = lambda name: "--" + name.replace("_", "-")  # noqa: E731
SPELL_API: Callable[[str], str] = lambda name: name  # noqa: E731


def option(default: Any, help: str, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           choices: tuple[str, ...] = (), aliases: tuple[str, ...] = (), runtime: bool = False) -> Any:  # fmt: skip
    """A GenerationConfig field with what every surface needs to declare it: help, range, choices, other names.

    runtime: a per-call setting (the seed) that a model folder's generation_config.json does not keep."""
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "choices": choices, "aliases": aliases, "runtime": runtime}
    return field(default=default, metadata=meta)


@dataclass
class GenerationConfig:
    num_return_sequences: int = option(10, "outputs per source (the paper's and its peers' N)", ge=1,
                                       aliases=("num_samples", "n"))  # fmt: skip
    do_sample: bool = option(False, "sample tokens from the softmax; greedy otherwise (a CVAE's outputs differ by z)")
    temperature: float = option(1.0, "sampling: logits / T", gt=0)
    top_k: int = option(0, "sampling: keep the k most likely tokens (0 = all)", ge=0)
    top_p: float = option(1.0, "sampling: nucleus mass (1 = all)", gt=0, le=1)
    num_beams: int = option(1, "beam width; > 1 is beam search (per z for latent models, an N-best list for seq2seq)",
                            ge=1)  # fmt: skip
    num_beam_groups: int = option(1, "> 1: diverse beam search in this many groups (seq2seq; Vijayakumar et al.)", ge=1)
    diversity_penalty: float = option(0.5, "diverse beam: cost of a token an earlier group chose at this step", ge=0)
    lm: str = option("", "MMI-antiLM (seq2seq): folder of a trained `--model lm` run; steers and reranks a beam")
    mmi_weight: float = option(0.5, "MMI: lambda in log p(y|x) - lambda log p_LM(first mmi_tokens tokens)", ge=0)
    mmi_tokens: int = option(5, "MMI: the anti-LM scores only the first this many tokens (Li et al.'s gamma)", ge=1)
    noise: float = option(0.0, "seq2seq + noise: std of Gaussian noise on the context vector per output (0 = off)",
                          ge=0)  # fmt: skip
    latent: str = option("prior", "prior: z ~ p(z|x), the test protocol | posterior: z ~ q(z|x,y), needs a target",
                         choices=LATENTS)  # fmt: skip
    distinct: bool = option(False, "return N different outputs per source: redraw duplicates, up to max_draws in all")
    max_draws: int = option(0, "distinct: outputs drawn per source at most, first N included (0 = 5 x N)", ge=0)
    suppress_unk: bool = option(False, "never emit <unk> (word tokenizers; off, so scores show what the model does)")
    no_repeat_ngram_size: int = option(0, "ban repeating any n-gram of this size within an output (0 = off)", ge=0)
    repetition_penalty: float = option(1.0, "CTRL's penalty on tokens already generated (1 = off)", gt=0)
    min_new_tokens: int = option(0, "no <eos> before this many tokens (0 = off)", ge=0)
    max_new_tokens: int = option(0, "output length limit in tokens (0 = the model's data.max_target_len)", ge=0)
    batch_size: int = option(64, "sources per forward pass (each expands to N rows; memory, not results)", ge=1)
    seed: int = option(1234, "seeds z and token sampling (a forked RNG: the caller's torch RNG is left alone)",
                       ge=0, runtime=True)  # fmt: skip

    @property
    def decode(self) -> str:
        """The decoding mode the options select: mmi | diverse_beam | beam | sample | greedy."""
        if self.lm:
            return "mmi"
        if self.num_beam_groups > 1:
            return "diverse_beam"
        if self.num_beams > 1:
            return "beam"
        return "sample" if self.do_sample else "greedy"

    def check(self, spell: Callable[[str], str] = SPELL_API) -> None:
        """Ranges and combinations; `spell` says how the caller names a field (`--top-p` on the CLI)."""
        for f in dataclasses.fields(self):
            _check_range(f, getattr(self, f.name), spell(f.name))
        combos = [
            ("num_beams", not (self.do_sample and self.num_beams > 1), "beam search does not sample: drop do_sample"),
            ("num_beam_groups", not (self.do_sample and self.num_beam_groups > 1), "diverse beam search does not sample"),
            ("num_beam_groups", not (self.lm and self.num_beam_groups > 1), "MMI and diverse beam search are two modes"),
            ("noise", self.noise == 0 or self.decode in ("greedy", "sample"), "goes with greedy decoding or sampling"),
        ]
        for name, ok, rule in combos:
            if not ok:
                raise InputError(spell(name), None, f"{rule}, got {getattr(self, name)!r}")

    def to_file(self) -> dict[str, Any]:
        """What a model folder keeps: every option but the per-call ones."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata["runtime"]}

    def save(self, directory: Path) -> None:
        from slcvae.io import write_json_atomic

        write_json_atomic(Path(directory) / FILE, self.to_file())


def for_model(model_name: str) -> GenerationConfig:
    """The decoding defaults a new model folder starts with: seq2seq has no latent to vary, so its N outputs are
    its beam's N best (the paper's SEQ2SEQ+BS) instead of N copies of one greedy reply; the others decode greedily
    from N draws of z."""
    if model_name == "seq2seq":
        return GenerationConfig(num_beams=GenerationConfig.num_return_sequences)
    return GenerationConfig()


MODE = ("do_sample", "num_beams", "num_beam_groups", "lm")  # together they select the decoding mode
FIELDS = {f.name: f for f in dataclasses.fields(GenerationConfig)}
TYPES = {name: {"int": int, "float": float, "bool": bool, "str": str}[f.type] for name, f in FIELDS.items()}
ALIASES = {alias: f.name for f in FIELDS.values() for alias in f.metadata["aliases"]}


def _check_range(f: dataclasses.Field, value: Any, name: str) -> None:
    m = f.metadata
    bad = (
        (m["ge"] is not None and value < m["ge"] and f"must be >= {m['ge']}")
        or (m["gt"] is not None and value <= m["gt"] and f"must be > {m['gt']}")
        or (m["le"] is not None and value > m["le"] and f"must be <= {m['le']}")
        or (m["choices"] and value not in m["choices"] and f"must be one of {', '.join(m['choices'])}")
    )
    if bad:
        raise InputError(name, None, f"{bad}, got {value!r}")


def _coerce(f: dataclasses.Field, value: Any, name: str) -> Any:
    """The value as the field's type: ints stay ints, floats accept ints, a path is a string; nothing else converts."""
    kind = TYPES[f.name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, Path):
        return str(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(name, None, f"must be {f.type}, got {value!r}")
    return value


def build(
    options: Mapping[str, Any],
    base: GenerationConfig | None = None,
    spell: Callable[[str], str] = SPELL_API,
    where: str | Path | None = None,
) -> GenerationConfig:
    """`base` (default: the library's defaults) with `options` over it, checked; an error names the option as spelled.

    Options are field names or their aliases (`n`, `num_samples` for num_return_sequences); None means "not given".
    The options that choose the decoding mode (MODE) go together: a caller who gives one of them gets the library's
    defaults for the others, not the base's, so `do_sample=True` samples even where a folder's default is a beam.
    `where` (a file) is named in errors instead of the option alone."""
    values = dataclasses.asdict(base or GenerationConfig())
    if any(options.get(key) is not None for key in options if ALIASES.get(key, key) in MODE):
        values.update({name: FIELDS[name].default for name in MODE})
    given: dict[str, str] = {}
    for key, value in options.items():
        if value is None:
            continue
        name = ALIASES.get(key, key)
        said = key if spell is SPELL_API else spell(name)
        if name not in FIELDS:
            hint = " (use max_new_tokens)" if key == "max_length" else ""
            raise InputError(where or said, None, f"unknown generation option {key!r}{hint}; known: {', '.join(FIELDS)}")
        if name in given:
            raise InputError(where or said, None, f"given twice, as {given[name]!r} and {key!r}")
        given[name] = key
        values[name] = _coerce(FIELDS[name], value, said)
    cfg = GenerationConfig(**values)

    def named(name: str) -> str:
        said = given.get(name, name) if spell is SPELL_API else spell(name)
        return f"{where}: {said}" if where else said

    cfg.check(named)
    return cfg


def load(directory: Path, model_name: str) -> GenerationConfig:
    """A model folder's decoding defaults: its generation_config.json, or where it has none (a folder written before
    the file existed) the defaults a new folder of that model starts with."""
    path = Path(directory) / FILE
    if not path.is_file():
        return for_model(model_name)
    try:
        tree = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(path, None, f"not valid JSON: {err}") from None
    if not isinstance(tree, dict):
        raise InputError(path, None, f"must hold a JSON object, got {type(tree).__name__}")
    return build(tree, where=path)


# A compare spec written before the options took Hugging Face's names says decode = "beam" | "diverse_beam" | "mmi"
# | "sample" with beam_size, beam_groups and diversity; read it as the same decoding.
LEGACY_DECODE_WIDTH = 5  # the old beam_size default


def from_legacy(options: Mapping[str, Any], where: str | Path | None = None) -> dict[str, Any]:
    """Old option names -> today's: the same decoding, so committed specs score as they did."""
    out = dict(options)
    decode = out.pop("decode", None)
    width = out.pop("beam_size", None)
    groups = out.pop("beam_groups", None)
    if "diversity" in out:
        out["diversity_penalty"] = out.pop("diversity")
    n = out.get("num_return_sequences", out.get("num_samples", GenerationConfig.num_return_sequences))
    if decode in (None, "greedy"):
        pass
    elif decode == "sample":
        out["do_sample"] = True
    elif decode in ("beam", "mmi"):
        out["num_beams"] = width or LEGACY_DECODE_WIDTH
    elif decode == "diverse_beam":
        out["num_beam_groups"] = groups or n
        out["num_beams"] = width or LEGACY_DECODE_WIDTH
    else:
        raise InputError(where or "decode", None, f"unknown decode {decode!r}")
    if decode == "mmi" and not out.get("lm"):
        raise InputError(where or "lm", None, "decode = 'mmi' needs lm")
    return out  # beam_size / beam_groups without a beam decode were unused, as before
