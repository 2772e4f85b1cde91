"""HybridBlock: sliding-window attention and the TTT fast-weight branch in parallel.

    h = RMSNorm(x);  q, k, v = split(W_qkv h)                  shared by both branches
    a = SWA(q, k, v)                                          causal, window in tokens
    t = gate * HeadRMSNorm(f_W(q'))                           q', k', v' = conv3d(q, k, v)
                                                              (grid tokens), silu+L2 on q', k'
    x = x + W_o (a + t)                                       summed before the out-proj
    x = x + MLP(RMSNorm(x))

W_o, the MLP's down-projection and the TTT gate start at zero, so a fresh block is
exactly the identity on its residual stream. ``use_ttt=False`` drops the TTT branch
(the sliding-window-only baseline at the same width/depth); ``window=None`` makes the
attention full-context (the growing-state baseline).

Anchor layers (``anchor=True``, about 1 in 4 in the backbone) stand in for the
paper's full-attention layers, which a stream cannot afford. Choice: attention over
the local window *plus* a bounded FIFO summary of past chunks: when a chunk of
tokens completes, the mean of its valid keys and of its values becomes one summary
token; the last ``n_summary`` of them are kept (fixed size). Queries of chunk i see
the summaries of chunks < i only (same apply-then-update rule as the fast weights,
so any frame grouping gives the same result). Cost per token: window + n_summary
keys instead of all past tokens; the scaling benchmark measures it.

Processing: the call's tokens are cut into pieces at chunk boundaries (global token
positions), the piece loop carries the per-layer streaming state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import attend, empty_cache, read_attend
from .fast_weights import FastWeightSwiGLU, fast_dtype, qk_transform
from .spatial_conv import SpatialConv3d


class HybridBlock(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        tokens_per_frame: int,
        chunk_frames: int,
        window: int | None,
        grid_hw: tuple[int, int] = (0, 0),
        use_ttt: bool = True,
        anchor: bool = False,
        n_summary: int = 64,
        conv: bool = True,
        causal_conv: bool = True,
        ttt_hidden_ratio: float = 2.0,
        ttt_lr_base: float = 1e-3,
        ttt_lr_scale: float = 1.0,
        momentum: float = 0.0,
        muon: bool = False,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} not divisible by n_heads {n_heads}")
        if window is not None and window < 1:
            raise ValueError("window must be >= 1 token (or None for full context)")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.tokens_per_frame = tokens_per_frame
        self.chunk_tokens = chunk_frames * tokens_per_frame
        self.window = window
        self.anchor = anchor
        self.n_summary = n_summary
        self.use_ttt = use_ttt
        self.norm1 = nn.RMSNorm(d_model, eps=1e-6)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.norm2 = nn.RMSNorm(d_model, eps=1e-6)
        hidden = int(mlp_ratio * d_model)
        self.mlp_up = nn.Linear(d_model, hidden)
        self.mlp_down = nn.Linear(hidden, d_model)
        # Zero-init residual outputs: the block starts as the identity.
        nn.init.zeros_(self.o_proj.weight)
        nn.init.zeros_(self.mlp_down.weight)
        nn.init.zeros_(self.mlp_down.bias)
        self.ttt = (
            FastWeightSwiGLU(d_model, n_heads, ttt_hidden_ratio, ttt_lr_base, ttt_lr_scale, momentum, muon)
            if use_ttt
            else None
        )
        use_conv = use_ttt and conv and grid_hw[0] * grid_hw[1] > 0
        self.conv = SpatialConv3d(3 * d_model, grid_hw, causal_conv) if use_conv else None

    # ----------------------------------------------------------------- state
    def init_state(self, batch: int, device=None, dtype=None) -> dict[str, Tensor]:
        """Fresh per-layer state: KV cache, anchor summary, conv cache, fast weights + pending chunk."""
        dtype = dtype or self.qkv.weight.dtype
        fd = fast_dtype(dtype)
        h, dh = self.n_heads, self.d_head
        st = empty_cache(batch, h, dh, self.window, device, dtype)
        if self.anchor:
            st["sum_k"] = torch.zeros(batch, h, self.n_summary, dh, device=device, dtype=dtype)
            st["sum_v"] = torch.zeros(batch, h, self.n_summary, dh, device=device, dtype=dtype)
            st["sum_valid"] = torch.zeros(batch, self.n_summary, dtype=torch.bool, device=device)
            st["acc_k"] = torch.zeros(batch, h, dh, device=device, dtype=fd)
            st["acc_v"] = torch.zeros(batch, h, dh, device=device, dtype=fd)
            st["acc_n"] = torch.zeros(batch, device=device, dtype=fd)
        if self.conv is not None and self.conv.causal:
            st["conv_cache"] = self.conv.init_cache(batch, device, dtype)
        if self.ttt is not None:
            st.update(self.ttt.init_state(batch, device, fd))
            st.update(self.ttt.init_pending(batch, self.chunk_tokens, device, fd))
        return st

    # --------------------------------------------------------------- helpers
    def _heads(self, x: Tensor) -> Tensor:  # [B,N,D] -> [B,H,N,dh]
        b, n, _ = x.shape
        return x.view(b, n, self.n_heads, self.d_head).transpose(1, 2)

    def _merge(self, x: Tensor) -> Tensor:  # [B,H,N,dh] -> [B,N,D]
        b, h, n, dh = x.shape
        return x.transpose(1, 2).reshape(b, n, h * dh)

    def _prefix(self, st: dict[str, Tensor]):
        return (st["sum_k"], st["sum_v"], st["sum_valid"]) if self.anchor else None

    def _summarise(self, st: dict[str, Tensor], k: Tensor, v: Tensor, valid: Tensor, complete: bool) -> dict:
        """Accumulate a piece into the running chunk mean; on chunk completion push it to the FIFO."""
        fd = st["acc_k"].dtype
        w = valid.to(fd)[:, None, :, None]  # [B,1,n,1]
        acc_k = st["acc_k"] + (k.to(fd) * w).sum(2)
        acc_v = st["acc_v"] + (v.to(fd) * w).sum(2)
        acc_n = st["acc_n"] + valid.to(fd).sum(1)
        new = dict(st)
        if not complete:
            new.update(acc_k=acc_k, acc_v=acc_v, acc_n=acc_n)
            return new
        denom = acc_n.clamp(min=1.0)[:, None, None]
        mk = (acc_k / denom).to(st["sum_k"].dtype).unsqueeze(2)  # [B,H,1,dh]
        mv = (acc_v / denom).to(st["sum_v"].dtype).unsqueeze(2)
        new["sum_k"] = torch.cat([st["sum_k"][:, :, 1:], mk], dim=2)  # FIFO: oldest out
        new["sum_v"] = torch.cat([st["sum_v"][:, :, 1:], mv], dim=2)
        new["sum_valid"] = torch.cat([st["sum_valid"][:, 1:], (acc_n > 0).unsqueeze(1)], dim=1)
        new.update(acc_k=torch.zeros_like(acc_k), acc_v=torch.zeros_like(acc_v), acc_n=torch.zeros_like(acc_n))
        return new

    def _ttt_qkv(self, q: Tensor, k: Tensor, v: Tensor, valid: Tensor, st: dict, n_frames: int):
        """Conv over the grid tokens (TTT branch only), then silu+L2 on q and k. In/out [B,N,D]."""
        new_cache = None
        if self.conv is not None:
            b, n, d = q.shape
            qkv = torch.cat([q, k, v], dim=-1) * valid.unsqueeze(-1).to(q.dtype)  # padding does not leak
            qkv = qkv.view(b, n_frames, self.tokens_per_frame, 3 * d)
            out, new_cache = self.conv(qkv, st.get("conv_cache"))
            q, k, v = out.reshape(b, n, 3 * d).split(d, dim=-1)
        return qk_transform(self._heads(q)), qk_transform(self._heads(k)), self._heads(v), new_cache

    def _mix(self, x: Tensor, h: Tensor, attn: Tensor, ttt: Tensor | None) -> Tensor:
        mixed = attn if ttt is None else attn + ttt
        x = x + self.o_proj(mixed)
        return x + self.mlp_down(F.gelu(self.mlp_up(self.norm2(x))))

    # ---------------------------------------------------------------- forward
    def forward(self, x: Tensor, valid: Tensor, st: dict[str, Tensor], frames_seen: int) -> tuple[Tensor, dict]:
        """x [B, N, D] (N = whole frames), valid [B, N]; st from init_state / a previous call;
        frames_seen = frames already consumed before x. Returns y [B, N, D] and the new state."""
        b, n, d = x.shape
        tpf = self.tokens_per_frame
        if n % tpf:
            raise ValueError(f"{n} tokens is not a whole number of {tpf}-token frames")
        n_frames = n // tpf
        h = self.norm1(x)
        q, k, v = self.qkv(h).split(d, dim=-1)
        st = dict(st)
        if self.ttt is not None:
            tq, tk, tv, conv_cache = self._ttt_qkv(q, k, v, valid, st, n_frames)
            if conv_cache is not None:
                st["conv_cache"] = conv_cache
            eta = self.ttt.learning_rates(h, valid)  # [B,H,N]
        q, k, v = self._heads(q), self._heads(k), self._heads(v)

        chunk = self.chunk_tokens
        pending = (frames_seen * tpf) % chunk
        attn_out, ttt_out = [], []
        start = 0
        cache_keys = ("kv_k", "kv_v", "kv_valid")
        while start < n:
            m = min(chunk - pending, n - start)
            sl = slice(start, start + m)
            complete = pending + m == chunk
            a, kv = attend(q[:, :, sl], k[:, :, sl], v[:, :, sl], valid[:, sl],
                           {c: st[c] for c in cache_keys}, self.window, self._prefix(st))
            if self.anchor:
                # the summary is updated after the piece attended: chunk i sees chunks < i
                st = self._summarise(st, k[:, :, sl], v[:, :, sl], valid[:, sl], complete)
            st.update(kv)
            attn_out.append(a)
            if self.ttt is not None:
                o, st = self.ttt.step(st, tq[:, :, sl], tk[:, :, sl], tv[:, :, sl], eta[:, :, sl], pending)
                ttt_out.append(o)
            pending = 0 if complete else pending + m
            start += m
        attn = self._merge(torch.cat(attn_out, dim=2))
        ttt = self.ttt.output(torch.cat(ttt_out, dim=2), x.dtype) if self.ttt is not None else None
        return self._mix(x, h, attn, ttt), st

    def read(self, x: Tensor, st: dict[str, Tensor]) -> Tensor:
        """Extra query tokens x [B, S, D] against the current state; the state is not changed.

        Attention: the KV cache (+ anchor summary) and each query itself. TTT: the fast weights
        as last applied (the pending chunk is not applied yet, exactly as for stream tokens).
        Queries are not grid tokens, so the conv does not touch them.
        """
        d = x.shape[-1]
        h = self.norm1(x)
        q, k, v = self.qkv(h).split(d, dim=-1)
        ttt = None
        if self.ttt is not None:
            ttt = self.ttt.output(self.ttt.apply(st, qk_transform(self._heads(q))), x.dtype)
        a = read_attend(self._heads(q), self._heads(k), self._heads(v), st, self._prefix(st))
        return self._mix(x, h, self._merge(a), ttt)
