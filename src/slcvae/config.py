"""Configuration: one dataclass per concern, merged as defaults < model preset < TOML < --set.

Every field carries a comment saying what it does and why its default. A run's resolved
config is saved beside its checkpoints (`config.json`) so `generate` needs only the folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slcvae.errors import InputError

MODELS = ("seq2seq", "cvae", "cvae-anneal", "cvae-freebits", "cvae-wdrop", "cvae-bow", "slcvae", "lm")


@dataclass
class DataConfig:
    tokenizer: str = "bpe"  # bpe: byte-level subwords trained on the corpus (no <unk>, outputs as plain text; it won on
    # WebNLG and tied on the synthetic corpus) | word | char | jieba | auto: char when most letters are CJK, else word
    lowercase: bool = False  # cased, so outputs read as written; scoring lowercases both sides either way
    max_vocab: int = 10000  # the reference size for DailyDialog; rarer words become <unk>
    min_freq: int = 1  # keep every word the cap allows; raise it for noisy corpora
    max_source_len: int = 40  # tokens per source turn; longer turns are truncated (and counted)
    max_target_len: int = 40  # tokens per target; also the generation length limit
    max_turns: int = 10  # context turns kept (the most recent), the common 1-10 turn window
    encoder: str = ""  # a pretrained sentence encoder (a Hugging Face folder or Hub name, or all-MiniLM-L6-v2 from its
    # package) whose vector of every turn and target feeds the model beside its own encoders; "" = none (the default:
    # it needs slcvae[pretrained], and on two corpora it raised source use but not BLEU beyond the seeds' spread)
    encoder_tune: int = 0  # top layers of data.encoder trained with the model (0 = frozen, its vectors cached once);
    # > 0 runs the encoder inside every step (on CPU > 50x a frozen step: for a GPU) at train.encoder_lr
    encoder_fingerprint: str = ""  # set by training: the SHA-256 of the encoder's weights; loading refuses another
    encoder_dim: int = 0  # set by training: the size of the encoder's vectors


@dataclass
class ModelConfig:
    embedding: int = 200  # word embedding size (reference sizes follow Zhao et al. 2017 / the paper)
    utterance: int = 300  # hidden size per direction of the bidirectional utterance GRU
    context: int = 600  # hidden size of the context GRU over turns
    latent: int = 200  # size of z
    decoder: int = 400  # hidden size of the GRU decoder
    mlp: int = 400  # hidden size of the prior / recognition / labeling MLPs
    layers: int = 1  # GRU layers of the encoders and the decoder (the SLCVAE paper uses 2 at size 32); 1 is cheaper on CPU
    dropout: float = 0.0  # dropout on embeddings and decoder outputs; off so runs stay cheap and exact
    context_norm: str = "none"  # none | batch: batch-normalize the context vector, so the part of the decoder's gradient
    # shared by every source (its wish for one generic first state) does not reach the encoder, which otherwise
    # saturates onto one constant vector and the model ignores x. Default none: every
    # committed run was trained without it
    attention: bool = True  # the decoder reads [context; z] at every step and attends over the source's tokens
    # (models/attention.py) instead of seeing the source only in its first state, which decoders learn to ignore:
    # it read the source on all four corpora measured and raised BLEU on three (docs/results/attention-*). Runs saved without
    # the field load with it off (LEGACY), as they were trained
    copy: bool = True  # with attention: a pointer-generator gate may copy source tokens (names, colours) into the output;
    # off by itself when attention is off


@dataclass
class CVAEConfig:
    kl_anneal: str = "none"  # none | linear | cyclical (Bowman et al. 2016; Fu et al. 2019)
    anneal_steps: int = 10000  # linear: steps for the KL weight to reach 1; cyclical: length of one cycle
    anneal_ratio: float = 0.5  # cyclical: share of each cycle spent rising from 0 to 1 (Fu et al.'s R)
    anneal_hold: int = 0  # linear: steps at beta = 0 before the ramp. Adam rescales gradients, so even beta = 0.01 moves q
    # onto the prior at full speed while the decoder's gradient through z is still ~0
    free_bits: float = 0.0  # nats per latent dimension below which KL is not penalized (Kingma et al. 2016)
    word_dropout: float = 0.0  # chance to replace a decoder input word by <unk> (Bowman et al. 2016)
    bow_weight: float = 0.0  # weight of the bag-of-words loss from [x; z] (Zhao et al. 2017)


@dataclass
class SLCVAEConfig:
    # Defaults measured at several budgets and corpora (docs/results/schedule/, docs/results/budget/; docs/design/README.md).
    # The slcvae preset also sets cvae.bow_weight = 1 (PRESETS): labels act on a CVAE + BOW base.
    distance: str = "mean_sq"  # mean_sq: |mu_q - z*|^2 | nll: -log q(z*|x,y), shrinks q to 0 | sample_sq: |z - z*|^2 (paper)
    label_weight: float = 1.0  # lambda at full strength; with nll, 1 cancels the log-variance terms of KL and D
    label_bound: float = 2.0  # z* = B tanh(raw / B); unbounded labels grow while the decoder saturates; 0 = off
    label_base: str = "posterior"  # posterior: z* = mu_q + g's move (starts at 0, so labels cost no extra KL) | none: z* = g
    label_move: float = 1.0  # label_base = posterior: weight of |z* - mu_q|^2 in g's loss; keeps z* on q where decoding is flat
    labeler_encoder: str = "shared"  # shared: MLP on the CVAE's detached encodings (1.1x a CVAE step) | own: own encoders (2x)
    start: str = "auto"  # when lambda starts rising: auto = once the decoder reads x (x-gap stops growing) | steps = warmup_steps
    warmup_steps: int = 1000  # start = "steps": CVAE steps without labeling loss (a fixed count fits one corpus and budget)
    plateau: float = 0.1  # start = "auto": start once the x-gap grew by less than this share over the last half of the run
    start_by: float = 0.5  # start = "auto": start at the latest once this share of the budget is spent (x read); 1 = off
    ramp: float = 0.5  # lambda rises linearly from 0 at the start step s to full at (1 + ramp) s: no jump, scales with the run
    kl_ramp: bool = False  # lambda also follows the KL-annealing weight beta(step) (the paper's; needs cvae.kl_anneal)
    gate_kl: float = 0.1  # labels act only where z goes unused: the x-gap watch and lambda wait while the training KL's
    # running mean is at or above this (nats per source; 0.1 is the library's "KL vanished" line, trainer.KL_VANISHED);
    # once started they stay on. A base that keeps z in use is left alone: there the labels only cost coverage
    # and the run is its CVAE + BOW base, at its speed. 0 = off, labels regardless (the paper)
    train_labeler_early: bool = False  # g also learns before the start; off: it cost 0.1 mode coverage (docs/design/README.md)
    label_decay_steps: int = 0  # once full, lambda falls linearly to 0 over this many steps, then labeling stops; 0 = constant
    label_every: int = 1  # a labeling phase after every k-th CVAE step, same batch (1 = strict alternation, the paper's)
    label_steps: int = 1  # labeling-network updates per labeling phase
    label_lr: float = 0.0  # learning rate of the labeling network; 0 = the CVAE's


@dataclass
class TrainConfig:
    batch_size: int = 30  # the reference batch (Zhao et al. 2017); small batches suit CPU training
    lr: float = 1e-3  # Adam's usual default; stable for GRU seq2seq models
    encoder_lr: float = 2e-5  # Adam's rate for data.encoder's tuned layers: BERT's usual fine-tuning rate (1e-3
    # would overwrite what pretraining learned)
    grad_clip: float = 5.0  # clip the global gradient norm, the common value for GRU language models
    max_steps: int = 10000  # optimizer steps (each SLCVAE step is one CVAE update plus its labeling phase)
    max_minutes: float = 0.0  # wall-clock budget; 0 = no limit. Training stops cleanly and checkpoints
    eval_every: int = 500  # steps between validation passes (and best/last checkpoints)
    patience: int = 0  # stop after this many validations without a better -ELBO (training to convergence); 0 = off
    log_every: int = 50  # steps between TensorBoard scalars
    iw_samples: int = 0  # validation also reports the importance-weighted NLL with K samples; 0 = off (K decoder passes)
    bucket_batches: int = 50  # batches per length-sorted pool: similar lengths, little padding, still shuffled
    seed: int = 1234  # seeds data order, initialization and sampling; runs on CPU are repeatable
    threads: int = 0  # torch intra-op threads; 0 = torch's default (all cores)
    device: str = "cpu"  # cpu | cuda | cuda:N | auto; CPU by default so runs are exactly repeatable
    tensorboard: bool = False  # also write TensorBoard event files under OUT/tb (needs slcvae[plots]); log.jsonl always
    progress: bool = True  # rich progress bar with ETA on stderr


@dataclass
class Config:
    model_name: str = "slcvae"  # one of MODELS; picks the model family and its preset remedies
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    cvae: CVAEConfig = field(default_factory=CVAEConfig)
    slcvae: SLCVAEConfig = field(default_factory=SLCVAEConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        from slcvae.io import write_json_atomic  # io imports errors only; kept local so config stays the bottom layer

        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> Config:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:  # ValueError: bad JSON or bad UTF-8
            raise InputError(path, 1, f"cannot read config: {err}") from None
        if not isinstance(raw, dict):
            raise InputError(path, 1, f"a config is a JSON object, got {type(raw).__name__}")
        if raw.get("model_name", "slcvae") not in MODELS:
            raise InputError(path, 1, f"unknown model_name {raw.get('model_name')!r} (choose from {', '.join(MODELS)})")
        config = cls(model_name=raw.get("model_name", "slcvae"))
        raw = {k: _without_removed(k, v, path) if isinstance(v, dict) else v for k, v in raw.items()}
        # a field the saved config lacks was added later: the run was trained with the behaviour from before it
        apply_overrides(config, {s: {k: v for k, v in f.items() if k not in raw.get(s, {})} for s, f in LEGACY.items()}, path)
        apply_overrides(config, {k: v for k, v in raw.items() if k != "model_name"}, path)
        return config


# Fields added after runs were saved, with the value that reproduces those runs: `Config.load` gives a saved config
# that lacks one this value, whatever today's default is.
LEGACY: dict[str, dict[str, Any]] = {"model": {"attention": False, "copy": False}}

# Fields the studies tried and rejected, removed from the library, with the value that turned each off. A saved
# config with that value loads without it; any other value, or setting one, is an error naming the commit that
# still trains and loads such runs (the studies that used them say the same).
REMOVED: dict[str, dict[str, Any]] = {
    "slcvae": {"label_fade": 0.0, "label_prior": 0.0, "label_even": 0.0, "label_span": 0.0, "label_floor": 0.0,
               "watch_every": 1},
}  # fmt: skip
REMOVED_AT = "74649bf"  # the last commit with them

# The remedy each baseline name switches on; everything else is the plain CVAE.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "seq2seq": {},
    "cvae": {},
    "cvae-anneal": {"cvae": {"kl_anneal": "linear"}},
    "cvae-freebits": {"cvae": {"free_bits": 0.1}},
    "cvae-wdrop": {"cvae": {"word_dropout": 0.25}},
    "cvae-bow": {"cvae": {"bow_weight": 1.0}},
    "slcvae": {"cvae": {"bow_weight": 1.0}},  # on a CVAE + BOW base: z carries content from the start (docs/design/README.md)
    "lm": {},  # a target-side language model p(y), for MMI-antiLM reranking of seq2seq beams
}

CHOICES = {
    ("data", "tokenizer"): ("auto", "word", "char", "jieba", "bpe"),
    ("model", "context_norm"): ("none", "batch"),
    ("cvae", "kl_anneal"): ("none", "linear", "cyclical"),
    ("slcvae", "distance"): ("nll", "mean_sq", "sample_sq"),
    ("slcvae", "labeler_encoder"): ("own", "shared"),
    ("slcvae", "label_base"): ("none", "posterior"),
    ("slcvae", "start"): ("auto", "steps"),
}


# The valid range of every numeric field ("section.key": (rule, check)); a value outside is an InputError naming it.
_POSITIVE = (">= 1", lambda v: v >= 1)
_NONNEG = (">= 0", lambda v: v >= 0)
_SHARE = ("in (0, 1]", lambda v: 0 < v <= 1)
_PROB = ("in [0, 1)", lambda v: 0 <= v < 1)
_UNIT = ("in [0, 1]", lambda v: 0 <= v <= 1)
RANGES: dict[str, tuple[str, Any]] = {
    **{f"data.{k}": _POSITIVE for k in ("max_vocab", "min_freq", "max_source_len", "max_target_len", "max_turns")},
    **{f"model.{k}": _POSITIVE for k in ("embedding", "utterance", "context", "latent", "decoder", "mlp", "layers")},
    "model.dropout": _PROB,
    "cvae.anneal_steps": _POSITIVE,
    "cvae.anneal_ratio": _SHARE,
    "cvae.anneal_hold": _NONNEG,
    "cvae.free_bits": _NONNEG,
    "cvae.word_dropout": _PROB,
    "cvae.bow_weight": _NONNEG,
    **{
        f"slcvae.{k}": _NONNEG
        for k in (
            "label_weight",
            "label_bound",
            "warmup_steps",
            "ramp",
            "label_decay_steps",
            "label_lr",
            "label_move",
            "gate_kl",
        )
    },
    "slcvae.plateau": _SHARE,
    "slcvae.start_by": _SHARE,
    "slcvae.label_every": _POSITIVE,
    "slcvae.label_steps": _POSITIVE,
    **{f"train.{k}": _POSITIVE for k in ("batch_size", "max_steps", "eval_every", "log_every", "bucket_batches")},
    "data.encoder_tune": _NONNEG,
    **{f"train.{k}": _NONNEG for k in ("lr", "encoder_lr", "max_minutes", "iw_samples", "threads", "patience", "seed")},
    "train.grad_clip": ("> 0", lambda v: v > 0),
}


def apply_overrides(config: Config, tree: dict[str, Any], origin: str | Path) -> None:
    """Set `section.field` values from a nested dict, checking names and types."""
    for section, values in tree.items():
        target = getattr(config, section, None)
        if not dataclasses.is_dataclass(target) or not isinstance(values, dict):
            sections = [f.name for f in dataclasses.fields(config) if f.name != "model_name"]
            raise InputError(origin, None, f"unknown config section {section!r} (known: {', '.join(sections)})")
        for key, value in values.items():
            set_field(target, section, key, value, origin)


def _without_removed(section: str, values: dict[str, Any], origin: str | Path) -> dict[str, Any]:
    """A saved section less the removed fields it holds at their off value (others: `set_field`'s error)."""
    off = REMOVED.get(section, {})
    return {k: v for k, v in values.items() if not (k in off and v == off[k])}


def set_field(target: Any, section: str, key: str, value: Any, origin: str | Path) -> None:
    fields = {f.name: f for f in dataclasses.fields(target)}
    if key in REMOVED.get(section, {}):
        if value == REMOVED[section][key]:  # switched off: what the library does without it
            return
        raise InputError(origin, None, f"{section}.{key} = {value!r}: removed (the studies rejected it); commit "
                         f"{REMOVED_AT} trains and loads runs that use it")  # fmt: skip
    if key not in fields:
        raise InputError(origin, None, f"unknown config key {section}.{key} (known: {', '.join(fields)})")
    expected = type(getattr(target, key))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise InputError(origin, None, f"{section}.{key} must be {expected.__name__}, got {value!r}")
    allowed = CHOICES.get((section, key))
    if allowed and value not in allowed:
        raise InputError(origin, None, f"{section}.{key} must be one of {', '.join(allowed)}, got {value!r}")
    rule, check = RANGES.get(f"{section}.{key}", ("", None))
    if check is not None and (not math.isfinite(value) or not check(value)):
        raise InputError(origin, None, f"{section}.{key} must be {rule}, got {value!r}")
    setattr(target, key, value)


def parse_set(item: str) -> tuple[str, str, Any]:
    """Parse one `--set section.key=value`; the value is read as TOML (numbers, booleans) or kept as text."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise InputError("--set", None, f"expected section.key=value, got {item!r}")
    name, text = item.split("=", 1)
    section, key = name.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return section, key, value


# what a resumed run may change: its budget and how it is displayed and placed (training/trainer.py, compare)
RESUME_FREE = ("max_steps", "max_minutes", "progress", "tensorboard", "threads", "device")


def config_diff(saved: Config, wanted: Config, free: tuple[str, ...] = RESUME_FREE) -> list[str]:
    """`section.key: saved -> wanted` for every field that differs, except the train fields in `free`."""
    a, b = saved.to_dict(), wanted.to_dict()
    for d in (a, b):
        for key in free:
            d["train"].pop(key, None)
        if wanted.model_name != "slcvae":  # a section the model never reads cannot make two runs differ
            d.pop("slcvae")
        for key in ("encoder_fingerprint", "encoder_dim"):  # derived from data.encoder by training; checked when encoding
            d["data"].pop(key, None)
    diff = [] if a["model_name"] == b["model_name"] else [f"model: {a['model_name']!r} -> {b['model_name']!r}"]
    for section, values in b.items():
        if isinstance(values, dict):
            diff += [f"{section}.{k}: {a[section].get(k)!r} -> {v!r}" for k, v in values.items() if a[section].get(k) != v]
    return diff


def build_config(model_name: str, config_file: Path | None = None, sets: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the model's preset, then the TOML file, then each --set, in that order."""
    if model_name not in MODELS:
        raise InputError("--model", None, f"unknown model {model_name!r} (choose from {', '.join(MODELS)})")
    config = Config(model_name=model_name)
    apply_overrides(config, PRESETS[model_name], f"preset {model_name}")
    if config_file is not None:
        if not Path(config_file).is_file():
            raise InputError(config_file, 1, "no such file")
        try:
            tree = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise InputError(config_file, 1, f"invalid TOML: {err}") from None
        apply_overrides(config, tree, config_file)
    for item in sets:
        section, key, value = parse_set(item)
        apply_overrides(config, {section: {key: value}}, f"--set {item}")
    if config.model.copy and not config.model.attention:
        # the default copy = true means "copy when attending"; asked for by name without attention it is a mistake
        given = [f"--set {item}" for item in sets if parse_set(item)[:2] == ("model", "copy")]
        if config_file is not None and "copy" in tree.get("model", {}):
            given.insert(0, str(config_file))
        if given:
            raise InputError(given[-1], None, "model.copy = true needs model.attention = true (the gate mixes in the attention)")
        config.model.copy = False
    if config.data.encoder_tune and not config.data.encoder:
        raise InputError("data.encoder_tune", None, f"{config.data.encoder_tune} tuned layers need data.encoder")
    return config
