"""One loader for every model folder, used by the CLI, the Python API, the server, compare and bench.

A model folder is either a run folder written by `slcvae train --out` (config.json, the tokenizer, best.pt / last.pt
checkpoints read with `torch.load(weights_only=True)`, generation_config.json) or an exported one written by `slcvae export` /
`Generator.save_pretrained` (config.json, the tokenizer, `model.safetensors` and `slcvae.json`; nothing unpickled).
Both load the same way everywhere. Inference and scoring import this module, never `training/`.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from slcvae.config import Config
from slcvae.data.tokenizer import TextTokenizer
from slcvae.errors import InputError
from slcvae.generation import config as generation_config
from slcvae.generation.config import GenerationConfig
from slcvae.models import Seq2Seq, build_model

FORMAT = "slcvae-pretrained"
FORMAT_VERSION = 1  # bump when the folder's layout or a file's meaning changes; loading refuses newer versions
WEIGHTS, META = "model.safetensors", "slcvae.json"


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda`, `cuda:N` or `auto` (cuda when available), checked at the boundary."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device", None, f"{name!r} asked for, but torch sees no CUDA device")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError("--device", None, f"unknown device {name!r} (cpu, cuda, cuda:N or auto)") from None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by `slcvae train`: tensors and plain values only (no unpickling of code).

    A truncated or foreign file is an InputError naming it, not a traceback from the zip reader.
    """
    try:
        ckpt = torch.load(path, weights_only=True, map_location=map_location)
    except FileNotFoundError:
        raise InputError(path, None, "no such checkpoint") from None
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise InputError(path, None, f"corrupt or truncated checkpoint ({str(err).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise InputError(path, None, "not a checkpoint written by `slcvae train`")
    return ckpt


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise InputError(path, 1, f"unreadable JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputError(path, 1, f"expected a JSON object, got {type(data).__name__}")
    return data


def load_model(path: str | Path, checkpoint: str = "best") -> tuple[Seq2Seq, TextTokenizer, Config, dict[str, Any]]:
    """(model in eval mode, tokenizer, config, the run's summary) from a run folder or an exported folder.

    checkpoint: for a run folder, `best` (falls back to `last` with a message when no validation was eligible) or
    `last`; an exported folder has one set of weights and ignores it.
    """
    path = Path(path)
    if checkpoint not in ("best", "last"):
        raise InputError("--checkpoint", None, f"must be best or last, got {checkpoint!r}")
    if not path.is_dir():
        raise InputError(path, None, "no such model folder (a `slcvae train --out` folder or one written by `slcvae export`)")
    if not (path / META).is_file():
        model, tokenizer, config = _load_run_folder(path, checkpoint)
        return model, tokenizer, config, read_json(path / "summary.json") if (path / "summary.json").is_file() else {}
    meta = read_json(path / META)
    if meta.get("format") != FORMAT or not isinstance(meta.get("format_version"), int):
        raise InputError(path / META, 1, f"not a {FORMAT} folder (format {meta.get('format')!r})")
    if meta["format_version"] > FORMAT_VERSION:
        newer = f"format version {meta['format_version']} is newer than this slcvae reads ({FORMAT_VERSION}); upgrade slcvae"
        raise InputError(path / META, 1, newer)
    config = Config.load(path / "config.json")
    tokenizer = TextTokenizer.load(path)
    model = build_model(config, tokenizer.vocab_size, tokenizer.unk_id)
    try:
        state = load_file(path / WEIGHTS)
    except (OSError, SafetensorError) as err:
        raise InputError(path / WEIGHTS, None, f"unreadable weights ({err})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        fit = f"weights do not fit config.json (missing {missing[:3]}, unexpected {unexpected[:3]})"
        raise InputError(path / WEIGHTS, None, fit)
    return model.eval(), tokenizer, config, meta.get("summary", {})


def load_model_dir(model_dir: Path, checkpoint: str = "best") -> tuple[Seq2Seq, TextTokenizer, Config]:
    """A trained model, its tokenizer and config from a run folder or an exported one (`load_model` less the summary)."""
    return load_model(model_dir, checkpoint)[:3]


def _load_run_folder(model_dir: Path, checkpoint: str) -> tuple[Seq2Seq, TextTokenizer, Config]:
    path = model_dir / f"{checkpoint}.pt"
    if checkpoint == "best" and not path.is_file() and (model_dir / "last.pt").is_file():
        print(f"{path} does not exist (no validation was eligible as best); using last.pt", file=sys.stderr)
        path = model_dir / "last.pt"
    if not path.is_file():
        raise InputError(path, 1, "no such checkpoint (is this a folder written by `slcvae train` or `slcvae export`?)")
    model, tokenizer, cfg, _ = load_run_checkpoint(model_dir, path)
    return model, tokenizer, cfg


def load_run_checkpoint(model_dir: Path, path: Path) -> tuple[Seq2Seq, TextTokenizer, Config, dict]:
    """The model of a `slcvae train --out` folder (its config and tokenizer) with the weights of any checkpoint file
    it wrote, even a copy taken mid-run, in eval mode; also the checkpoint itself (its step and validation metrics)."""
    cfg = Config.load(Path(model_dir) / "config.json")
    tokenizer = TextTokenizer.load(Path(model_dir))
    ckpt = load_checkpoint(Path(path))
    model = build_model(cfg, tokenizer.vocab_size, tokenizer.unk_id)
    model.load_state_dict(ckpt["model"])
    return model.eval(), tokenizer, cfg, ckpt


def load_generation_config(path: str | Path, model_name: str) -> GenerationConfig:
    """A run or exported folder's decoding defaults (generation_config.json; a new folder's where it has none)."""
    return generation_config.load(Path(path), model_name)


def load_lm(lm_dir: Path | None, tokenizer):
    """The anti-language model for MMI decoding; it must share the generator's vocabulary."""
    if lm_dir is None:
        raise InputError("lm", None, "MMI decoding needs lm, a folder written by `slcvae train --model lm`")
    lm, lm_tok, lm_cfg = load_model_dir(Path(lm_dir), "last")
    if lm_cfg.model_name != "lm":
        raise InputError(Path(lm_dir) / "config.json", 1, f"holds model {lm_cfg.model_name!r}, not an lm")
    if lm_tok.tokenizer.get_vocab() != tokenizer.tokenizer.get_vocab():
        raise InputError(Path(lm_dir) / "tokenizer.json", 1, "the language model's vocabulary differs from the generator's")
    return lm
