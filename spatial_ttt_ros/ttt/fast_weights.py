"""Per-head SwiGLU fast weights, trained at test time (the TTT branch).

For every head h the branch holds a small MLP, the *fast weights*

    f(x) = W1 (silu(W0 x) * (W2 x))      W0, W2: [hidden, d_head], W1: [d_head, hidden]

started from learned *slow* weights (nn.Parameters) at the start of an episode and
held in fp32 whatever the model dtype. Tokens are grouped in large chunks and
processed *apply then update*: the queries of chunk i read the weights left by the
chunks before i; once chunk i is complete, one gradient step is taken on

    L = - sum_i eta_i <f(k_i), v_i>                     (i over the chunk's tokens)

with a per-token, per-head learning rate eta_i = lr_scale * softplus(w . x_i + b),
b initialised so softplus(b) = lr_base (1e-3 by default, as in LaCT / Spatial-TTT).
``lr_scale`` (default 1) is the knob for short chunks: the step per chunk is about
lr_base * lr_scale * chunk_tokens, and LaCT's chunks are 2k-4k tokens, so a model
with chunks of a few hundred tokens may want lr_scale ~ 10.

Stabilisers (all from the paper / released code): q and k go through silu then L2
normalisation; after each update every weight row is rescaled to the norm of the
corresponding slow-weight row; the branch output gets a per-head RMSNorm and a
zero-initialised gate, so a fresh branch contributes exactly nothing. Options:
momentum (beta > 0) and Muon (Newton-Schulz orthogonalisation of the update).

The inner gradient is written out by hand as batched matmuls (``inner_grad``); a
test checks it against autograd. Nothing here modifies a tensor in place, so outer
training can backpropagate through any number of inner updates into the slow
weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FAST_KEYS = ("w0", "w1", "w2")
MOMENTUM_KEYS = ("m0", "m1", "m2")


def swiglu_apply(w0: Tensor, w1: Tensor, w2: Tensor, x: Tensor) -> Tensor:
    """f(x) for a batch of fast weights.

    w0, w2: [B, H, hidden, dh]; w1: [B, H, dh, hidden]; x: [B, H, N, dh] -> [B, H, N, dh]
    """
    a = x @ w0.transpose(-1, -2)  # [B,H,N,hidden]
    g = x @ w2.transpose(-1, -2)  # [B,H,N,hidden]
    return (F.silu(a) * g) @ w1.transpose(-1, -2)  # [B,H,N,dh]


def inner_loss(w0: Tensor, w1: Tensor, w2: Tensor, k: Tensor, v: Tensor, eta: Tensor) -> Tensor:
    """L = -sum_i eta_i <f(k_i), v_i>, summed over batch and heads (the autograd reference).

    k, v: [B, H, N, dh]; eta: [B, H, N]
    """
    return -(eta.unsqueeze(-1) * swiglu_apply(w0, w1, w2, k) * v).sum()


def inner_grad(w0: Tensor, w1: Tensor, w2: Tensor, k: Tensor, v: Tensor, eta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hand-written dL/dW0, dL/dW1, dL/dW2 of ``inner_loss`` (per batch element and head).

    Same shapes as the weights. Two forward matmuls, five backward ones, no autograd.
    """
    a = k @ w0.transpose(-1, -2)  # [B,H,N,hid]
    g = k @ w2.transpose(-1, -2)  # [B,H,N,hid]
    sig = torch.sigmoid(a)
    silu_a = a * sig
    hmid = silu_a * g  # [B,H,N,hid]
    d_out = -(eta.unsqueeze(-1) * v)  # dL/df(k_i): [B,H,N,dh]
    g1 = d_out.transpose(-1, -2) @ hmid  # [B,H,dh,hid]
    d_h = d_out @ w1  # [B,H,N,hid]
    d_a = d_h * g * (sig * (1 + a * (1 - sig)))  # silu'(a) = sig (1 + a (1 - sig))
    d_g = d_h * silu_a
    g0 = d_a.transpose(-1, -2) @ k  # [B,H,hid,dh]
    g2 = d_g.transpose(-1, -2) @ k  # [B,H,hid,dh]
    return g0, g1, g2


def newton_schulz5(g: Tensor, steps: int = 5, eps: float = 1e-7) -> Tensor:
    """Approximate orthogonalisation UV^T of each matrix in g [..., m, n] (Muon's quintic iteration)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    transpose = g.shape[-2] > g.shape[-1]
    x = g.transpose(-1, -2) if transpose else g
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)
    for _ in range(steps):
        s = x @ x.transpose(-1, -2)
        x = a * x + (b * s + c * (s @ s)) @ x
    return x.transpose(-1, -2) if transpose else x


def row_renorm(w: Tensor, target_norm: Tensor, eps: float = 1e-6) -> Tensor:
    """Rescale each row (last dim) of w to target_norm ([..., rows, 1], broadcast over batch)."""
    # clamp, not add: a row already at its norm (e.g. a zero-lr step) stays exactly as is
    return w * (target_norm / w.norm(dim=-1, keepdim=True).clamp_min(eps))


def fast_dtype(model_dtype: torch.dtype) -> torch.dtype:
    """Fast weights and their inner-loop inputs live in fp32, or fp64 for an fp64 model."""
    return torch.float64 if model_dtype == torch.float64 else torch.float32


def qk_transform(x: Tensor) -> Tensor:
    """silu then L2 normalisation over the head dim (the paper's q/k stabiliser)."""
    return F.normalize(F.silu(x), dim=-1, eps=1e-6)


class HeadRMSNorm(nn.Module):
    """RMSNorm over each head's channels separately, with a per-channel weight. x: [B, H, N, dh]."""

    def __init__(self, n_heads: int, d_head: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_heads, 1, d_head))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        xf = x.to(fast_dtype(x.dtype))
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.to(y.dtype)).to(x.dtype)


class FastWeightSwiGLU(nn.Module):
    """The TTT branch of one layer: slow weights, per-token learning rates, output norm and gate.

    Streaming API (used by HybridBlock): ``init_state`` gives the fast weights of a fresh
    episode plus an empty pending chunk; ``step`` consumes a piece of tokens that lies
    inside one chunk, returns the piece's outputs and, when the piece completes the
    chunk, the updated weights.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        hidden_ratio: float = 2.0,
        lr_base: float = 1e-3,
        lr_scale: float = 1.0,
        momentum: float = 0.0,
        muon: bool = False,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.d_head = dh = d_model // n_heads
        self.hidden = hid = max(1, int(round(hidden_ratio * dh)))
        self.lr_scale = float(lr_scale)
        self.momentum = float(momentum)
        self.muon = bool(muon)
        # Slow weights: rows of norm ~1 so that f(unit vector) has O(1) entries.
        self.w0 = nn.Parameter(torch.randn(n_heads, hid, dh) / math.sqrt(dh))
        self.w2 = nn.Parameter(torch.randn(n_heads, hid, dh) / math.sqrt(dh))
        self.w1 = nn.Parameter(torch.randn(n_heads, dh, hid) / math.sqrt(hid))
        # Per-token lr: zero weight, bias so that softplus(bias) = lr_base at init.
        self.lr_proj = nn.Linear(d_model, n_heads)
        nn.init.zeros_(self.lr_proj.weight)
        nn.init.constant_(self.lr_proj.bias, math.log(math.expm1(lr_base)))
        self.out_norm = HeadRMSNorm(n_heads, dh)
        self.gate = nn.Parameter(torch.zeros(d_model))  # zero: a fresh branch is a no-op

    # ------------------------------------------------------------------ state
    def init_state(self, batch: int, device=None, dtype=torch.float32) -> dict[str, Tensor]:
        """Fresh-episode fast weights (fp32 copies of the slow weights, graph kept for training).

        dtype: fp32 normally; fp64 when the model runs in fp64 (exactness tests).
        """
        st = {}
        for name in FAST_KEYS:
            p = getattr(self, name)
            st[name] = p.to(device=device, dtype=dtype).unsqueeze(0).expand(batch, *p.shape)
        if self.momentum > 0:
            for name, m in zip(FAST_KEYS, MOMENTUM_KEYS):
                st[m] = torch.zeros(batch, *getattr(self, name).shape, device=device, dtype=dtype)
        return st

    def init_pending(self, batch: int, chunk_tokens: int, device=None, dtype=torch.float32) -> dict[str, Tensor]:
        h, dh = self.n_heads, self.d_head
        return {
            "pend_k": torch.zeros(batch, h, chunk_tokens, dh, device=device, dtype=dtype),
            "pend_v": torch.zeros(batch, h, chunk_tokens, dh, device=device, dtype=dtype),
            "pend_eta": torch.zeros(batch, h, chunk_tokens, device=device, dtype=dtype),
        }

    # ------------------------------------------------------------- pieces
    def learning_rates(self, x: Tensor, valid: Tensor) -> Tensor:
        """eta [B, H, N] (fp32) from the block input x [B, N, D]; padding tokens get 0."""
        eta = self.lr_scale * F.softplus(self.lr_proj(x).to(fast_dtype(x.dtype)))  # [B,N,H]
        return (eta * valid.unsqueeze(-1).to(eta.dtype)).transpose(1, 2)

    def apply(self, st: dict[str, Tensor], q: Tensor) -> Tensor:
        """Read the current fast weights: q [B,H,N,dh] (any dtype) -> [B,H,N,dh] in the weights' dtype."""
        return swiglu_apply(st["w0"], st["w1"], st["w2"], q.to(st["w0"].dtype))

    def update(self, st: dict[str, Tensor], k: Tensor, v: Tensor, eta: Tensor) -> dict[str, Tensor]:
        """One inner gradient step on a complete chunk (k, v [B,H,C,dh] fp32, eta [B,H,C])."""
        grads = inner_grad(st["w0"], st["w1"], st["w2"], k, v, eta)
        new = dict(st)
        for name, m_name, g in zip(FAST_KEYS, MOMENTUM_KEYS, grads):
            if self.momentum > 0:
                g = self.momentum * st[m_name] + g
                new[m_name] = g
            if self.muon:
                # Orthogonalised direction, Frobenius size of the raw step, so eta keeps its meaning.
                o = newton_schulz5(g)
                g = o * (g.norm(dim=(-2, -1), keepdim=True) / (o.norm(dim=(-2, -1), keepdim=True) + 1e-7))
            slow = getattr(self, name).to(st[name].dtype)
            new[name] = row_renorm(st[name] - g, slow.norm(dim=-1, keepdim=True))
        return new

    def step(
        self, st: dict[str, Tensor], q: Tensor, k: Tensor, v: Tensor, eta: Tensor, n_pending: int
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Process a piece of n tokens that continues a chunk already holding n_pending tokens.

        q, k, v: [B,H,n,dh] (q, k already silu+L2); eta [B,H,n]. Returns out [B,H,n,dh] fp32
        (read with the weights as they stood before this chunk) and the new state; the
        update fires when n_pending + n == chunk size.
        """
        out = self.apply(st, q)  # apply first: the chunk reads the weights of earlier chunks
        chunk = st["pend_k"].shape[2]
        n = q.shape[2]
        end = n_pending + n
        fd = st["pend_k"].dtype
        keys = torch.cat([st["pend_k"][:, :, :n_pending], k.to(fd)], dim=2)
        vals = torch.cat([st["pend_v"][:, :, :n_pending], v.to(fd)], dim=2)
        etas = torch.cat([st["pend_eta"][:, :, :n_pending], eta.to(fd)], dim=2)
        if end == chunk:
            new = self.update(st, keys, vals, etas)
            b, h, _, dh = keys.shape
            new["pend_k"] = keys.new_zeros(b, h, chunk, dh)
            new["pend_v"] = vals.new_zeros(b, h, chunk, dh)
            new["pend_eta"] = etas.new_zeros(b, h, chunk)
            return out, new
        if end > chunk:
            raise ValueError(f"piece of {n} tokens overruns a chunk of {chunk} with {n_pending} pending")
        new = dict(st)
        pad = chunk - end  # keep the buffer a fixed size: the state must not grow
        new["pend_k"] = F.pad(keys, (0, 0, 0, pad))
        new["pend_v"] = F.pad(vals, (0, 0, 0, pad))
        new["pend_eta"] = F.pad(etas, (0, pad))
        return out, new

    def output(self, o: Tensor, dtype: torch.dtype) -> Tensor:
        """Per-head RMSNorm and gate: o [B,H,N,dh] fp32 -> [B,N,D] in dtype."""
        b, h, n, dh = o.shape
        y = self.out_norm(o).transpose(1, 2).reshape(b, n, h * dh)
        return (y * self.gate.to(y.dtype)).to(dtype)
