"""Generate N outputs per source.

Each source is encoded once; the model's `init_state(batch, N, latent)` expands it to N rows
(with N latent draws for CVAE-family models), and one batched loop decodes all rows, stopping as
soon as every row has produced <eos>.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from slcvae.config import DataConfig
from slcvae.data.batching import collate, encode
from slcvae.data.corpus import Example
from slcvae.data.tokenizer import TextTokenizer
from slcvae.errors import InputError
from slcvae.generation import processors
from slcvae.generation.config import SPELL_API, GenerationConfig
from slcvae.models.state import State

StepFn = Callable[[torch.Tensor, State], tuple[torch.Tensor, State]]
SOURCE_ONLY = ("diverse_beam", "mmi")  # seq2seq decoding baselines: one search per source, no latent


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
    model,
    tokenizer: TextTokenizer,
    examples: Sequence[Example],
    data_cfg: DataConfig,
    cfg: GenerationConfig,
    lm=None,
    spell: Callable[[str], str] = SPELL_API,
    stats: dict | None = None,
) -> list[list[str]]:
    """N output texts for each example's source, in input order: [len(examples)][num_return_sequences].

    `lm` is the anti-language model that MMI decoding needs (a trained `lm` model). `spell` names options in
    errors as the caller does. With cfg.distinct, duplicates are redrawn (`fill_distinct`); a source that still has
    fewer than N different outputs after max_draws returns the ones it has, and stats["drawn"] (when a dict is
    given) says how many outputs each source drew.
    """
    cfg.check(spell)
    if cfg.latent == "posterior" and not model.has_latent:
        raise InputError(spell("latent"), None, "posterior needs a latent-variable model, not seq2seq")
    if cfg.decode in SOURCE_ONLY and model.has_latent:
        option = spell("lm" if cfg.decode == "mmi" else "num_beam_groups")
        raise InputError(option, None, f"{cfg.decode} is a seq2seq decoding baseline; latent models vary z instead")
    if cfg.noise > 0 and model.has_latent:
        raise InputError(spell("noise"), None, "is a seq2seq decoding baseline; latent models vary z instead")
    if cfg.decode == "mmi" and lm is None:
        raise InputError(spell("lm"), None, "MMI decoding needs a trained language model (slcvae train --model lm)")
    model.eval()
    device = next(model.parameters()).device
    data = encode(examples, tokenizer, data_cfg)
    decoder = BatchDecoder(model, tokenizer, data_cfg, cfg, lm.to(device) if lm is not None else None)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        results = decoder.run(data, range(len(examples)), cfg.num_return_sequences, device)
        drawn = [cfg.num_return_sequences] * len(results)
        if cfg.distinct:
            results, drawn = fill_distinct(results, lambda rows, n: decoder.run(data, rows, n, device), cfg)
    if stats is not None:
        stats["drawn"] = drawn
    return results


def fill_distinct(
    results: list[list[str]], draw: Callable[[list[int], int], list[list[str]]], cfg: GenerationConfig
) -> tuple[list[list[str]], list[int]]:
    """Redraw for the sources with duplicate outputs until each has N different ones or has drawn max_draws.

    Each round draws up to N more for every source still short (`draw(rows, n)`), continuing the same random
    stream, so the result is repeatable for a seed. Returns the outputs (first-seen order) and the draws per source.
    """
    n = cfg.num_return_sequences
    cap = cfg.max_draws or 5 * n
    unique = [list(dict.fromkeys(r)) for r in results]
    drawn = [len(r) for r in results]
    while True:
        short = [i for i, u in enumerate(unique) if len(u) < n and drawn[i] < cap]
        if not short:
            break
        more = min(n, cap - drawn[short[0]])  # every short source has drawn as many: it was short in every round
        for i, samples in zip(short, draw(short, more), strict=True):
            drawn[i] += more
            unique[i] = list(dict.fromkeys(unique[i] + samples))
    return [u[:n] for u in unique], drawn


class BatchDecoder:
    """Decodes N outputs for any rows of an encoded corpus, batch by batch, in the mode the config selects."""

    def __init__(self, model, tokenizer: TextTokenizer, data_cfg: DataConfig, cfg: GenerationConfig, lm=None):
        self.model, self.tokenizer, self.cfg, self.lm = model, tokenizer, cfg, lm
        # max_new_tokens counts tokens: an output cut there needs no <eos>; the default leaves room for one
        self.max_len = cfg.max_new_tokens or data_cfg.max_target_len + 1
        bans = dict(
            suppress=[tokenizer.unk_id] if cfg.suppress_unk else [],
            min_new_tokens=cfg.min_new_tokens,
            eos_id=tokenizer.eos_id,
            no_repeat_ngram_size=cfg.no_repeat_ngram_size,
            repetition_penalty=cfg.repetition_penalty,
        )
        self.procs = processors.build(cfg.temperature, cfg.top_k, cfg.top_p, sampling=cfg.decode == "sample", **bans)

    def run(self, data, rows: Sequence[int], n: int, device: torch.device) -> list[list[str]]:
        """n output texts for each of `rows`: [len(rows)][n]."""
        results: list[list[str]] = []
        rows = list(rows)
        for start in range(0, len(rows), self.cfg.batch_size):
            batch = collate(data, rows[start : start + self.cfg.batch_size], self.tokenizer).to(device)
            texts = [self.tokenizer.decode(row.tolist()) for row in self.ids(batch, n)]
            results.extend(texts[i : i + n] for i in range(0, len(texts), n))
        return results

    def ids(self, batch, n: int) -> torch.Tensor:
        """Token ids [batch * n, <= max_len], source by source."""
        model, cfg, procs, max_len = self.model, self.cfg, self.procs, self.max_len
        bos, eos = self.tokenizer.bos_id, self.tokenizer.eos_id
        if cfg.decode == "beam" and not model.has_latent:
            # no latent to vary: one wide beam per source, its N best hypotheses are the samples
            h = model.init_state(batch, 1, cfg.latent)
            return beam_search(model.step, h, bos, eos, max_len, max(cfg.num_beams, n), n, procs=procs)[0].flatten(0, 1)
        if cfg.decode == "diverse_beam":
            groups = cfg.num_beam_groups
            width = groups * max(1, -(-max(cfg.num_beams, n) // groups))  # >= N, a multiple of the groups
            h = model.init_state(batch, 1, cfg.latent)
            return beam_search(model.step, h, bos, eos, max_len, width, n, groups, cfg.diversity_penalty, procs)[0].flatten(0, 1)
        if cfg.decode == "mmi":
            h = model.init_state(batch, 1, cfg.latent)
            width = max(cfg.num_beams, n)
            anti = AntiLM(self.lm, bos, cfg.mmi_weight, cfg.mmi_tokens)
            ids, logprob, lengths = beam_search(model.step, h, bos, eos, max_len, width, width, procs=procs, bias=anti)
            return mmi_rerank(ids, logprob, lengths, self.lm, bos, cfg.mmi_weight, cfg.mmi_tokens, n).flatten(0, 1)
        if cfg.decode == "beam":
            h = model.init_state(batch, n, cfg.latent)
            return beam_search(model.step, h, bos, eos, max_len, cfg.num_beams, 1, procs=procs)[0][:, 0]
        h = model.init_state(batch, n, cfg.latent, noise=cfg.noise) if cfg.noise else model.init_state(batch, n, cfg.latent)
        return sample_loop(model.step, h, bos, eos, max_len, cfg.decode == "greedy", procs)
