"""The decoder's output layer and its token NLL, fused for CPU: logits -> softmax -> NLL -> gradients in cache-sized chunks.

At small hidden sizes the output layer is most of a training step: for the SLCVAE paper's DailyDialog net (decoder 32,
vocab 10k, ~960 target tokens per batch) `F.cross_entropy(F.linear(h, W, b))` takes ~97 ms forward + backward at one
thread, mostly writing and re-reading [tokens, vocab] tensors of 40 MB (python bench/paper_speed.py). This computes the
same values chunk by chunk (64 rows = 2.5 MB of logits, which stay in cache) and, when gradients are wanted, the
gradient of every row's NLL in the same pass: the softmax of a chunk is used while it is hot and never stored.

    linear_cross_entropy(h [n, d], weight [vocab, d], bias [vocab], gold [n]) -> nll [n]

Backward scales the per-row gradients by the incoming [n] gradient; when every row's is the same (a mean of sums,
the usual loss) the weight gradient precomputed in forward is exact up to that factor, otherwise the chunks are
recomputed with each row's factor. Exact up to float rounding (tests/test_softmax.py). Other devices (CUDA),
autocast and other dtypes keep PyTorch's kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 64  # rows per chunk: 64 x 10k logits = 2.5 MB, inside this machine's L3; 32-256 measured within 10%


def _chunks(h, weight, bias, gold, nll, dh, dw, db, row_scale=None):
    """One pass over row chunks: fills nll (when given) and accumulates the gradients that are not None."""
    buf = torch.empty(min(CHUNK, h.shape[0]), weight.shape[0], dtype=h.dtype)
    for start in range(0, h.shape[0], CHUNK):
        hc, g = h[start : start + CHUNK], gold[start : start + CHUNK]
        logits = buf[: hc.shape[0]]
        torch.addmm(bias, hc, weight.t(), out=logits)  # [chunk, vocab]
        gold_logit = logits.gather(1, g.unsqueeze(1)).squeeze(1)
        top = logits.amax(1, keepdim=True)
        total = logits.sub_(top).exp_().sum(1, keepdim=True)
        if nll is not None:
            nll[start : start + CHUNK] = total.log().squeeze(1) + top.squeeze(1) - gold_logit
        if dh is None and dw is None and db is None:
            continue
        grad = logits.div_(total)  # softmax; d nll / d logits = softmax - onehot(gold)
        grad[torch.arange(hc.shape[0]), g] -= 1.0
        if row_scale is not None:
            grad.mul_(row_scale[start : start + CHUNK].unsqueeze(1))
        if dh is not None:
            torch.mm(grad, weight, out=dh[start : start + CHUNK])
        if dw is not None:
            dw.addmm_(grad.t(), hc)
        if db is not None:
            db.add_(grad.sum(0))


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, gold, want_grad):
        need_h, need_w, need_b = (want_grad and n for n in ctx.needs_input_grad[:3])
        nll = torch.empty(h.shape[0], dtype=h.dtype)
        dh = torch.empty_like(h) if need_h else None
        dw = torch.zeros_like(weight) if need_w else None
        db = torch.zeros_like(bias) if need_b else None
        _chunks(h, weight, bias, gold, nll, dh, dw, db)
        ctx.save_for_backward(h, weight, bias, gold, dh, dw, db)
        return nll

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_nll):
        h, weight, bias, gold, dh, dw, db = ctx.saved_tensors
        scale = grad_nll.contiguous()
        if bool((scale == scale[0]).all()):  # the usual case: every row weighs the same
            s = scale[0]
            return (dh * s if dh is not None else None, dw * s if dw is not None else None,
                    db * s if db is not None else None, None, None)  # fmt: skip
        dw = torch.zeros_like(weight) if dw is not None else None
        db = torch.zeros_like(bias) if db is not None else None
        _chunks(h, weight, bias, gold, None, None, dw, db, row_scale=scale)
        return (dh * scale.unsqueeze(1) if dh is not None else None, dw, db, None, None)


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """-log softmax(h W^T + b)[gold] per row: h [n, d], weight [vocab, d], bias [vocab], gold [n] -> [n]."""
    plain = h.dtype == weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    if h.device.type != "cpu" or h.shape[0] == 0 or not plain:  # chunks are tuned for fp32 CPU caches; else PyTorch's
        return F.cross_entropy(F.linear(h, weight, bias), gold, reduction="none")
    return _LinearCrossEntropy.apply(h.contiguous(), weight, bias, gold, torch.is_grad_enabled())
