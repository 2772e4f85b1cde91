"""The hybrid layer of Spatial-TTT: sliding-window attention + a LaCT branch.

It wraps a Qwen3-VL text attention module and keeps its parameters under
`attn_layer.*`, beside the LaCT parameters, with the released checkpoint's names
(THU-SI/Spatial-TTT, qwen-vl-finetune/models/causal_swa_lact.py):

  attn_layer.{q,k,v,o}_proj, attn_layer.{q,k}_norm   shared Q/K/V, out-projection
  w0, w2 [H, dh, d], w1 [H, d, dh]                   initial (slow) fast weights
  lr_proj  Linear(D, 3H)                             per-token lr for W0, W1, W2
  q_scale, q_offset, k_scale, k_offset [Hq*hd]       TTT rescale of the normed q, k
  ttt_scale_proj Linear(D, H)  (zero init)           output gate, silu
  ttt_norm RMSNorm(d)                                per-head norm of the branch output
  momentum_proj.0 Linear(D, H) (+ sigmoid)           momentum of the inner steps
  conv_q, conv_k, conv_v  depthwise Conv3d(C, C, 3)  spatial-predictive mechanism

H = num_lact_heads, d = hidden_size / H, dh = d * inter_multi. The attention
branch and the TTT branch share Q/K/V; their outputs are summed before o_proj.
This module only holds parameters and per-token maps; the stream (chunks, caches)
is driven by engine.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import SpatialTTTConfig


def _inv_softplus(x: float) -> float:
    return x + math.log(-math.expm1(-x))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class LowRankFastWeight(nn.Module):
    """W = w_left @ w_right + 0.5 I (the official low-rank option; the release is full rank)."""

    def __init__(self, heads: int, out_features: int, in_features: int, rank: int, gain: float):
        super().__init__()
        self.w_left = nn.Parameter(torch.randn(heads, out_features, rank) * gain / math.sqrt(rank))
        self.w_right = nn.Parameter(torch.randn(heads, rank, in_features) * gain / math.sqrt(in_features))

    def forward(self) -> torch.Tensor:
        w = self.w_left @ self.w_right
        eye = torch.eye(w.shape[-2], w.shape[-1], dtype=w.dtype, device=w.device)
        return w + 0.5 * eye


class LaCTHybridAttention(nn.Module):
    def __init__(self, attn_layer: nn.Module, cfg: SpatialTTTConfig):
        super().__init__()
        self.attn_layer = attn_layer
        text = attn_layer.config
        self.layer_idx = attn_layer.layer_idx
        self.hidden_size = text.hidden_size
        self.num_attn_heads = text.num_attention_heads
        self.num_kv_heads = text.num_key_value_heads
        self.head_dim = attn_layer.head_dim
        self.q_dim = self.num_attn_heads * self.head_dim
        if self.q_dim != self.hidden_size:
            raise ValueError(
                f"LaCT needs num_attention_heads * head_dim == hidden_size ({self.q_dim} != {self.hidden_size})"
            )
        self.num_fw_heads = cfg.num_lact_heads
        self.fw_head_dim = self.hidden_size // self.num_fw_heads
        d = self.fw_head_dim
        dh = int(d * cfg.inter_multi)
        self.cfg = cfg
        self.base_lr_inv = _inv_softplus(cfg.base_lr)

        if cfg.w0_w2_low_rank > 0:
            self.w0 = LowRankFastWeight(self.num_fw_heads, dh, d, cfg.w0_w2_low_rank, cfg.fw_init_gain)
            self.w2 = LowRankFastWeight(self.num_fw_heads, dh, d, cfg.w0_w2_low_rank, cfg.fw_init_gain)
        else:
            self.w0 = nn.Parameter(torch.randn(self.num_fw_heads, dh, d) / math.sqrt(d))
            self.w2 = nn.Parameter(torch.randn(self.num_fw_heads, dh, d) / math.sqrt(d))
        self.w1 = nn.Parameter(torch.randn(self.num_fw_heads, d, dh) / math.sqrt(dh))

        self.lr_proj = nn.Linear(self.hidden_size, 3 * self.num_fw_heads)
        self.q_scale = nn.Parameter(torch.ones(self.q_dim))
        self.q_offset = nn.Parameter(torch.zeros(self.q_dim))
        self.k_scale = nn.Parameter(torch.ones(self.q_dim))
        self.k_offset = nn.Parameter(torch.zeros(self.q_dim))
        if cfg.learnable_ttt_scale:
            self.ttt_scale_proj = nn.Linear(self.hidden_size, self.num_fw_heads)
            nn.init.zeros_(self.ttt_scale_proj.weight)
            nn.init.zeros_(self.ttt_scale_proj.bias)
        self.ttt_norm = nn.RMSNorm(d, eps=1e-5, elementwise_affine=True)
        if cfg.use_momentum:
            self.momentum_proj = nn.Sequential(nn.Linear(self.hidden_size, self.num_fw_heads), nn.Sigmoid())
        if cfg.use_conv_layer:
            for name in ("conv_q", "conv_k", "conv_v"):
                conv = nn.Conv3d(
                    self.hidden_size, self.hidden_size, kernel_size=3, padding=1,
                    groups=self.hidden_size, padding_mode="replicate", bias=False,
                )
                nn.init.dirac_(conv.weight, groups=self.hidden_size)
                setattr(self, name, conv)

    # -- slow weights -> the stream's starting fast weights -------------------------
    def initial_fast_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w0 = self.w0() if isinstance(self.w0, nn.Module) else self.w0
        w2 = self.w2() if isinstance(self.w2, nn.Module) else self.w2
        return w0.detach().float().clone(), self.w1.detach().float().clone(), w2.detach().float().clone()

    # -- per-token maps ---------------------------------------------------------------
    def attention_qkv(self, x: torch.Tensor):
        """x [1, S, D] -> q [1,S,Hq,hd], k [1,S,Hkv,hd] (normed, no rope), v [1,S,Hkv,hd]."""
        a = self.attn_layer
        b, s, _ = x.shape
        q = a.q_norm(a.q_proj(x).view(b, s, -1, self.head_dim))
        k = a.k_norm(a.k_proj(x).view(b, s, -1, self.head_dim))
        v = a.v_proj(x).view(b, s, -1, self.head_dim)
        return q, k, v

    def ttt_qkv(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Normed heads -> the TTT branch's q, k, v [1, S, Hq*hd] (GQA expanded, rescaled)."""
        b, s = q.shape[:2]
        rep = self.num_attn_heads // self.num_kv_heads
        qf = q.reshape(b, s, -1)
        kf = k.repeat_interleave(rep, dim=2).reshape(b, s, -1)
        vf = v.repeat_interleave(rep, dim=2).reshape(b, s, -1)
        qf = qf * self.q_scale + self.q_offset
        kf = kf * self.k_scale + self.k_offset
        return qf, kf, vf

    def ttt_features(self, x, qf, kf, vf, cos, sin):
        """-> fq, fk, fv [H, S, d]; lr (3 x [H, S, 1]); momentum [H, S, 1] or None."""
        s = x.shape[1]
        heads = lambda t: t[0].view(s, self.num_fw_heads, -1).transpose(0, 1)  # noqa: E731  [H, S, d]
        fq, fk, fv = heads(qf), heads(kf), heads(vf)
        if self.cfg.qkv_silu:
            fq, fk = F.silu(fq), F.silu(fk)
            if not self.cfg.no_v_silu:
                fv = F.silu(fv)
        fq = fq / (fq.norm(dim=-1, keepdim=True) + 1e-5)
        fk = fk / (fk.norm(dim=-1, keepdim=True) + 1e-5)
        if not self.cfg.ttt_nope:  # rope on the first head_dim dims of each fast-weight head
            c, sn = cos[0].unsqueeze(0), sin[0].unsqueeze(0)  # [1, S, hd]
            r = self.head_dim
            fq = torch.cat([fq[..., :r] * c + _rotate_half(fq[..., :r]) * sn, fq[..., r:]], dim=-1)
            fk = torch.cat([fk[..., :r] * c + _rotate_half(fk[..., :r]) * sn, fk[..., r:]], dim=-1)
        lr = F.softplus(self.lr_proj(x).float() + self.base_lr_inv)  # [1, S, 3H], head-major
        lr = lr[0].view(s, self.num_fw_heads, 3).transpose(0, 1)  # [H, S, 3]
        lrs = (lr[..., 0:1], lr[..., 1:2], lr[..., 2:3])
        mom = None
        if self.cfg.use_momentum:
            mom = self.momentum_proj(x).float()[0].transpose(0, 1).unsqueeze(-1)  # [H, S, 1]
        return fq, fk, fv, lrs, mom

    def ttt_readout(self, x: torch.Tensor, fw_out: torch.Tensor) -> torch.Tensor:
        """fw_out [H, S, d] -> branch output [1, S, D] (per-head RMSNorm, silu gate)."""
        y = self.ttt_norm(fw_out.to(self.ttt_norm.weight.dtype))
        if self.cfg.learnable_ttt_scale:
            gate = F.silu(self.ttt_scale_proj(x))[0].transpose(0, 1).unsqueeze(-1)  # [H, S, 1]
            y = y * gate
        return y.transpose(0, 1).reshape(1, x.shape[1], -1).to(x.dtype)


def wrap_with_lact(model: nn.Module, cfg: SpatialTTTConfig) -> nn.Module:
    """Replace `self_attn` of the LaCT layers of a Qwen3VLForConditionalGeneration, in place."""
    layers = model.model.language_model.layers
    for idx, layer in enumerate(layers):
        if not cfg.is_lact(idx):
            continue
        old = layer.self_attn
        p = next(old.parameters())
        layer.self_attn = LaCTHybridAttention(old, cfg).to(dtype=p.dtype, device=p.device)
    return model
