"""SwiGLU fast weights of the LaCT branch: apply, one inner step, Newton-Schulz.

Per fast-weight head h the memory is f(x) = W1 (silu(W0 x) * (W2 x)) with
W0, W2: [dh, d] and W1: [d, dh], held in fp32. Tokens of a chunk first *read* the
weights left by the chunks before (apply), then the chunk *writes* them with one
step on the inner loss  L = -sum_i <f(k_i), v_i>  with per-token, per-matrix
learning rates (the LaCT form used by Spatial-TTT). The gradient is written out
by hand (checked against autograd in test/test_vlm_model.py); after the step each
row is renormalised to its norm at the start of the stream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Weights = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (W0 [H,dh,d], W1 [H,d,dh], W2 [H,dh,d])


def apply_fast_weights(w: Weights, q: torch.Tensor) -> torch.Tensor:
    """q [H, n, d] -> f(q) [H, n, d] (fp32)."""
    w0, w1, w2 = w
    qt = q.float().transpose(1, 2)  # [H, d, n]
    hidden = F.silu(torch.bmm(w0, qt)) * torch.bmm(w2, qt)  # [H, dh, n]
    return torch.bmm(w1, hidden).transpose(1, 2)  # [H, n, d]


def _silu_grad(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


def inner_step(
    w: Weights,
    k: torch.Tensor,  # [H, n, d]
    v: torch.Tensor,  # [H, n, d]
    lr: tuple[torch.Tensor, torch.Tensor, torch.Tensor],  # each [H, n, 1] for W0, W1, W2
) -> Weights:
    """The descent direction -dL/dW of L = -sum_i lr_i <f(k_i), v_i>, per matrix."""
    w0, w1, w2 = w
    kt = k.float().transpose(1, 2)  # [H, d, n]
    vt = v.float().transpose(1, 2)  # [H, d, n]
    lr0, lr1, lr2 = (x.float() for x in lr)
    gate = torch.bmm(w0, kt)  # [H, dh, n]
    up = torch.bmm(w2, kt)  # [H, dh, n]
    hidden = F.silu(gate) * up  # [H, dh, n]
    d_hidden = torch.bmm(w1.transpose(1, 2), vt)  # [H, dh, n]  (dL/dhidden, sign folded in)
    d_up = d_hidden * F.silu(gate)
    d_gate = d_hidden * up * _silu_grad(gate)
    dw1 = torch.bmm(vt, hidden.transpose(1, 2) * lr1)  # [H, d, dh]
    dw0 = torch.bmm(d_gate, kt.transpose(1, 2) * lr0)  # [H, dh, d]
    dw2 = torch.bmm(d_up, kt.transpose(1, 2) * lr2)  # [H, dh, d]
    return dw0, dw1, dw2


def newton_schulz(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximate orthogonalisation of each [m, n] matrix of g [H, m, n] (Muon)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.float()
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.transpose(-2, -1)
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.transpose(-2, -1)
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.transpose(-2, -1) if tall else x


def update_fast_weights(
    w: Weights,
    norms: Weights,
    momentum_dw: Weights | None,
    k: torch.Tensor,
    v: torch.Tensor,
    lr: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    momentum: torch.Tensor | None,  # [H, n, 1] in (0, 1) or None
    use_muon: bool,
) -> tuple[Weights, Weights | None]:
    """One chunk's write. Returns new tensors; the inputs are never modified."""
    dw = inner_step(w, k, v, lr)
    if momentum is not None and momentum_dw is not None:
        m = momentum.float().mean(dim=1, keepdim=True)  # [H, 1, 1]
        dw = tuple(d + prev * m for d, prev in zip(dw, momentum_dw))
        momentum_dw = dw
    if use_muon:
        dw = tuple(newton_schulz(d) for d in dw)
    new = []
    for wi, di, ni in zip(w, dw, norms):
        wi = wi + di
        new.append(wi / (wi.norm(dim=2, keepdim=True) + 1e-5) * ni)
    return (new[0], new[1], new[2]), momentum_dw
