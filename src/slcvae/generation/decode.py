"""Generate N outputs per source.

Each source is encoded once; the model's `init_state(batch, N, latent)` expands it to N rows
(with N latent draws for CVAE-family models), and one batched loop decodes all rows, stopping as
soon as every row has produced <eos>.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from slcvae.config import DataConfig
from slcvae.data.batching import collate, encode
from slcvae.data.corpus import Example
from slcvae.data.tokenizer import TextTokenizer
from slcvae.errors import InputError
from slcvae.generation import processors
from slcvae.models.state import State

StepFn = Callable[[torch.Tensor, State], tuple[torch.Tensor, State]]
DECODES = ("greedy", "sample", "beam", "diverse_beam", "mmi")
SOURCE_ONLY = ("diverse_beam", "mmi")  # seq2seq decoding baselines: one search per source, no latent
LATENTS = ("prior", "posterior")


@dataclass
class GenerateConfig:
    num_samples: int = 10  # outputs per source: the paper's and its peers' N
    decode: str = "greedy"  # greedy | sample | beam; greedy + prior z puts all diversity in z
    temperature: float = 1.0  # sampling: logits / T
    top_k: int = 0  # sampling: keep the k most likely tokens; 0 = all
    top_p: float = 1.0  # sampling: nucleus mass; 1 = all
    beam_size: int = 5  # beam: width (seq2seq widens it to num_samples to return an N-best list)
    beam_groups: int = 0  # diverse_beam: groups G (Vijayakumar et al. 2016); 0 = one group per output, their best setting
    diversity: float = 0.5  # diverse_beam: penalty per earlier group that chose the same token at this step (their lambda)
    lm: str = ""  # mmi: folder of a trained `lm` model, p(y) (in a compare spec: the name of an lm entry)
    mmi_weight: float = 0.5  # mmi: lambda in log p(y|x) - lambda log p_LM(y_1..gamma) (Li et al. 2016)
    mmi_tokens: int = 5  # mmi: gamma, the anti-LM scores only the first tokens, where generic replies are decided
    latent: str = "prior"  # prior: z ~ p(z|x), the test protocol | posterior: z ~ q(z|x,y) from the first target
    noise: float = 0.0  # seq2seq + noise (Zhang et al. 2019's baseline): std of Gaussian noise on the context vector, per sample
    suppress_unk: bool = False  # never emit <unk>; off so scores show what the model does (the Python API turns it on)
    no_repeat_ngram_size: int = 0  # ban repeating any n-gram of this size within an output; 0 = off
    min_new_tokens: int = 0  # no <eos> before this many tokens; 0 = off
    repetition_penalty: float = 1.0  # CTRL's penalty on already generated tokens; 1 = off
    max_new_tokens: int = 0  # output length limit in tokens; 0 = the model's data.max_target_len
    batch_size: int = 64  # sources per batch (each expands to num_samples rows)
    seed: int = 1234  # seeds z and token sampling (in a forked RNG: the caller's global torch RNG is left as it was)

    def validate(self) -> None:
        checks = [
            ("--num-samples", self.num_samples >= 1, "must be >= 1", self.num_samples),
            ("--decode", self.decode in DECODES, f"must be one of {', '.join(DECODES)}", self.decode),
            ("--latent", self.latent in LATENTS, f"must be one of {', '.join(LATENTS)}", self.latent),
            ("--top-p", 0 < self.top_p <= 1, "must be in (0, 1]", self.top_p),
            ("--top-k", self.top_k >= 0, "must be >= 0", self.top_k),
            ("--temperature", self.temperature > 0, "must be > 0", self.temperature),
            ("--beam-size", self.beam_size >= 1, "must be >= 1", self.beam_size),
            ("--beam-groups", self.beam_groups >= 0, "must be >= 0", self.beam_groups),
            ("--diversity", self.diversity >= 0, "must be >= 0", self.diversity),
            ("--lm", self.decode != "mmi" or bool(self.lm), "is required by --decode mmi", self.lm),
            ("--mmi-tokens", self.mmi_tokens >= 1, "must be >= 1", self.mmi_tokens),
            ("--noise", self.noise >= 0, "must be >= 0", self.noise),
            ("--noise", self.noise == 0 or self.decode in ("greedy", "sample"), "goes with greedy or sample", self.noise),
            ("--no-repeat-ngram-size", self.no_repeat_ngram_size >= 0, "must be >= 0", self.no_repeat_ngram_size),
            ("--min-new-tokens", self.min_new_tokens >= 0, "must be >= 0", self.min_new_tokens),
            ("--repetition-penalty", self.repetition_penalty > 0, "must be > 0", self.repetition_penalty),
            ("--max-new-tokens", self.max_new_tokens >= 0, "must be >= 0", self.max_new_tokens),
            ("--batch-size", self.batch_size >= 1, "must be >= 1", self.batch_size),
        ]
        for option, ok, rule, value in checks:
            if not ok:
                raise InputError(option, None, f"{rule}, got {value!r}")


def sample_tokens(logits: torch.Tensor) -> torch.Tensor:
    """One exact draw per row from softmax(logits): [n, vocab] -> [n].

    Inverse CDF: unnormalized exp, a cumulative sum and one uniform per row. For 640 rows x 10k
    words on this project's 2-core CPU: 10.7 ms, against 136 ms for torch.multinomial and 132 ms
    for Gumbel-max with exponential noise (bench/sampling.py). side="right" never picks a
    zero-probability token, even for u = 0.
    """
    weights = (logits - logits.max(-1, keepdim=True).values).exp()
    cdf = weights.cumsum(-1)
    u = torch.rand(logits.shape[0], 1, device=logits.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, side="right").squeeze(1).clamp_(max=logits.shape[-1] - 1)


def sample_loop(step: StepFn, h: State, bos: int, eos: int, max_len: int, greedy: bool, procs: Sequence = ()) -> torch.Tensor:
    """Greedy or ancestral decoding of all rows at once: a state of n rows -> ids [n, <= max_len].

    Rows that produced <eos> leave the batch, so each step costs only the rows still decoding.
    Sampling draws exactly from softmax(logits) by inverting the CDF (`sample_tokens`). `procs`
    (processors.py) see each live row's tokens so far and may ban or reweigh the next one.
    """
    n, dev = h.rows, h.h.device
    tokens = torch.full((n,), bos, dtype=torch.long, device=dev)
    out = torch.zeros(n, max_len, dtype=torch.long, device=dev)
    alive = torch.arange(n, device=dev)  # output rows still decoding, in the order of `tokens` and `h`
    length = 0
    for t in range(max_len):
        logits, h = step(tokens, h)
        if procs:
            ids = out[alive, :t]
            for proc in procs:
                logits = proc(ids, logits)
        tokens = logits.argmax(-1) if greedy else sample_tokens(logits)
        out[alive, t] = tokens
        length = t + 1
        ended = tokens == eos
        if ended.any():
            keep = ~ended
            alive, tokens, h = alive[keep], tokens[keep], h.index(keep)
            if alive.numel() == 0:
                break
    return out[:, :length]


def beam_search(
    step: StepFn,
    h: State,
    bos: int,
    eos: int,
    max_len: int,
    width: int,
    n_best: int,
    groups: int = 1,
    diversity: float = 0.0,
    procs: Sequence = (),
    bias: Callable[[torch.Tensor], torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Beam search for every row: a state of n rows -> ids [n, n_best, <= max_len], log p [n, n_best], lengths [n, n_best].

    Ended hypotheses stay in the beam with a frozen score; the final ranking divides the
    log-probability by the length, so short outputs are not favoured merely for being short.
    groups > 1 is diverse beam search (Vijayakumar et al. 2016): `groups` beams of width // groups
    choose in turn at each step, and a token that earlier groups chose at this step costs
    `diversity` per choice (Hamming diversity). The penalty steers the search only; the returned
    log-probabilities and the final ranking are the model's own (after `procs`, as in sampling).
    `bias(prefixes [rows, t])` -> [rows, vocab] or None is another search-only term added to each candidate's
    score (MMI-antiLM's `AntiLM`); ended hypotheses get none.
    """
    n, dev = h.rows, h.h.device
    if width % groups:
        raise ValueError(f"beam width {width} is not a multiple of {groups} groups")
    gw = width // groups
    h = h.repeat(width)  # n * width rows, ordered [n, groups, gw]
    scores = torch.zeros(n, groups, gw, device=dev)  # search scores (with the diversity penalty)
    scores[:, :, 1:] = -torch.inf  # all beams of a group start identical: keep one alive at t = 0
    logprob = torch.zeros(n, groups, gw, device=dev)  # the model's log-probabilities
    seqs = torch.zeros(n * width, 0, dtype=torch.long, device=dev)
    tokens = torch.full((n * width,), bos, dtype=torch.long, device=dev)
    done = torch.zeros(n * width, dtype=torch.bool, device=dev)
    lengths = torch.zeros(n * width, device=dev)
    offsets = torch.arange(n, device=dev).unsqueeze(1) * width
    for _ in range(max_len):
        logits, h = step(tokens, h)
        for proc in procs:
            logits = proc(seqs, logits)
        logp = logits.log_softmax(-1)
        vocab_size = logp.shape[-1]
        # an ended beam continues only with padding (id 0) at no cost
        logp[done] = -torch.inf
        logp[done, 0] = 0.0
        logp = logp.view(n, groups, gw, vocab_size)
        extra = bias(seqs) if bias is not None else None
        if extra is not None:
            extra = extra.masked_fill(done.unsqueeze(1), 0.0).view(n, groups, gw, vocab_size)
        chosen = torch.zeros(n, vocab_size, device=dev)  # how often each token was chosen at this step so far
        picks = []
        for g in range(groups):
            penalty = diversity * chosen.unsqueeze(1) if g and diversity else 0.0
            steer = extra[:, g] if extra is not None else 0.0
            cand = (scores[:, g].unsqueeze(-1) + logp[:, g] - penalty + steer).view(n, gw * vocab_size)
            best, flat = cand.topk(gw, dim=-1)  # [n, gw]
            gained = logprob[:, g].gather(1, flat // vocab_size) + logp[:, g].reshape(n, -1).gather(1, flat)
            picks.append((best, gained, flat // vocab_size + g * gw, flat % vocab_size))
            chosen.scatter_add_(1, flat % vocab_size, torch.ones_like(best))
            chosen[:, 0] = 0.0  # padding after <eos> is no choice
        scores = torch.stack([p[0] for p in picks], 1)
        logprob = torch.stack([p[1] for p in picks], 1)
        src = (torch.cat([p[2] for p in picks], 1) + offsets).view(-1)
        tokens = torch.cat([p[3] for p in picks], 1).view(-1)
        seqs = torch.cat([seqs[src], tokens.unsqueeze(1)], 1)
        h, done, lengths = h.index(src), done[src], lengths[src]
        lengths = lengths + (~done).float()
        done = done | (tokens == eos)
        if done.all():
            break
    flat_lp, lengths = logprob.view(n, width), lengths.view(n, width)
    order = (flat_lp / lengths.clamp(min=1)).argsort(dim=-1, descending=True)[:, :n_best]
    rows = (order + offsets).view(-1)
    return seqs[rows].view(n, n_best, -1), flat_lp.gather(1, order), lengths.gather(1, order)


class AntiLM:
    """MMI-antiLM's search term (Li et al. 2016): -weight * log p_LM(next token | prefix) while the prefix is
    shorter than gamma, nothing after. As a `beam_search` bias it steers which hypotheses the beam keeps, so the
    beam holds other replies than plain beam search does; reranking its final list alone (`mmi_rerank`) cannot
    change which N replies a beam of width N returns. The LM reads each prefix afresh (at most gamma tokens)."""

    def __init__(self, lm, bos: int, weight: float, gamma: int):
        self.lm, self.bos, self.weight, self.gamma = lm, bos, weight, gamma

    def __call__(self, prefixes: torch.Tensor) -> torch.Tensor | None:
        if prefixes.shape[1] >= self.gamma or self.weight == 0:
            return None
        rows = prefixes.shape[0]
        logits, h = self.lm.step(torch.full((rows,), self.bos, dtype=torch.long, device=prefixes.device),
                                 self.lm.start_state(rows))  # fmt: skip
        for t in range(prefixes.shape[1]):
            logits, h = self.lm.step(prefixes[:, t], h)
        return -self.weight * logits.log_softmax(-1)


def mmi_rerank(
    ids: torch.Tensor, logprob: torch.Tensor, lengths: torch.Tensor, lm, bos: int, weight: float, gamma: int, keep: int
) -> torch.Tensor:
    """MMI-antiLM (Li et al. 2016) over N-best lists: ids [n, W, L] -> the `keep` best [n, keep, L] by

        log p(y|x) / |y|  -  weight * log p_LM(y_1..y_gamma) / min(|y|, gamma)

    Both terms per token, like the beam's own ranking; the anti-LM sees only the first gamma tokens
    because generic replies are decided there and longer LM terms reward ungrammatical endings.
    """
    n, width, length = ids.shape
    flat = ids.reshape(n * width, length)
    k = min(gamma, length)
    prefix_len = lengths.reshape(-1).long().clamp(min=1, max=k)  # tokens scored, <eos> included
    target = torch.cat([torch.full((n * width, 1), bos, dtype=torch.long, device=ids.device), flat[:, :k]], 1)
    target = target * (torch.arange(k + 1, device=ids.device) <= prefix_len.unsqueeze(1))  # pad past the prefix
    lm_logp = lm.prefix_log_prob(target, prefix_len + 1).view(n, width)
    score = logprob / lengths.clamp(min=1) - weight * lm_logp / prefix_len.view(n, width)
    order = score.argsort(dim=-1, descending=True)[:, :keep]
    return ids.gather(1, order.unsqueeze(-1).expand(-1, -1, length))


@torch.inference_mode()
def generate(
    model, tokenizer: TextTokenizer, examples: Sequence[Example], data_cfg: DataConfig, cfg: GenerateConfig, lm=None
) -> list[list[str]]:
    """N output texts for each example's source, in input order: [len(examples)][num_samples].

    `lm` is the anti-language model that --decode mmi needs (a trained `lm` model).
    """
    cfg.validate()
    if cfg.latent == "posterior" and not model.has_latent:
        raise InputError("--latent", None, "posterior needs a latent-variable model, not seq2seq")
    if cfg.decode in SOURCE_ONLY and model.has_latent:
        raise InputError("--decode", None, f"{cfg.decode} is a seq2seq decoding baseline; latent models vary z instead")
    if cfg.noise > 0 and model.has_latent:
        raise InputError("--noise", None, "is a seq2seq decoding baseline; latent models vary z instead")
    if cfg.decode == "mmi" and lm is None:
        raise InputError("--lm", None, "--decode mmi needs a trained language model (slcvae train --model lm)")
    model.eval()
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        return _generate(model, tokenizer, examples, data_cfg, cfg, lm, device)


def _generate(
    model,
    tokenizer: TextTokenizer,
    examples: Sequence[Example],
    data_cfg: DataConfig,
    cfg: GenerateConfig,
    lm,
    device: torch.device,
) -> list[list[str]]:
    data = encode(examples, tokenizer, data_cfg)
    # max_new_tokens counts words: an output cut there needs no <eos>; the default leaves room for one
    n, max_len = cfg.num_samples, cfg.max_new_tokens or data_cfg.max_target_len + 1
    bos, eos = tokenizer.bos_id, tokenizer.eos_id
    bans = dict(
        suppress=[tokenizer.unk_id] if cfg.suppress_unk else [],
        min_new_tokens=cfg.min_new_tokens,
        eos_id=eos,
        no_repeat_ngram_size=cfg.no_repeat_ngram_size,
        repetition_penalty=cfg.repetition_penalty,
    )
    procs = processors.build(cfg.temperature, cfg.top_k, cfg.top_p, sampling=cfg.decode == "sample", **bans)
    results: list[list[str]] = []
    for start in range(0, len(examples), cfg.batch_size):
        batch = collate(data, range(start, min(start + cfg.batch_size, len(examples))), tokenizer).to(device)
        if cfg.decode == "beam" and not model.has_latent:
            # no latent to vary: one wide beam per source, its N best hypotheses are the samples
            h = model.init_state(batch, 1, cfg.latent)
            ids = beam_search(model.step, h, bos, eos, max_len, max(cfg.beam_size, n), n, procs=procs)[0].flatten(0, 1)
        elif cfg.decode == "diverse_beam":
            groups = cfg.beam_groups or n
            width = groups * max(1, -(-max(cfg.beam_size, n) // groups))  # >= N, a multiple of the groups
            h = model.init_state(batch, 1, cfg.latent)
            ids = beam_search(model.step, h, bos, eos, max_len, width, n, groups, cfg.diversity, procs)[0].flatten(0, 1)
        elif cfg.decode == "mmi":
            h = model.init_state(batch, 1, cfg.latent)
            width = max(cfg.beam_size, n)
            lm = lm.to(device)
            anti = AntiLM(lm, bos, cfg.mmi_weight, cfg.mmi_tokens)
            ids, logprob, lengths = beam_search(model.step, h, bos, eos, max_len, width, width, procs=procs, bias=anti)
            ids = mmi_rerank(ids, logprob, lengths, lm, bos, cfg.mmi_weight, cfg.mmi_tokens, n).flatten(0, 1)
        elif cfg.decode == "beam":
            h = model.init_state(batch, n, cfg.latent)
            ids = beam_search(model.step, h, bos, eos, max_len, cfg.beam_size, 1, procs=procs)[0][:, 0]
        else:
            h = model.init_state(batch, n, cfg.latent, noise=cfg.noise) if cfg.noise else model.init_state(batch, n, cfg.latent)
            ids = sample_loop(model.step, h, bos, eos, max_len, cfg.decode == "greedy", procs)
        texts = [tokenizer.decode(row.tolist()) for row in ids]
        results.extend(texts[i : i + n] for i in range(0, len(texts), n))
    return results
