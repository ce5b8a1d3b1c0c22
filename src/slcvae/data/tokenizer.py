"""Tokenization with Hugging Face `tokenizers`, saved with the model.

- `bpe`: byte-level BPE (GPT-2's scheme) trained on the corpus: subwords, any text encodes without <unk>, and
  outputs decode to plain text as written (cased with data.lowercase = false, spaces and punctuation as they were).
- `word`: words and punctuation apart (`\\w+|[^\\w\\s]+`), for space-separated languages.
- `char`: every CJK character is a token, runs of other letters or digits stay whole.
- `jieba`: Chinese words from jieba (optional dependency), split in Python before `tokenizers`.
- `auto`: `char` when most letters of the corpus are CJK, else `word`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from slcvae.errors import InputError
from slcvae.io import replace_atomic, write_json_atomic

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = [PAD, UNK, BOS, EOS]  # ids 0..3, in this order
CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{CJK}]")
_LETTER_RE = re.compile(r"\w")


def detect_mode(texts: Iterable[str], sample: int = 2000) -> str:
    """`char` when more than half of the word characters in the first `sample` texts are CJK."""
    cjk = letters = 0
    for i, text in enumerate(texts):
        if i == sample:
            break
        cjk += len(_CJK_RE.findall(text))
        letters += len(_LETTER_RE.findall(text))
    return "char" if letters and cjk / letters > 0.5 else "word"


class TextTokenizer:
    """Text <-> ids. ids 0..3 are <pad>, <unk>, <bos>, <eos>."""

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __init__(self, tokenizer: Tokenizer, mode: str):
        self.tokenizer, self.mode = tokenizer, mode
        self._jieba = _load_jieba() if mode == "jieba" else None

    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        mode: str = "auto",
        lowercase: bool = True,
        max_vocab: int = 10000,
        min_freq: int = 1,
    ) -> TextTokenizer:
        if mode == "auto":
            mode = detect_mode(texts)
        norms = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
        if mode == "bpe":
            return cls._train_bpe(texts, normalizers.Sequence(norms), max_vocab, min_freq)
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        tokenizer.normalizer = normalizers.Sequence(norms)
        if mode == "char":
            tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
                [pre_tokenizers.Split(Regex(f"[{CJK}]"), behavior="isolated"), pre_tokenizers.Whitespace()]
            )
        else:
            tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(
            vocab_size=max_vocab + len(SPECIALS),
            min_frequency=min_freq,
            special_tokens=SPECIALS,
            show_progress=False,
        )
        self = cls(tokenizer, mode)
        tokenizer.train_from_iterator(self._presplit(texts), trainer)
        return self

    @classmethod
    def _train_bpe(cls, texts: Sequence[str], normalizer, max_vocab: int, min_freq: int) -> TextTokenizer:
        """Byte-level BPE: the 256 bytes are in the vocabulary, so every text encodes and nothing becomes <unk>."""
        tokenizer = Tokenizer(models.BPE())
        tokenizer.normalizer = normalizer
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)  # a word is one token mid-text and first: copyable
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=max_vocab + len(SPECIALS),
            min_frequency=min_freq,
            special_tokens=SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer)
        return cls(tokenizer, "bpe")

    def _presplit(self, texts: Iterable[str]) -> Iterable[str]:
        if self._jieba is None:
            return texts
        return (" ".join(self._jieba.cut(t)) for t in texts)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without <bos>/<eos>."""
        return [e.ids for e in self.tokenizer.encode_batch(list(self._presplit(texts)))]

    def tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.tokenizer.id_to_token(i) for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text up to the first <eos>; bpe decodes the bytes as written, word mode joins with spaces, CJK
        characters join tightly."""
        out: list[str] = []
        kept: list[int] = []
        for i in ids:
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            kept.append(i)
            out.append(self.tokenizer.id_to_token(i))
        if self.mode == "bpe":  # <unk> cannot occur: every byte has a token
            return self.tokenizer.decode(kept, skip_special_tokens=True).strip()
        if self.mode == "word":
            return " ".join(out)
        text = ""
        for token in out:
            # a space only between two non-CJK tokens, e.g. "T 恤" -> "T恤" but "100 cm" stays
            if text and not _CJK_RE.match(token[0]) and not _CJK_RE.match(text[-1]):
                text += " "
            text += token
        return text

    def save(self, directory: Path) -> None:
        replace_atomic(directory / "tokenizer.json", lambda tmp: self.tokenizer.save(tmp))
        write_json_atomic(directory / "tokenizer_mode.json", {"mode": self.mode})

    @classmethod
    def load(cls, directory: Path) -> TextTokenizer:
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise InputError(path, 1, "no such file (is this a model directory written by `slcvae train`?)")
        mode_path = directory / "tokenizer_mode.json"
        try:
            mode = json.loads(mode_path.read_text(encoding="utf-8"))["mode"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(mode_path, 1, f"missing or unreadable tokenizer mode ({type(err).__name__})") from None
        try:
            return cls(Tokenizer.from_file(str(path)), mode)
        except Exception as err:  # the tokenizers library raises its own Exception type for a damaged file
            raise InputError(path, 1, f"unreadable tokenizer: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


def _load_jieba():
    try:
        import jieba
    except ImportError:
        raise InputError("data.tokenizer", None, "tokenizer 'jieba' needs jieba: pip install \"slcvae[jieba]\"") from None
    jieba.setLogLevel(60)
    return jieba
