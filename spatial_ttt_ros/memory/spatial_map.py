"""Position-keyed TTT memory: a fast-weight map written at object positions, read at cell centres.

Why: the grid readout asks "what is at (x, y)?", but the backbone's fast-weight keys
are learned from mixed content embeddings, and learning location-keyed storage
through them is a second-order signal that 1,600 CPU steps did not find. This map
gives the memory an explicit spatial key path:

    key(xy)   = L2norm(A [cos(Omega xy + b)])      random Fourier features of the
                                                    normalised position (a Gaussian
                                                    kernel of width ``sigma``) through a
                                                    learned projection A (init identity)
    value     = V_raw(object token fields) + V_y(backbone output of the object token)
    f_W(k)    = W1 (silu(W0 k) * (W2 k))            ttt.fast_weights' SwiGLU, one head

Writing is TTT: per chunk of ``chunk_frames`` frames, one inner gradient step on
L = -sum_i eta_i <f_W(k_i), v_i> over the chunk's valid object tokens (apply-then-
update chunking as in the backbone; ``fast_weights.inner_grad`` gives the gradient).
The step is taken on W1 only: W0 and W2 are the map's *key feature map*
(h(k) = silu(W0 k) * (W2 k), learned in the outer loop) and stay at their slow
values, so the read-out kernel h(q).h(k) stays a stable function of distance however
long the stream runs. With W1 alone, the step has no feedback (dL/dW1 does not
depend on W1), so no renormalisation is needed and reading gives exactly

    f_W(q) - f_slow(q) = sum_i eta_i (h(q) . h(k_i)) v_i

a kernel-weighted sum of what was written near q. ``read`` returns that difference:
with the frozen variant (eta = 0) it is exactly zero, i.e. nothing is stored. The
state is the fast W1 plus one pending chunk: constant size.

Value layout at initialisation (V_raw), so the map works before any training:
channel 0 = 1 (presence: reads back the kernel-weighted observation count), 1-2 = xy,
3 = z, 4-6 = log size, 7 = time, 8 = time^2, 9.. = class one-hot, rest learned.
``features`` turns a read into scale-free decoder inputs (log presence, channel
ratios = kernel-weighted means, centroid offset from the cell centre).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spatial_ttt_ros.perception.tokens import OBJ_FIELDS
from spatial_ttt_ros.ttt.fast_weights import FastWeightSwiGLU, inner_grad, swiglu_apply

N_CLASS_ONEHOT = OBJ_FIELDS["class_onehot"].stop - OBJ_FIELDS["class_onehot"].start
RAW_DIM = N_CLASS_ONEHOT + 1 + 2 + 1 + 3 + 2  # one-hot, score, xy, z, log size, time, time^2
CH_PRESENCE, CH_XY, CH_Z, CH_LOGSIZE, CH_TIME, CH_TIME2, CH_CLASS = 0, 1, 3, 4, 7, 8, 9


class SpatialFastWeights(FastWeightSwiGLU):
    """FastWeightSwiGLU whose inner step updates W1 only (W0, W2 = fixed key feature map)."""

    def update(self, st: dict[str, Tensor], k: Tensor, v: Tensor, eta: Tensor) -> dict[str, Tensor]:
        # k, v: [B, 1, C, dk] fp32; eta [B, 1, C]. Same inner loss and hand-written gradient as the
        # backbone's branch; W0/W2 grads are discarded (they would move the keys' kernel).
        _, g1, _ = inner_grad(st["w0"], st["w1"], st["w2"], k, v, eta)
        new = dict(st)
        new["w1"] = st["w1"] - g1
        return new


class SpatialMap(nn.Module):
    def __init__(
        self,
        d_model: int,
        d_key: int = 64,
        hidden_ratio: float = 4.0,
        sigma: float = 0.06,
        lr_base: float = 1e-3,
        lr_scale: float = 1.0,
        chunk_frames: int = 8,
        max_objects: int = 16,
    ) -> None:
        super().__init__()
        self.d_key = d_key
        self.chunk_tokens = chunk_frames * max_objects  # only object tokens are written
        self.max_objects = max_objects
        # Random Fourier features: E[phi(x).phi(x')] = exp(-|x - x'|^2 / (2 sigma^2)).
        self.omega = nn.Parameter(torch.randn(d_key // 2, 2) / sigma)  # [dk/2, 2]
        self.phase = nn.Parameter(torch.rand(d_key // 2) * 2 * math.pi)  # [dk/2]
        self.key_proj = nn.Linear(d_key, d_key, bias=False)  # learned projection, init identity
        nn.init.eye_(self.key_proj.weight)
        self.fw = SpatialFastWeights(d_key, 1, hidden_ratio, lr_base, lr_scale)
        with torch.no_grad():
            # rows of norm sqrt(dk): pre-activations ~ N(0, 1) for unit keys (a sharper kernel)
            self.fw.w0.mul_(math.sqrt(d_key))
            self.fw.w2.mul_(math.sqrt(d_key))
        self.hidden = self.fw.hidden
        # Values: raw object fields (fixed layout at init, see module doc) + backbone output (zero init).
        self.v_raw = nn.Linear(RAW_DIM, d_key)
        self.v_y = nn.Linear(d_model, d_key, bias=False)
        nn.init.zeros_(self.v_y.weight)
        with torch.no_grad():
            w = torch.zeros(d_key, RAW_DIM)
            b = torch.zeros(d_key)
            b[CH_PRESENCE] = 1.0
            c = N_CLASS_ONEHOT
            w[CH_XY, c + 1], w[CH_XY + 1, c + 2] = 1.0, 1.0  # xy (raw: one-hot, score, xy, ...)
            w[CH_Z, c + 3] = 1.0
            for j in range(3):
                w[CH_LOGSIZE + j, c + 4 + j] = 1.0
            w[CH_TIME, c + 7] = 1.0
            w[CH_TIME2, c + 8] = 1.0
            for j in range(N_CLASS_ONEHOT):
                w[CH_CLASS + j, j] = 1.0
            self.v_raw.weight.copy_(w)
            self.v_raw.bias.copy_(b)
        # Read-out kernel peak h(k).h(k) ~ hidden * E[silu(a)^2 g^2]: reads are divided by it,
        # so the presence channel is about sum(eta) over nearby observations / lr_base.
        self.register_buffer("read_scale", torch.tensor(1.0 / (lr_base * 0.35 * self.hidden)), persistent=False)

    # ------------------------------------------------------------------ pieces
    def keys(self, xy: Tensor) -> Tensor:
        """[..., 2] normalised world xy -> [..., dk] unit keys."""
        a = xy @ self.omega.t() + self.phase  # [..., dk/2]
        phi = torch.cat([a.cos(), a.sin()], -1) * math.sqrt(2.0 / self.d_key)
        return nn.functional.normalize(self.key_proj(phi), dim=-1, eps=1e-6)

    def values(self, raw: Tensor, y: Tensor) -> Tensor:
        """raw [..., RAW_DIM], y [..., d_model] -> [..., dk]."""
        return self.v_raw(raw) + self.v_y(y)

    def init_state(self, batch: int, device=None) -> dict[str, Tensor]:
        st = self.fw.init_state(batch, device, torch.float32)
        st.update(self.fw.init_pending(batch, self.chunk_tokens, device, torch.float32))
        return {"map_" + k: v for k, v in st.items()}

    @staticmethod
    def _unprefix(st: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k[4:]: v for k, v in st.items() if k.startswith("map_")}

    def write(self, st: dict, k: Tensor, v: Tensor, valid: Tensor, frames_seen: int) -> dict:
        """Write object tokens of whole frames.

        k, v: [B, F*M, dk]; valid [B, F*M] bool; frames_seen: frames written before these.
        Same chunk boundaries as the backbone (chunk_frames frames): the step fires when a
        chunk completes; a partial chunk waits in the pending buffer.
        """
        s = self._unprefix(st)
        eta = self.fw.learning_rates(v, valid)  # [B, 1, N]
        k4, v4 = k.unsqueeze(1).float(), v.unsqueeze(1).float()  # [B, 1, N, dk]
        n = k.shape[1]
        chunk = self.chunk_tokens
        pending = (frames_seen * self.max_objects) % chunk
        start = 0
        while start < n:
            m = min(chunk - pending, n - start)
            sl = slice(start, start + m)
            keys = torch.cat([s["pend_k"][:, :, :pending], k4[:, :, sl]], 2)
            vals = torch.cat([s["pend_v"][:, :, :pending], v4[:, :, sl]], 2)
            etas = torch.cat([s["pend_eta"][:, :, :pending], eta[:, :, sl]], 2)
            end = pending + m
            s = dict(s)
            if end == chunk:
                s = self.fw.update(s, keys, vals, etas)
                s["pend_k"], s["pend_v"], s["pend_eta"] = keys * 0, vals * 0, etas * 0
                pending = 0
            else:
                pad = chunk - end  # fixed-size buffer: the state must not grow
                s["pend_k"] = nn.functional.pad(keys, (0, 0, 0, pad))
                s["pend_v"] = nn.functional.pad(vals, (0, 0, 0, pad))
                s["pend_eta"] = nn.functional.pad(etas, (0, pad))
                pending = end
            start += m
        return {"map_" + kk: vv for kk, vv in s.items()}

    def read(self, st: dict, xy: Tensor) -> Tensor:
        """xy [B, S, 2] -> [B, S, dk]: f_W(q) - f_slow(q), the kernel-weighted sum of written values.

        The pending (incomplete) chunk is included by a temporary step (state unchanged), so a
        read sees every frame written so far.
        """
        s = self._unprefix(st)
        if bool((s["pend_eta"] != 0).any()):
            s = self.fw.update(s, s["pend_k"], s["pend_v"], s["pend_eta"])
        q = self.keys(xy).unsqueeze(1).float()  # [B, 1, S, dk]
        w1_slow = self.fw.w1.float().unsqueeze(0)  # [1, 1, dk, hid]
        dw1 = s["w1"] - w1_slow  # the written content
        w0 = s["w0"]
        h = torch.nn.functional.silu(q @ w0.transpose(-1, -2)) * (q @ s["w2"].transpose(-1, -2))  # [B,1,S,hid]
        return (h @ dw1.transpose(-1, -2)).squeeze(1) * self.read_scale  # [B, S, dk]

    def read_cells(self, st: dict, centres: Tensor, cell: Tensor) -> Tensor:
        """Decoder features at cell centres [B, S, 2] (cell [B]) -> [B, S, dk + 5].

        One mean-shift step: read at the centre, move to the kernel-weighted centroid of what
        was written there (at most one cell away), read again. Why: a read at the cell centre is
        biased towards the centre; the re-read is centred on the object.

        Far from anything written, a read is not zero but the sum of many small kernel sidelobes,
        which grows with the stream; presence is therefore measured against this stream's noise
        floor, the median |presence| over the grid (objects occupy few cells), and channel means
        divide by max(presence, floor) so that they shrink to 0 where nothing was written.
        """
        r = self.read(st, centres)
        p = r[..., CH_PRESENCE : CH_PRESENCE + 1]
        den = torch.maximum(p, self.noise_floor(r)[:, None, None])
        shift = (r[..., CH_XY : CH_XY + 2] - centres * p) / den
        lim = cell[:, None, None]
        shift = torch.maximum(torch.minimum(shift, lim), -lim)
        r2 = self.read(st, centres + shift)  # [B, S, dk]
        return self.features(r2, centres, cell, self.noise_floor(r2))

    @staticmethod
    def noise_floor(r: Tensor) -> Tensor:
        """r [B, S, dk] -> [B]: median |presence| over the S reads, at least 1 observation."""
        return r[..., CH_PRESENCE].abs().median(dim=1).values.clamp_min(1.0)

    @staticmethod
    def features(r: Tensor, centres: Tensor, cell: Tensor, floor: Tensor) -> Tensor:
        """Scale-free decoder inputs from a read r [B, S, dk] at cell centres [B, S, 2], cell [B],
        noise floor [B].

        -> [B, S, dk + 5]: log(1 + presence / floor), channel means (divided by max(presence,
        floor)), centroid offset from the cell centre in cells (2), how far that lies outside the
        cell, asinh(presence / floor), and a first-seen estimate.
        """
        p = r[..., CH_PRESENCE : CH_PRESENCE + 1]  # [B, S, 1]
        fl = floor[:, None, None]
        den = torch.maximum(p, fl)
        mean = r[..., 1:] / den
        off = ((r[..., CH_XY : CH_XY + 2] - centres * p) / den / cell[:, None, None]).clamp(-3.0, 3.0)
        # the centroid lies beyond the neighbouring cell: the object belongs to another cell
        outside = (off.abs().amax(-1, keepdim=True) - 1.0).clamp_min(0.0)
        # first-seen estimate from the observation-time mean and spread (uniform in [first, last]):
        # first ~ mean - sqrt(3 var)
        mt, mt2 = r[..., CH_TIME : CH_TIME + 1] / den, r[..., CH_TIME2 : CH_TIME2 + 1] / den
        t_first = mt - (3.0 * (mt2 - mt * mt).clamp_min(0.0) + 1e-8).sqrt()
        return torch.cat([torch.log1p(p.clamp_min(0.0) / fl), mean, off, outside, torch.asinh(p / fl), t_first], -1)
