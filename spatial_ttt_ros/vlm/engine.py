"""Prefill and decode of Spatial-TTT over a carried StreamState.

The input is a TokenBatch: token ids, their M-RoPE positions, the *units* (a
chunk may end only at a unit's end: one text token, or one frame's video tokens,
as in the official chunking, which never splits a frame) and the frames' visual
embeddings. Any split of a token sequence into batches at unit boundaries gives
the same outputs and the same final state as one batch: that is what lets frames
enter one by one while the robot drives.

Per layer (Qwen3-VL decoder layer, pre-norm):
  anchor layer : attention over the last `anchor_window` tokens
  LaCT layer   : attention over the last `window_size` tokens
                 + TTT branch on the same Q/K/V (causal conv on video tokens,
                   apply the weights of the finished chunks, write at a chunk's end)
                 summed before o_proj.
Deepstack visual features are added after the first layers at video positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .config import SpatialTTTConfig
from .fast_weights import apply_fast_weights, update_fast_weights
from .lact_layer import LaCTHybridAttention, _rotate_half
from .spatial_conv import causal_frame_conv
from .state import PENDING_KEYS, LayerState, StreamState

QUERY_BLOCK = 1024  # attention is computed in blocks of queries (bounded mask memory)


@dataclass
class FrameInput:
    """One keyframe after the vision tower: h*w merged tokens."""

    embeds: torch.Tensor  # [h*w, D]
    deepstack: list[torch.Tensor]  # each [h*w, D]
    h: int
    w: int


@dataclass
class TokenBatch:
    ids: torch.Tensor  # [S] long
    positions: torch.Tensor  # [3, S] long (t, h, w) M-RoPE
    units: list[tuple[int, int]]  # consecutive [start, end) covering 0..S
    frames: list[tuple[int, FrameInput]] = field(default_factory=list)  # (start, frame)
    next_position: int = 0


def build_batch(segments: list, start_position: int, video_token_id: int) -> TokenBatch:
    """segments: list of `list[int]` (text ids) or FrameInput, in stream order."""
    ids: list[int] = []
    pos: list[torch.Tensor] = []
    units: list[tuple[int, int]] = []
    frames: list[tuple[int, FrameInput]] = []
    p = start_position
    for seg in segments:
        if isinstance(seg, FrameInput):
            n = seg.h * seg.w
            start = len(ids)
            ids.extend([video_token_id] * n)
            hh = torch.arange(seg.h).view(-1, 1).expand(seg.h, seg.w).reshape(-1)
            ww = torch.arange(seg.w).view(1, -1).expand(seg.h, seg.w).reshape(-1)
            pos.append(torch.stack([torch.zeros(n, dtype=torch.long), hh, ww]) + p)
            p += max(seg.h, seg.w)
            units.append((start, start + n))
            frames.append((start, seg))
        else:
            for t in seg:
                units.append((len(ids), len(ids) + 1))
                ids.append(int(t))
                pos.append(torch.full((3, 1), p, dtype=torch.long))
                p += 1
    if not ids:
        raise ValueError("empty batch")
    return TokenBatch(
        ids=torch.tensor(ids, dtype=torch.long),
        positions=torch.cat(pos, dim=1),
        units=units,
        frames=frames,
        next_position=p,
    )


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [1, H, S, hd], cos/sin [1, S, hd]."""
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * c + _rotate_half(x) * s


class SpatialTTTEngine:
    def __init__(self, model, cfg: SpatialTTTConfig):
        self.model = model  # Qwen3VLForConditionalGeneration with LaCT layers
        self.cfg = cfg
        self.lm = model.model.language_model
        self.visual = model.model.visual
        self.video_token_id = int(model.config.video_token_id)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.lm.parameters()).dtype

    # -- state ----------------------------------------------------------------------
    def new_state(self) -> StreamState:
        layers = []
        for layer in self.lm.layers:
            ls = LayerState()
            attn = layer.self_attn
            if isinstance(attn, LaCTHybridAttention):
                w = attn.initial_fast_weights()
                ls.weights = w
                ls.norms = tuple(x.norm(dim=2, keepdim=True) for x in w)
                if self.cfg.use_momentum:
                    ls.momentum_dw = tuple(torch.zeros_like(x) for x in w)
            layers.append(ls)
        return StreamState(layers=layers)

    # -- vision ---------------------------------------------------------------------
    @torch.no_grad()
    def encode_frame(self, pixel_values: torch.Tensor, grid_thw: tuple[int, int, int]) -> FrameInput:
        """pixel_values [t*gh*gw, C*tp*p*p] of one keyframe (grid t == 1) -> FrameInput."""
        grid = torch.tensor([list(grid_thw)], device=self.device)
        pv = pixel_values.to(device=self.device, dtype=self.visual.dtype)
        embeds, deepstack = self.visual(pv, grid_thw=grid)
        merge = self.visual.spatial_merge_size
        t, gh, gw = grid_thw
        if t != 1:
            raise ValueError("one keyframe is one temporal patch (grid t == 1)")
        return FrameInput(embeds=embeds, deepstack=list(deepstack), h=gh // merge, w=gw // merge)

    # -- prefill --------------------------------------------------------------------
    @torch.no_grad()
    def prefill(
        self, state: StreamState, batch: TokenBatch, all_logits: bool = False
    ) -> tuple[torch.Tensor, StreamState]:
        """-> (logits [S, V] if all_logits else [V] of the last token, new state)."""
        dev, dt = self.device, self.dtype
        ids = batch.ids.to(dev)
        h = self.lm.embed_tokens(ids[None])  # [1, S, D]
        if batch.frames:
            h = h.clone()
            for start, fr in batch.frames:
                h[0, start : start + fr.h * fr.w] = fr.embeds.to(dev, dt)
        cos, sin = self.lm.rotary_emb(h, batch.positions.to(dev)[:, None, :])  # [1, S, hd]
        new_layers = []
        for i, layer in enumerate(self.lm.layers):
            x = layer.input_layernorm(h)
            out, ls = self._mix(layer.self_attn, x, cos, sin, batch, state.layers[i], state.n_tokens)
            new_layers.append(ls)
            h = h + out
            h = h + layer.mlp(layer.post_attention_layernorm(h))
            for start, fr in batch.frames:
                if i < len(fr.deepstack):
                    n = fr.h * fr.w
                    h = h.clone()
                    h[0, start : start + n] = h[0, start : start + n] + fr.deepstack[i].to(dev, dt)
        h = self.lm.norm(h)
        hidden = h[0] if all_logits else h[0, -1]
        logits = self.model.lm_head(hidden).float()
        new_state = StreamState(
            layers=new_layers,
            next_position=batch.next_position,
            n_tokens=state.n_tokens + int(batch.ids.numel()),
            n_frames=state.n_frames + len(batch.frames),
        )
        return logits, new_state

    # -- one layer's token mixer ----------------------------------------------------
    def _mix(self, attn, x, cos, sin, batch: TokenBatch, ls: LayerState, n_past: int):
        if isinstance(attn, LaCTHybridAttention):
            q, k, v = attn.attention_qkv(x)
            a, keys, values = self._window_attention(
                attn.attn_layer, q, k, v, cos, sin, ls, n_past, self.cfg.window_size
            )
            ttt, fast = self._ttt_branch(attn, x, q, k, v, cos, sin, batch, ls)
            out = attn.attn_layer.o_proj(a + ttt)
            return out, LayerState(keys=keys, values=values, **fast)
        b, s, _ = x.shape
        q = attn.q_norm(attn.q_proj(x).view(b, s, -1, attn.head_dim))
        k = attn.k_norm(attn.k_proj(x).view(b, s, -1, attn.head_dim))
        v = attn.v_proj(x).view(b, s, -1, attn.head_dim)
        a, keys, values = self._window_attention(attn, q, k, v, cos, sin, ls, n_past, self.cfg.anchor_window)
        return attn.o_proj(a), LayerState(keys=keys, values=values)

    def _window_attention(self, module, q, k, v, cos, sin, ls: LayerState, n_past: int, window):
        """Causal attention over the last `window` tokens (None: all); returns [1, S, Hq*hd] and the new cache."""
        s = q.shape[1]
        qr = _rope(q.transpose(1, 2), cos, sin)  # [1, Hq, S, hd]
        kr = _rope(k.transpose(1, 2), cos, sin)  # [1, Hkv, S, hd]
        vr = v.transpose(1, 2)
        if ls.keys is not None:
            kr_all = torch.cat([ls.keys, kr], dim=2)
            vr_all = torch.cat([ls.values, vr], dim=2)
        else:
            kr_all, vr_all = kr, vr
        n_keys = kr_all.shape[2]
        key_idx = torch.arange(n_keys, device=q.device) + (n_past + s - n_keys)  # absolute token index
        rep = q.shape[2] // k.shape[2]
        kx = kr_all.repeat_interleave(rep, dim=1)
        vx = vr_all.repeat_interleave(rep, dim=1)
        outs = []
        for b0 in range(0, s, QUERY_BLOCK):
            b1 = min(s, b0 + QUERY_BLOCK)
            q_idx = torch.arange(b0, b1, device=q.device) + n_past
            mask = key_idx[None, :] <= q_idx[:, None]
            if window is not None:
                mask = mask & (key_idx[None, :] > q_idx[:, None] - window)
            outs.append(
                F.scaled_dot_product_attention(qr[:, :, b0:b1], kx, vx, attn_mask=mask, scale=module.scaling)
            )
        out = torch.cat(outs, dim=2).transpose(1, 2).reshape(1, s, -1)
        if window is not None and n_keys > window:
            kr_all, vr_all = kr_all[:, :, -window:], vr_all[:, :, -window:]
        return out, kr_all, vr_all

    def _ttt_branch(self, m: LaCTHybridAttention, x, q, k, v, cos, sin, batch: TokenBatch, ls: LayerState):
        qf, kf, vf = m.ttt_qkv(q, k, v)  # [1, S, C]
        conv_prev = ls.conv_prev
        if self.cfg.use_conv_layer and batch.frames:
            qf, kf, vf = qf.clone(), kf.clone(), vf.clone()
            for start, fr in batch.frames:
                end = start + fr.h * fr.w
                raw = (qf[0, start:end].clone(), kf[0, start:end].clone(), vf[0, start:end].clone())
                for j, (t, conv) in enumerate(zip((qf, kf, vf), (m.conv_q, m.conv_k, m.conv_v))):
                    prev = conv_prev[j] if conv_prev is not None else None
                    t[0, start:end] = causal_frame_conv(raw[j], prev, conv.weight, fr.h, fr.w).to(t.dtype)
                conv_prev = raw
        fq, fk, fv, lrs, mom = m.ttt_features(x, qf, kf, vf, cos, sin)
        per_token = {"k": fk, "v": fv, "lr0": lrs[0], "lr1": lrs[1], "lr2": lrs[2], "mom": mom}

        weights, momentum_dw = ls.weights, ls.momentum_dw
        pending = dict(ls.pending)
        plen = ls.pending_len()
        s = x.shape[1]
        outs = []
        seg = 0  # first token not yet read
        for _, ue in batch.units:
            if plen + (ue - seg) < self.cfg.lact_chunk_size:
                continue
            # the chunk ends here: its tokens read the weights before it, then write them
            outs.append(apply_fast_weights(weights, fq[:, seg:ue]))
            chunk = _cat_pending(pending, per_token, seg, ue)
            weights, momentum_dw = update_fast_weights(
                weights, ls.norms, momentum_dw, chunk["k"], chunk["v"],
                (chunk["lr0"], chunk["lr1"], chunk["lr2"]), chunk.get("mom"), self.cfg.use_muon,
            )
            pending, plen, seg = {}, 0, ue
        if seg < s:
            outs.append(apply_fast_weights(weights, fq[:, seg:]))
            pending = _cat_pending(pending, per_token, seg, s)
        fw_out = torch.cat(outs, dim=1)  # [H, S, d]
        fast = dict(weights=weights, norms=ls.norms, momentum_dw=momentum_dw, pending=pending, conv_prev=conv_prev)
        return m.ttt_readout(x, fw_out), fast


def _cat_pending(pending: dict, per_token: dict, a: int, b: int) -> dict:
    out = {}
    for key in PENDING_KEYS:
        new = per_token.get(key)
        if new is None:
            continue
        new = new[:, a:b]
        out[key] = torch.cat([pending[key], new], dim=1) if key in pending else new
    return out
