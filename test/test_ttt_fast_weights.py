"""Fast-weight branch: hand-written inner gradient, stabilisers, differentiability."""

from __future__ import annotations

import pytest
import torch

from spatial_ttt_ros.ttt.fast_weights import (
    FastWeightSwiGLU,
    inner_grad,
    inner_loss,
    newton_schulz5,
    qk_transform,
    row_renorm,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _weights(b=2, h=3, hid=10, dh=6, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(b, h, hid, dh, generator=g, dtype=dtype),
        torch.randn(b, h, dh, hid, generator=g, dtype=dtype),
        torch.randn(b, h, hid, dh, generator=g, dtype=dtype),
    )


def test_inner_grad_matches_autograd():
    w0, w1, w2 = (w.requires_grad_() for w in _weights())
    g = torch.Generator().manual_seed(2)
    k = torch.randn(2, 3, 17, 6, generator=g, dtype=torch.float64)
    v = torch.randn(2, 3, 17, 6, generator=g, dtype=torch.float64)
    eta = torch.rand(2, 3, 17, generator=g, dtype=torch.float64)
    eta[0, :, 5:9] = 0.0  # padding tokens
    ref = torch.autograd.grad(inner_loss(w0, w1, w2, k, v, eta), (w0, w1, w2))
    mine = inner_grad(w0, w1, w2, k, v, eta)
    for r, m in zip(ref, mine):
        assert m.shape == r.shape
        torch.testing.assert_close(m, r, rtol=1e-10, atol=1e-12)
    # per batch element / head: a zero lr on one batch row gives a zero gradient there only
    eta2 = eta.clone()
    eta2[1] = 0
    g0, g1, g2 = inner_grad(w0, w1, w2, k, v, eta2)
    assert g1[1].abs().max() == 0 and g1[0].abs().max() > 0


def test_newton_schulz_orthogonalises():
    g = torch.randn(4, 12, 8, dtype=torch.float64)
    o = newton_schulz5(g)
    assert o.shape == g.shape
    s = torch.linalg.svdvals(o)
    # Muon's quintic pushes singular values into roughly [0.7, 1.2] after 5 steps
    assert s.min() > 0.5 and s.max() < 1.3
    assert torch.linalg.svdvals(g).max() / torch.linalg.svdvals(g).min() > s.max() / s.min()


def test_row_renorm_restores_norms():
    w = torch.randn(2, 3, 5, 4)
    target = torch.rand(3, 5, 1) + 0.5
    out = row_renorm(w * 7.0, target)
    torch.testing.assert_close(out.norm(dim=-1, keepdim=True), target.expand(2, 3, 5, 1), rtol=1e-5, atol=1e-5)


def test_qk_transform_unit_norm():
    x = torch.randn(2, 3, 7, 8)
    assert torch.allclose(qk_transform(x).norm(dim=-1), torch.ones(2, 3, 7), atol=1e-5)


@pytest.mark.parametrize("momentum,muon", [(0.0, False), (0.9, False), (0.0, True), (0.5, True)])
def test_update_step_and_padding(momentum, muon):
    torch.manual_seed(0)
    fw = FastWeightSwiGLU(16, 2, lr_base=1e-3, lr_scale=50.0, momentum=momentum, muon=muon).double()
    st = fw.init_state(2, dtype=torch.float64)
    st.update(fw.init_pending(2, 6, dtype=torch.float64))
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    valid = torch.ones(2, 6, dtype=torch.bool)
    valid[1] = False  # batch row 1 is all padding: eta 0, weights must not move
    eta = fw.learning_rates(x, valid)
    assert eta.shape == (2, 2, 6)
    torch.testing.assert_close(eta[0], torch.full_like(eta[0], 50e-3), rtol=1e-6, atol=0)  # softplus(b) = lr_base
    assert eta[1].abs().max() == 0
    q = qk_transform(torch.randn(2, 2, 6, 8, dtype=torch.float64))
    k = qk_transform(torch.randn(2, 2, 6, 8, dtype=torch.float64))
    v = torch.randn(2, 2, 6, 8, dtype=torch.float64)
    # partial piece: nothing applied yet, read == slow weights
    out, st2 = fw.step(st, q[:, :, :4], k[:, :, :4], v[:, :, :4], eta[:, :, :4], 0)
    torch.testing.assert_close(st2["w1"], st["w1"])
    out_b, st3 = fw.step(st2, q[:, :, 4:], k[:, :, 4:], v[:, :, 4:], eta[:, :, 4:], 4)
    assert st3["pend_k"].abs().max() == 0  # buffer cleared after the chunk
    assert (st3["w1"][0] - st["w1"][0]).abs().max() > 1e-4
    torch.testing.assert_close(st3["w1"][1], st["w1"][1])
    for name in ("w0", "w1", "w2"):  # row norms back at the slow-weight norms
        target = getattr(fw, name).norm(dim=-1)
        torch.testing.assert_close(st3[name].norm(dim=-1), target.expand_as(st3[name].norm(dim=-1)))
    # the update moves f(k) towards v (the inner loss decreases) unless Muon changed the direction
    before = inner_loss(st["w0"], st["w1"], st["w2"], k[:1], v[:1], eta[:1])
    after = inner_loss(st3["w0"], st3["w1"], st3["w2"], k[:1], v[:1], eta[:1])
    if not muon:
        assert after < before


def test_gradients_reach_slow_weights_through_inner_update():
    torch.manual_seed(0)
    fw = FastWeightSwiGLU(16, 2, lr_scale=100.0, momentum=0.5).double()
    with torch.no_grad():
        fw.gate.fill_(1.0)
        fw.lr_proj.weight.normal_(0, 0.1)
    st = fw.init_state(1, dtype=torch.float64)
    st.update(fw.init_pending(1, 4, dtype=torch.float64))
    x = torch.randn(1, 8, 16, dtype=torch.float64)
    eta = fw.learning_rates(x, torch.ones(1, 8, dtype=torch.bool))
    q = qk_transform(torch.randn(1, 2, 8, 8, dtype=torch.float64))
    k = qk_transform(torch.randn(1, 2, 8, 8, dtype=torch.float64))
    v = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    _, st = fw.step(st, q[:, :, :4], k[:, :, :4], v[:, :, :4], eta[:, :, :4], 0)
    out, _ = fw.step(st, q[:, :, 4:], k[:, :, 4:], v[:, :, 4:], eta[:, :, 4:], 0)
    # out (chunk 2) reads the weights updated on chunk 1: it depends on the lr projection
    # and on the slow weights through the update, not only directly.
    loss = fw.output(out, torch.float64).pow(2).sum()
    loss.backward()
    assert fw.lr_proj.weight.grad.abs().max() > 0
    assert fw.lr_proj.bias.grad.abs().max() > 0
    for p in (fw.w0, fw.w1, fw.w2):
        assert p.grad is not None and p.grad.abs().max() > 0
