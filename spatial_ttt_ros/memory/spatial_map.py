"""Position-keyed TTT memory: a fast-weight map written at object positions (and along depth rays).

Why: the grid readout asks "what is at (x, y)?", but the backbone's fast-weight keys
are learned from mixed content embeddings, and learning location-keyed storage
through them is a second-order signal that 1,600 CPU steps did not find. This map
gives the memory an explicit spatial key path:

    key(xy)   = L2norm(A phi(xy))                   phi: cos/sin of harmonics 0..15 of x and
                                                    of y on a torus of side ``period`` (16 m),
                                                    A a learned projection (init identity)
    value     = V_raw(object token fields) + V_y(backbone output of the object token)
    f_W(k)    = W1 (silu(W0 k) * (W2 k))            ttt.fast_weights' SwiGLU, one head

W0 and W2 start as *place cells* (``_place_cells``): hidden unit j fires only near its
point of a 32 x 32 lattice over the torus, so the read-out kernel h(q).h(k) is a bump
of about 0.35 m half width with nothing far away. (Random Fourier features, used
before, left sidelobes of about 4 % of the peak for every write; over a 1,000-frame
stream they added up to a floor of 4-7 observations everywhere, and real objects seen
10-20 times drowned in it.) Positions more than ``period`` apart alias.

Writing is TTT: per chunk of ``chunk_frames`` frames, one inner gradient step on
L = -sum_i eta_i <f_W(k_i), v_i> over the chunk's valid tokens (apply-then-update
chunking as in the backbone; ``fast_weights.inner_grad`` gives the gradient). The
step is taken on W1 only: W0 and W2 are the map's *key feature map* and stay at their
slow values, so the kernel stays a stable function of distance however long the stream
runs. With W1 alone, the step has no feedback (dL/dW1 does not depend on W1), so no
renormalisation is needed and reading gives exactly

    f_W(q) - f_slow(q) = sum_i eta_i (h(q) . h(k_i)) v_i

a kernel-weighted sum of what was written near q. ``read`` returns that difference:
with the ttt_frozen variant (eta = 0) it is exactly zero, i.e. nothing is stored. The
state is the fast W1 plus one pending chunk: constant size.

Value layout at initialisation (V_raw), so the map works before any training:
channel 0 = 1 (presence: reads back the kernel-weighted observation count), 1-2 = xy,
3 = z, 4-6 = log size, 7 = time, 8 = time^2, 9-24 = class one-hot, 25-40 / 41-56 =
per-class novelty and novelty * time (written by ``step`` from what the map already
held: the first sighting), 57-59 = size^4 (a power mean that favours the fuller views),
60 = free space (written by floor samples along the depth rays, not by objects), rest
learned. ``memory/map_readout.py`` reads objects and the seen floor from it;
``features`` turns a read into the grid decoder's inputs (log presence, channel
ratios = kernel-weighted means, centroid offset from the cell centre).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spatial_ttt_ros.perception.tokens import OBJ_FIELDS
from spatial_ttt_ros.ttt.fast_weights import FastWeightSwiGLU, inner_grad

N_CLASS_ONEHOT = OBJ_FIELDS["class_onehot"].stop - OBJ_FIELDS["class_onehot"].start
RAW_DIM = N_CLASS_ONEHOT + 1 + 2 + 1 + 3 + 2 + 3  # one-hot, score, xy, z, log size, time, time^2, size^SIZE_POWER
SIZE_POWER = 4.0  # the mean of size^4 weights the larger (fuller) views of an object: most views are partial
CH_PRESENCE, CH_XY, CH_Z, CH_LOGSIZE, CH_TIME, CH_TIME2, CH_CLASS = 0, 1, 3, 4, 7, 8, 9
# Written at update time from what the map already holds (see SpatialMap.step), one per class:
# novelty * class one-hot, novelty * time * class one-hot.
CH_BIRTH = CH_CLASS + N_CLASS_ONEHOT
CH_BIRTH_T = CH_BIRTH + N_CLASS_ONEHOT
CH_SIZE_POW = CH_BIRTH_T + N_CLASS_ONEHOT  # 3 channels: size^SIZE_POWER (metres) along x, y, z
CH_FREE = CH_SIZE_POW + 3  # free space: written by floor samples along the depth rays, not by objects
N_CHANNELS = CH_FREE + 1  # channels with a fixed meaning; the rest are free (learned)
NOVELTY_SCALE = 0.25  # observations of the class already there at which novelty falls to 1/e


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
        hidden_ratio: float = 16.0,
        period: float = 3.2,
        sharpness: float = 20.0,
        threshold: float = 1.5,
        lr_base: float = 1e-3,
        lr_scale: float = 1.0,
        chunk_frames: int = 8,
        max_objects: int = 16,
        free_per_frame: int = 0,
    ) -> None:
        super().__init__()
        if d_key % 4 or d_key < N_CHANNELS:
            raise ValueError(
                f"map key width must be a multiple of 4 (cos/sin of x and y) and hold the {N_CHANNELS} value "
                f"channels with a fixed meaning, got {d_key}"
            )
        self.d_key = d_key
        self.period = float(period)
        self.tokens_per_frame = max_objects + free_per_frame  # object tokens, then free-space samples
        self.chunk_tokens = chunk_frames * self.tokens_per_frame
        self.max_objects = max_objects
        n_harm = d_key // 4
        self.register_buffer("harmonics", torch.arange(n_harm, dtype=torch.float32), persistent=False)  # [nh]
        self.key_proj = nn.Linear(d_key, d_key, bias=False)  # learned projection, init identity
        nn.init.eye_(self.key_proj.weight)
        self.fw = SpatialFastWeights(d_key, 1, hidden_ratio, lr_base, lr_scale)
        cells = int(round(math.sqrt(self.fw.hidden)))
        if cells * cells != self.fw.hidden:
            raise ValueError(f"map hidden width {self.fw.hidden} must be a square (one place cell per lattice point)")
        with torch.no_grad():
            w0, w2 = self._place_cells(cells, sharpness, threshold)
            self.fw.w0.copy_(w0.view_as(self.fw.w0))
            self.fw.w2.copy_(w2.view_as(self.fw.w2))
        self.hidden = self.fw.hidden
        self.cell_spacing = self.period / cells  # normalised units between neighbouring place cells
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
            for j in range(3):
                w[CH_SIZE_POW + j, c + 9 + j] = 1.0
            for j in range(N_CLASS_ONEHOT):
                w[CH_CLASS + j, j] = 1.0
            self.v_raw.weight.copy_(w)
            self.v_raw.bias.copy_(b)
        # Reads are divided by the kernel's peak h(k).h(k) (averaged over positions between the
        # lattice points), so the presence channel reads sum(eta) over nearby observations / lr_base,
        # i.e. about the number of observations written there.
        with torch.no_grad():
            g = (torch.arange(4 * cells, dtype=torch.float32) + 0.5) * self.period / (4 * cells)
            probe = torch.stack(torch.meshgrid(g[:8], g[:8], indexing="ij"), -1).reshape(-1, 2)
            peak = self.features_of(self.keys(probe)).pow(2).sum(-1).mean()
        self.register_buffer("read_scale", 1.0 / (lr_base * peak), persistent=False)

    # ------------------------------------------------------------------ pieces
    def keys(self, xy: Tensor) -> Tensor:
        """[..., 2] normalised world xy -> [..., dk] unit keys: cos/sin of harmonics 0..nh-1 of x and of
        y on the torus of side ``period`` (harmonic 0 gives the constant channel the place cells' bias uses).
        """
        a = (2.0 * math.pi / self.period) * xy.unsqueeze(-1) * self.harmonics  # [..., 2, nh]
        phi = torch.cat([a[..., 0, :].cos(), a[..., 0, :].sin(), a[..., 1, :].cos(), a[..., 1, :].sin()], -1)
        return nn.functional.normalize(self.key_proj(phi), dim=-1, eps=1e-6)

    def _place_cells(self, cells: int, sharpness: float, threshold: float) -> tuple[Tensor, Tensor]:
        """Slow weights W0, W2 [hidden, dk] that make the hidden units place cells on a cells x cells
        lattice over the torus.

        With K1(d) = sum_n taper_n cos(2 pi n d / period) (a Hann-tapered 1-D kernel, peak 1, tiny
        sidelobes), unit j at lattice point c_j computes
            a_j = sharpness * (K1(x - cx_j) + K1(y - cy_j) - threshold),   b_j = (K1(x - cx_j) + K1(y - cy_j)) / 2
        and h_j = silu(a_j) * b_j fires only near c_j (both 1-D kernels high). The read-out kernel
        h(q).h(k) is then a bump of about 0.35 m half width (at half height) with no far-field sidelobes, unlike
        random Fourier features, whose sidelobes add up over a long stream.
        """
        nh = self.d_key // 4
        taper = 0.5 * (1.0 + torch.cos(math.pi * torch.arange(nh, dtype=torch.float32) / nh))
        taper = taper / taper.sum()
        g = (torch.arange(cells, dtype=torch.float32) + 0.5) * self.period / cells
        centres = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)  # [hidden, 2]
        a = (2.0 * math.pi / self.period) * centres.unsqueeze(-1) * self.harmonics  # [hidden, 2, nh]
        # K1(x - c) = sum_n taper_n (cos(nx) cos(nc) + sin(nx) sin(nc)): linear in the raw key phi(x)
        w = torch.cat([taper * a[:, 0].cos(), taper * a[:, 0].sin(), taper * a[:, 1].cos(), taper * a[:, 1].sin()], -1)
        norm = math.sqrt(2.0 * nh)  # |phi| (keys are unit vectors: phi / norm)
        w0 = sharpness * norm * w
        w0[:, 0] -= sharpness * threshold * norm  # phi channel 0 = cos(0) = 1: the bias
        w2 = 0.5 * norm * w
        return w0, w2

    def features_of(self, k: Tensor) -> Tensor:
        """Unit keys [..., dk] -> the slow key features h(k) = silu(W0 k) * (W2 k) [..., hidden]."""
        return self._features_state({"w0": self.fw.w0[0], "w2": self.fw.w2[0]}, k)

    def free_values(self, shape: tuple[int, ...], device=None) -> Tensor:
        """Values of free-space samples: [*shape, dk], 1 in CH_FREE and 0 elsewhere (no presence, no class)."""
        v = torch.zeros(*shape, self.d_key, device=device)
        v[..., CH_FREE] = 1.0
        return v

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

    def step(self, s: dict, k: Tensor, v: Tensor, eta: Tensor) -> dict:
        """One inner step on a chunk (k, v [B, 1, C, dk], eta [B, 1, C]) of the unprefixed state ``s``.

        Before the step, the chunk reads the map (apply-then-update): an observation of a class the
        map does not yet hold at that place is *novel*; its novelty exp(-held / NOVELTY_SCALE) and
        novelty * time are written into its class's birth channels, so the map remembers when each object was
        first seen (the time channels alone only give the mean and spread of all sightings, and
        objects are revisited). Reads the class and time from the value layout (channels CH_CLASS..,
        CH_TIME).
        """
        if v.shape[-1] >= N_CHANNELS:
            held = self._read_state(s, k)  # [B, 1, C, dk]: what the map held before this chunk
            cls = v[..., CH_CLASS:CH_BIRTH]
            own = (held[..., CH_CLASS:CH_BIRTH] * cls).sum(-1, keepdim=True) / cls.sum(-1, keepdim=True).clamp_min(1e-6)
            novelty = torch.exp(-own.clamp_min(0.0) / NOVELTY_SCALE) * cls  # [B, 1, C, n_classes]
            t = v[..., CH_TIME : CH_TIME + 1]
            v = torch.cat([v[..., :CH_BIRTH], novelty, novelty * t, v[..., CH_SIZE_POW:]], -1)  # no in-place: autograd
        return self.fw.update(s, k, v, eta)

    @staticmethod
    def _features_state(s: dict, q: Tensor) -> Tensor:
        """Unit keys q [..., dk] -> key features h(q) = silu(W0 q) * (W2 q) [..., hidden] under s's W0, W2."""
        return torch.nn.functional.silu(q @ s["w0"].transpose(-1, -2)) * (q @ s["w2"].transpose(-1, -2))

    def _read_state(self, s: dict, q: Tensor) -> Tensor:
        """Unit keys q [B, 1, N, dk] -> f_W(q) - f_slow(q) [B, 1, N, dk], in observation units."""
        dw1 = s["w1"] - self.fw.w1.float().unsqueeze(0)  # the written content
        return (self._features_state(s, q) @ dw1.transpose(-1, -2)) * self.read_scale

    def write(self, st: dict, k: Tensor, v: Tensor, valid: Tensor, frames_seen: int) -> dict:
        """Write the tokens of whole frames (per frame: object tokens, then free-space samples).

        k, v: [B, F*T, dk] with T = tokens_per_frame; valid [B, F*T] bool; frames_seen: frames
        written before these.
        Same chunk boundaries as the backbone (chunk_frames frames): the step fires when a
        chunk completes; a partial chunk waits in the pending buffer.
        """
        s = self._unprefix(st)
        eta = self.fw.learning_rates(v, valid)  # [B, 1, N]
        k4, v4 = k.unsqueeze(1).float(), v.unsqueeze(1).float()  # [B, 1, N, dk]
        n = k.shape[1]
        chunk = self.chunk_tokens
        pending = (frames_seen * self.tokens_per_frame) % chunk
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
                s = self.step(s, keys, vals, etas)
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
        return self._read_state(self._with_pending(st), self.keys(xy).unsqueeze(1).float()).squeeze(1)  # [B, S, dk]

    def _with_pending(self, st: dict) -> dict:
        """The unprefixed state with the pending (incomplete) chunk stepped in (``st`` unchanged)."""
        s = self._unprefix(st)
        if bool((s["pend_eta"] != 0).any()):
            s = self.step(s, s["pend_k"], s["pend_v"], s["pend_eta"])
        return s

    def read_at_features(self, st: dict, h: Tensor) -> Tensor:
        """Like ``read`` for queries given by their slow key features h [S, hidden] -> [B, S, dk].

        Why: the map's W0, W2 never move (the step updates W1 only), so the features of a fixed
        grid of location queries can be computed once (``grid_features``) and a read is then one
        matrix product with the written content.
        """
        s = self._with_pending(st)
        dw1 = s["w1"] - self.fw.w1.float().unsqueeze(0)  # [B, 1, dk, hidden]: the written content
        return (h @ dw1.transpose(-1, -2)).squeeze(1) * self.read_scale

    def grid_positions(self, cells: int) -> Tensor:
        """[cells(y), cells(x), 2] normalised positions of a grid covering one torus period around 0."""
        step = self.period / cells
        idx = (torch.arange(cells, dtype=torch.float32) + 0.5 - cells / 2) * step
        gy, gx = torch.meshgrid(idx, idx, indexing="ij")
        return torch.stack([gx, gy], -1)

    @torch.no_grad()
    def grid_features(self, cells: int) -> Tensor:
        """Slow key features of ``grid_positions(cells)``: [cells * cells, hidden], cached until the
        slow weights change (inference only; training reads through ``read``)."""
        w0 = self.fw.w0
        key = (cells, w0.device, w0._version, self.fw.w2._version, self.key_proj.weight._version)
        if getattr(self, "_grid_cache", (None,))[0] != key:
            h = self.features_of(self.keys(self.grid_positions(cells).to(w0.device).reshape(-1, 2)))
            self._grid_cache = (key, h)
        return self._grid_cache[1]

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
