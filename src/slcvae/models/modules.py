"""Building blocks shared by every model family: encoders, Gaussian heads, KL, decoder, BOW head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from slcvae.config import DataConfig, ModelConfig
from slcvae.data.batching import Batch
from slcvae.models.softmax import linear_cross_entropy
from slcvae.models.state import Memory, State
from slcvae.pretrained import Reader


def uniform(lens: torch.Tensor, width: int) -> bool:
    """True when every sequence fills the padded width: the RNN can skip packing (same math, faster on CPU)."""
    return bool((lens == width).all())


def final_state(rnn: nn.GRU, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """The top layer's last real state of each sequence: x [n, len, in] (batch first) -> [directions, n, hidden].

    Padded, not packed: a packed GRU slices its input per time step, and on CPU the backward of every slice fills
    a zero tensor of the whole packed input, O(len^2) work that was 37% of an SLCVAE step's CPU time at the paper's size
    (bench/paper_speed.py --profile). Padded runs read the pads too, so a sequence's states stay exact only up
    to its length: the forward direction is read there, and the reverse direction runs on each sequence reversed
    within its length (pads last), layer by layer, with the GRU's own weights: the same math as packing.
    """
    return run_rnn(rnn, x, lens)[1]


def run_rnn(rnn: nn.GRU, x: torch.Tensor, lens: torch.Tensor, outputs: bool = False) -> tuple[torch.Tensor | None, torch.Tensor]:
    """`final_state`, and with outputs=True also the top layer's state at every position, [n, len, directions * hidden]
    (exact at real positions, zero at pads): what an attention decoder reads."""
    if uniform(lens, x.shape[1]):
        out, h = rnn(x)
        return (out if outputs else None), h[-(2 if rnn.bidirectional else 1) :]
    order = torch.argsort(lens)
    cut = _best_cut(lens[order])
    if cut:  # two length groups, each padded to its own longest: a batch of turns mixes 1- and 40-token ones
        low, high = order[:cut], order[cut:]
        parts = [_padded_run(rnn, x[i, : int(lens[i].max())], lens[i], outputs) for i in (low, high)]
        back = torch.argsort(order)
        final = torch.cat([p[1] for p in parts], 1)[:, back]
        if not outputs:
            return None, final
        width = x.shape[1]
        out = torch.cat([F.pad(p[0], (0, 0, 0, width - p[0].shape[1])) for p in parts])[back]
        return out, final
    return _padded_run(rnn, x, lens, outputs)


def _best_cut(sorted_lens: torch.Tensor) -> int:
    """Where to split ascending lengths into two padded groups: the cut that pads least, or 0 when it saves < 1/4."""
    n, longest = sorted_lens.shape[0], int(sorted_lens[-1])
    if n < 2:
        return 0
    cut = torch.arange(1, n, device=sorted_lens.device)  # the first `cut` rows form the short group
    cells = cut * sorted_lens[:-1] + (n - cut) * longest  # padded cells of both groups
    return int(cells.argmin()) + 1 if int(cells.min()) <= 0.75 * n * longest else 0


def _padded_run(rnn: nn.GRU, x: torch.Tensor, lens: torch.Tensor, outputs: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
    rows, last = torch.arange(x.shape[0], device=x.device), (lens - 1).to(x.device)
    real = _mask(lens.to(x.device), x.shape[1]).unsqueeze(2) if outputs else None  # [n, len, 1]: zero the pads
    if not rnn.bidirectional:  # causal: the top layer's output at len - 1 is its state after the last real step
        out = rnn(x)[0]
        return (out * real if outputs else None), out[rows, last].unsqueeze(0)
    t = torch.arange(x.shape[1], device=x.device)
    flip = torch.where(t <= last.unsqueeze(1), last.unsqueeze(1) - t, t).unsqueeze(2)  # [n, len, 1]: each sequence reversed
    h0 = x.new_zeros(1, x.shape[0], rnn.hidden_size)
    for layer in range(rnn.num_layers):
        fwd = _gru_layer(rnn, x, h0, layer, "")
        rev = _gru_layer(rnn, x.gather(1, flip.expand_as(x)), h0, layer, "_reverse")
        if layer + 1 < rnn.num_layers or outputs:  # the next layer (or the caller) reads both directions, position by position
            both = torch.cat([fwd, rev.gather(1, flip.expand_as(rev))], -1)
            if layer + 1 < rnn.num_layers:
                x = F.dropout(both, rnn.dropout, rnn.training)
    final = torch.stack([fwd[rows, last], rev[rows, last]])  # rev at len - 1: after reading the sequence backwards
    return (both * real if outputs else None), final


def _gru_layer(rnn: nn.GRU, x: torch.Tensor, h0: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
    """One layer and direction of `rnn` with its own weights: x [n, len, in] -> outputs [n, len, hidden]."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if rnn.bias else ("weight_ih", "weight_hh")
    weights = [getattr(rnn, f"{name}_l{layer}{suffix}") for name in names]
    return torch.gru(x, h0, weights, rnn.bias, 1, 0.0, rnn.training, False, True)[0]


class UtteranceEncoder(nn.Module):
    """Bidirectional GRU over one utterance: [n, len] ids -> [n, 2 * utterance] (the top layer's final states)."""

    def __init__(self, embed: nn.Embedding, hidden: int, layers: int = 1):
        super().__init__()
        self.embed = embed
        self.rnn = nn.GRU(embed.embedding_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)

    def forward(self, ids: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        return self.states(ids, lens)[1]

    def states(self, ids: torch.Tensor, lens: torch.Tensor, outputs: bool = False) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(every position's state [n, len, 2 * hidden] or None, the final states [n, 2 * hidden])."""
        out, h = run_rnn(self.rnn, self.embed(ids), lens, outputs)  # h: [2, n, hidden], the top layer, both directions
        return out, torch.cat([h[0], h[1]], dim=-1)


class ContextEncoder(nn.Module):
    """GRU over the utterance vectors of each source: [turns_total, 2u] -> [batch, context]."""

    def __init__(self, utterance: int, hidden: int, layers: int = 1):
        super().__init__()
        self.rnn = nn.GRU(2 * utterance, hidden, num_layers=layers, batch_first=True)

    def forward(self, utts: torch.Tensor, n_turns: torch.Tensor) -> torch.Tensor:
        per_source = pad_sequence(torch.split(utts, n_turns.tolist()), batch_first=True)
        return final_state(self.rnn, per_source, n_turns)[-1]  # the top layer


class ContextNorm(nn.BatchNorm1d):
    """Batch norm of the context vectors, [batch, context] -> [batch, context].

    A batch of one source (the last of an epoch can be) has no spread to normalize by, so it is normalized with
    the running statistics, as in evaluation, instead of raising as BatchNorm1d does.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


TURN_DISTANCES = 16  # turn-distance embeddings for attention memories: the last turn is 0; older ones share the last


class Encoder(nn.Module):
    """Hierarchical encoder: embeddings -> utterance GRU -> context GRU (-> batch norm, `context_norm`).

    `source(batch)` -> [batch, context]; `target(batch)` -> [batch, 2 * utterance], the target
    read by the same utterance GRU (as in Zhao et al. 2017's recognition network).
    `read(batch)` -> (the context, and with `model.attention` the source's token states as a `Memory`).
    """

    def __init__(self, vocab: int, cfg: ModelConfig, data: DataConfig | None = None):
        super().__init__()
        self.embed = nn.Embedding(vocab, cfg.embedding, padding_idx=0)
        # data.encoder: each turn's (and target's) pretrained vector, projected and added to the utterance GRU's, so
        # the context, the prior, the posterior and the labels all see it; frozen vectors come with the batch, tuned
        # ones (data.encoder_tune) from the encoder run here
        dim = data.encoder_dim if data is not None else 0
        self.pretrained = nn.Linear(dim, 2 * cfg.utterance) if dim else None
        self.reader = None
        if dim and data.encoder_tune:
            self.reader = Reader(data.encoder, data.encoder_tune)
        self.utterance = UtteranceEncoder(self.embed, cfg.utterance, cfg.layers)
        self.context = ContextEncoder(cfg.utterance, cfg.context, cfg.layers)
        # Batch norm's backward removes the gradient's mean over the batch: the encoder learns only what tells
        # contexts apart, and the generic part of the decoder's first state is left to the layers after it.
        self.norm = ContextNorm(cfg.context) if cfg.context_norm == "batch" else nn.Identity()
        # attention reads tokens of several turns at once: which turn a token is in (counted back from the last,
        # the one a reply answers) is added to its state, so "you" in the last turn and three turns back differ
        self.turn = nn.Embedding(TURN_DISTANCES, 2 * cfg.utterance) if cfg.attention else None

    def source(self, batch: Batch) -> torch.Tensor:
        return self.read(batch, memory=False)[0]

    def read(self, batch: Batch, memory: bool = True) -> tuple[torch.Tensor, Memory | None]:
        """(context [batch, context], the token memory [batch, source_len, 2 * utterance] or None without attention)."""
        memory = memory and self.turn is not None
        out, utts = self.utterance.states(batch.turns, batch.turn_lens, outputs=memory)
        if self.pretrained is not None:
            utts = utts + self.pretrained(self.vectors(batch.turn_vecs, batch.turn_read, batch.turn_read_lens))
        ctx = self.norm(self.context(utts, batch.n_turns))
        return ctx, (self.memory(out, batch) if memory else None)

    def memory(self, out: torch.Tensor, batch: Batch) -> Memory:
        """Every source's turns' token states in one row each, oldest turn first: out [turns, len, 2u] -> Memory."""
        n_turns, dev = batch.n_turns, out.device
        source = torch.repeat_interleave(torch.arange(batch.size, device=dev), n_turns)  # [turns]: each turn's source
        first = torch.cumsum(n_turns, 0) - n_turns  # [batch]: each source's first turn
        back = n_turns[source] - 1 - (torch.arange(source.shape[0], device=dev) - first[source])  # 0 = the last turn
        real = _mask(batch.turn_lens, out.shape[1])  # [turns, len]
        tokens = (out + self.turn(back.clamp(max=TURN_DISTANCES - 1)).unsqueeze(1))[real]  # [tokens, 2u], source by source
        token_source = source.unsqueeze(1).expand_as(real)[real]  # [tokens]
        per_source = torch.zeros(batch.size, dtype=torch.long, device=dev).index_add_(0, source, batch.turn_lens)
        start = torch.cumsum(per_source, 0) - per_source
        pos = torch.arange(tokens.shape[0], device=dev) - start[token_source]  # each token's place in its source's row
        width = int(per_source.max())
        values = tokens.new_zeros(batch.size, width, tokens.shape[1]).index_put((token_source, pos), tokens)
        ids = torch.zeros(batch.size, width, dtype=torch.long, device=dev).index_put((token_source, pos), batch.turns[real])
        return Memory(values, _mask(per_source, width), ids)

    def target(self, batch: Batch) -> torch.Tensor:
        # drop <bos>: the encoder reads the words and <eos>
        y = self.utterance(batch.target[:, 1:], batch.target_lens - 1)
        if self.pretrained is None:
            return y
        return y + self.pretrained(self.vectors(batch.target_vec, batch.target_read, batch.target_read_lens))

    def vectors(self, given: torch.Tensor | None, ids: torch.Tensor | None, lens: torch.Tensor | None) -> torch.Tensor:
        """[rows, dim] pretrained vectors: read here from the encoder's token ids when tuned, else the batch's."""
        found = given if self.reader is None else (self.reader(ids, lens) if ids is not None else None)
        if found is None:
            raise ValueError("this model reads pretrained vectors (data.encoder): encode its data with that config")
        return found


def param_groups(model: nn.Module, params: list[nn.Parameter], lr: float, encoder_lr: float) -> list[dict]:
    """Adam param groups for `params` (those of one training phase): the pretrained encoder's tuned layers
    (data.encoder_tune) at encoder_lr, the rest at lr; frozen parameters in neither."""
    tuned = {p for m in model.modules() if isinstance(m, Reader) for p in m.parameters()}
    rest = [p for p in params if p.requires_grad and p not in tuned]
    mine = [p for p in params if p.requires_grad and p in tuned]
    return [{"params": rest, "lr": lr}] + ([{"params": mine, "lr": encoder_lr}] if mine else [])


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, n_out))


class Gaussian(nn.Module):
    """Diagonal Gaussian head: [batch, n_in] -> (mu, logvar), each [batch, latent].

    Used as the prior network p(z|x) (input: context) and the recognition network q(z|x,y)
    (input: [context; target encoding]).
    """

    def __init__(self, n_in: int, hidden: int, latent: int):
        super().__init__()
        self.net = mlp(n_in, hidden, 2 * latent)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(h).chunk(2, dim=-1)
        return mu, logvar


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, differentiable in mu and logvar. Shapes follow `mu`."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) per dimension, [batch, latent]."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0)


def gaussian_nll(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-log N(z; mu, exp(logvar)) summed over the latent, [batch]."""
    return 0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp()).sum(-1)


class Decoder(nn.Module):
    """GRU language model over the target, its first state computed from a conditioning vector.

    `nll(cond, target, target_lens)` -> [batch] summed token NLL under teacher forcing; logits are
    computed for real tokens only (no projection or loss on padding).
    `init_state(cond)` -> the `State` before <bos>; `step(tokens, state)` -> (logits [n, vocab], state).
    """

    def __init__(self, vocab: int, n_cond: int, cfg: ModelConfig, unk_id: int, step_input: int = 0):
        super().__init__()
        self.embed = nn.Embedding(vocab, cfg.embedding, padding_idx=0)
        self.init = nn.Linear(n_cond, cfg.layers * cfg.decoder)  # a first state for every layer
        # step_input: what a subclass feeds the GRU beside each word (the attention decoder: [context; z])
        self.rnn = nn.GRU(cfg.embedding + step_input, cfg.decoder, num_layers=cfg.layers, batch_first=True)
        self.layers = cfg.layers
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.decoder, vocab)
        self.unk_id = unk_id

    def first_hidden(self, cond: torch.Tensor) -> torch.Tensor:
        """[n, n_cond] -> [layers, n, decoder], the GRU's first hidden state."""
        h = torch.tanh(self.init(cond))  # [n, layers * decoder]
        return h.view(h.shape[0], self.layers, -1).transpose(0, 1).contiguous()

    def init_state(self, cond: torch.Tensor, memory: Memory | None = None) -> State:
        """The state before <bos> for n rows: cond [n, n_cond] (this decoder reads no memory)."""
        return State(self.first_hidden(cond))

    def inputs(self, cond: torch.Tensor, target: torch.Tensor, target_lens: torch.Tensor, word_dropout: float) -> torch.Tensor:
        """The teacher-forced input words target[:, :-1], [n, len - 1], some replaced by <unk> (word dropout)."""
        if not cond.shape[0] == target.shape[0] == target_lens.shape[0]:
            # the GRU reads h0 row by row: extra cond rows would be used silently
            raise ValueError(
                f"Decoder: cond has {cond.shape[0]} rows, target {target.shape[0]}, target_lens {target_lens.shape[0]}; "
                "they must match"
            )
        inputs = target[:, :-1]
        if word_dropout > 0 and self.training:
            # <unk> in place of words (never <bos>, position 0), so the decoder must lean on z
            drop = torch.rand(inputs.shape, device=inputs.device) < word_dropout
            drop[:, 0] = False
            inputs = inputs.masked_fill(drop & (inputs != 0), self.unk_id)
        return inputs

    def hidden(
        self, cond: torch.Tensor, target: torch.Tensor, target_lens: torch.Tensor, word_dropout: float = 0.0
    ) -> torch.Tensor:
        """Decoder states predicting each real next token: [n_tokens, decoder]."""
        inputs = self.inputs(cond, target, target_lens, word_dropout)
        x, lens, h0 = self.drop(self.embed(inputs)), target_lens - 1, self.first_hidden(cond)
        states = self.rnn(x, h0)[0]  # padded, not packed (see final_state); causal, so real positions are exact
        if uniform(lens, x.shape[1]):  # every position is real: no gather
            return self.drop(states.flatten(0, 1))
        return self.drop(states[_mask(lens, x.shape[1])])  # the order of target[:, 1:][mask]

    def nll(
        self,
        cond: torch.Tensor,
        target: torch.Tensor,
        target_lens: torch.Tensor,
        word_dropout: float = 0.0,
        memory: Memory | None = None,
    ) -> torch.Tensor:
        """-log p(y | cond) per row, [n], summed over the real tokens (<eos> included)."""
        states = self.hidden(cond, target, target_lens, word_dropout)
        token_nll = linear_cross_entropy(states, self.out.weight, self.out.bias, gold_tokens(target, target_lens))
        return per_row(token_nll, target_lens)

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        out, h = self.rnn(self.embed(tokens).unsqueeze(1), state.h)
        return self.out(out[:, 0]), State(h)


def gold_tokens(target: torch.Tensor, target_lens: torch.Tensor) -> torch.Tensor:
    """The real next tokens target[:, 1:], flat in row order: [n_tokens]."""
    return target[:, 1:][_mask(target_lens - 1, target.shape[1] - 1)]


def per_row(token_nll: torch.Tensor, target_lens: torch.Tensor) -> torch.Tensor:
    """Flat token losses [n_tokens] (row order) summed per row: [n]."""
    rows = torch.repeat_interleave(torch.arange(target_lens.shape[0], device=target_lens.device), target_lens - 1)
    return torch.zeros(target_lens.shape[0], device=token_nll.device, dtype=token_nll.dtype).index_add_(0, rows, token_nll)


def _mask(lens: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width, device=lens.device).unsqueeze(0) < lens.unsqueeze(1)


class BagOfWords(nn.Module):
    """Zhao et al.'s bag-of-words loss: predict every target word, order-free, from [context; z].

    `forward(cond, target, target_lens)` -> [batch] summed NLL of the target words (with <eos>).
    """

    def __init__(self, n_in: int, hidden: int, vocab: int):
        super().__init__()
        self.net = mlp(n_in, hidden, vocab)

    def forward(self, cond: torch.Tensor, target: torch.Tensor, target_lens: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(self.net(cond), dim=-1)  # [batch, vocab]
        words = target[:, 1:]
        picked = logp.gather(1, words) * _mask(target_lens - 1, words.shape[1])
        return -picked.sum(1)
