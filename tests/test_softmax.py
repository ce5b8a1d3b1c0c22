"""The fused output layer gives PyTorch's cross-entropy values and gradients (models/softmax.py)."""

import pytest
import torch
import torch.nn.functional as F

from slcvae.models import softmax
from slcvae.models.softmax import linear_cross_entropy


def _inputs(n=150, d=8, vocab=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, requires_grad=True)
    w = torch.randn(vocab, d, generator=g).mul(0.5).requires_grad_()
    b = torch.randn(vocab, generator=g).requires_grad_()
    gold = torch.randint(0, vocab, (n,), generator=g)
    return h, w, b, gold


@pytest.mark.parametrize("uniform", [True, False])
def test_values_and_gradients_match_cross_entropy(uniform, monkeypatch):
    monkeypatch.setattr(softmax, "CHUNK", 64)  # 150 rows: two full chunks and a partial one
    h, w, b, gold = _inputs()
    weights = torch.full((150,), 0.25) if uniform else torch.linspace(0.1, 2.0, 150)
    ours = linear_cross_entropy(h, w, b, gold)
    (ours * weights).sum().backward()
    got = [t.grad.clone() for t in (h, w, b)]
    for t in (h, w, b):
        t.grad = None
    ref = F.cross_entropy(F.linear(h, w, b), gold, reduction="none")
    (ref * weights).sum().backward()
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(got, (h.grad, w.grad, b.grad), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_frozen_weights_get_no_gradient_and_no_grad_mode_works():
    h, w, b, gold = _inputs()
    w.requires_grad_(False)
    b.requires_grad_(False)
    linear_cross_entropy(h, w, b, gold).sum().backward()
    assert w.grad is None and b.grad is None and h.grad.abs().sum() > 0
    with torch.no_grad():
        nll = linear_cross_entropy(h, w, b, gold)
    assert not nll.requires_grad
    torch.testing.assert_close(nll, F.cross_entropy(F.linear(h, w, b), gold, reduction="none"), rtol=1e-5, atol=1e-5)
