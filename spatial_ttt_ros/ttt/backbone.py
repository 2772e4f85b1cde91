"""TTTBackbone: a stack of HybridBlocks over a stream of fixed-layout frames.

A frame is ``tokens_per_frame`` tokens ``[ego, grid gh*gw (row-major), object slots M]``
(M = tokens_per_frame - 1 - gh*gw) with a bool ``valid`` mask: padding tokens are
never attended to and never written into the fast weights.

    y, state = backbone(x [B,F,T,D], valid [B,F,T], state=None)   # state=None: new episode
    out = backbone.read(state, queries [B,S,D])                    # [B,S,D], state unchanged

Feeding the frames one at a time, 7 at a time or all at once gives the same y (to
float tolerance): every layer cuts its tokens at the same global chunk boundaries
and carries its caches in the state. Layers are processed layer-major within a call
(whole-call projections, one conv per call), which is equivalent to chunk-major
because every dependency is causal.

Variants (BackboneConfig): ttt=False -> sliding-window-only baseline; full_context=True
-> every layer attends over all past tokens, no TTT, no anchors, state grows linearly.
Anchor layers: layer i with (i + 1) % anchor_every == 0 (window + bounded chunk summary,
no TTT branch; see hybrid_block.py). Output is the final residual stream after an RMSNorm.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .hybrid_block import HybridBlock
from .state import StreamingState


@dataclass
class BackboneConfig:
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    window_frames: int = 2  # sliding window = window_frames * tokens_per_frame tokens
    chunk_frames: int = 4  # fast-weight update every chunk_frames frames (large-chunk TTT)
    anchor_every: int = 4  # 0: no anchor layers
    grid_hw: tuple[int, int] = (8, 8)
    tokens_per_frame: int = 1 + 64 + 16
    ttt: bool = True
    conv: bool = True
    causal_conv: bool = True
    momentum: float = 0.0  # beta; 0 = off
    muon: bool = False
    full_context: bool = False
    ttt_hidden_ratio: float = 2.0  # fast MLP hidden = ratio * d_head
    ttt_lr_base: float = 1e-3  # softplus(bias) at init
    ttt_lr_scale: float = 1.0  # eta = scale * softplus(w.x + b)
    n_summary: int = 64  # anchor summary slots (chunks remembered by anchor layers)
    mlp_ratio: float = 4.0

    def __post_init__(self):
        self.grid_hw = (int(self.grid_hw[0]), int(self.grid_hw[1]))
        if self.tokens_per_frame < 1 + self.grid_hw[0] * self.grid_hw[1]:
            raise ValueError(
                f"tokens_per_frame {self.tokens_per_frame} < 1 + grid {self.grid_hw[0]}x{self.grid_hw[1]}"
            )
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} not divisible by n_heads {self.n_heads}")
        if self.window_frames < 1 or self.chunk_frames < 1:
            raise ValueError("window_frames and chunk_frames must be >= 1")

    def is_anchor(self, layer: int) -> bool:
        return (not self.full_context) and self.anchor_every > 0 and (layer + 1) % self.anchor_every == 0

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["grid_hw"] = list(self.grid_hw)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BackboneConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown BackboneConfig fields: {sorted(unknown)}")
        d = dict(d)
        if "grid_hw" in d:
            d["grid_hw"] = tuple(d["grid_hw"])
        return cls(**d)


class TTTBackbone(nn.Module):
    def __init__(self, config: BackboneConfig):
        super().__init__()
        self.config = c = config
        window = None if c.full_context else c.window_frames * c.tokens_per_frame
        self.blocks = nn.ModuleList(
            HybridBlock(
                c.d_model,
                c.n_heads,
                tokens_per_frame=c.tokens_per_frame,
                chunk_frames=c.chunk_frames,
                window=window,
                grid_hw=c.grid_hw,
                use_ttt=c.ttt and not c.full_context and not c.is_anchor(i),
                anchor=c.is_anchor(i),
                n_summary=c.n_summary,
                conv=c.conv,
                causal_conv=c.causal_conv,
                ttt_hidden_ratio=c.ttt_hidden_ratio,
                ttt_lr_base=c.ttt_lr_base,
                ttt_lr_scale=c.ttt_lr_scale,
                momentum=c.momentum,
                muon=c.muon,
                mlp_ratio=c.mlp_ratio,
            )
            for i in range(c.n_layers)
        )
        self.norm_out = nn.RMSNorm(c.d_model, eps=1e-6)

    # ------------------------------------------------------------------ state
    def signature(self) -> dict:
        """Architecture signature stored with a state (any field change makes states incompatible)."""
        return {"class": "TTTBackbone", **self.config.to_dict()}

    def init_state(self, batch_size: int, device=None, dtype=None) -> StreamingState:
        """A new episode: fast weights reset to the slow weights, empty caches."""
        p = next(self.parameters())
        device = p.device if device is None else device
        dtype = dtype or p.dtype
        return StreamingState([blk.init_state(batch_size, device, dtype) for blk in self.blocks], 0, self.signature())

    def load_state(self, path: str | Path, device=None) -> StreamingState:
        """Load a state saved by ``StreamingState.save``; refuses another architecture's state."""
        device = next(self.parameters()).device if device is None else device
        return StreamingState.load(path, signature=self.signature(), device=device)

    # ---------------------------------------------------------------- forward
    def forward(
        self, x: Tensor, valid: Tensor | None = None, state: StreamingState | None = None
    ) -> tuple[Tensor, StreamingState]:
        """x [B, F, T, D], valid [B, F, T] bool (None: all valid) -> (y [B, F, T, D], new state)."""
        c = self.config
        if x.dim() != 4 or x.shape[2] != c.tokens_per_frame or x.shape[3] != c.d_model:
            raise ValueError(f"x must be [B, F, {c.tokens_per_frame}, {c.d_model}], got {list(x.shape)}")
        b, f, t, d = x.shape
        if valid is None:
            valid = torch.ones(b, f, t, dtype=torch.bool, device=x.device)
        elif valid.shape != (b, f, t):
            raise ValueError(f"valid must be [{b}, {f}, {t}], got {list(valid.shape)}")
        if state is None:
            state = self.init_state(b, x.device, x.dtype)
        elif state.batch_size != b:
            raise ValueError(f"state holds batch {state.batch_size}, input has batch {b}")
        if c.ttt and c.conv and not c.causal_conv and state.frames_seen > 0:
            raise ValueError("the centred (non-causal) conv needs the whole stream in one call; use causal_conv=True")
        if f == 0:
            return x, state
        h = x.reshape(b, f * t, d)
        vflat = valid.reshape(b, f * t).to(torch.bool)
        layers = []
        for blk, st in zip(self.blocks, state.layers):
            h, st = blk(h, vflat, st, state.frames_seen)
            layers.append(st)
        y = self.norm_out(h).view(b, f, t, d)
        return y, StreamingState(layers, state.frames_seen + f, state.signature or self.signature())

    @torch.no_grad()
    def stream(self, frames, state: StreamingState | None = None):
        """Convenience generator for inference: yields (y, state) per [B, F, T, D] batch of frames."""
        for x in frames:
            y, state = self(x, None, state)
            yield y, state

    def read(self, state: StreamingState, queries: Tensor) -> Tensor:
        """queries [B, S, D] -> [B, S, D]: read the memory without changing it.

        Each query runs through every layer as if it were the next token of the stream,
        independently of the other queries: attention over the layer's KV cache (and anchor
        summary) plus itself, and the fast weights as last applied.
        """
        if queries.dim() != 3 or queries.shape[-1] != self.config.d_model:
            raise ValueError(f"queries must be [B, S, {self.config.d_model}], got {list(queries.shape)}")
        if state.batch_size != queries.shape[0]:
            raise ValueError(f"state holds batch {state.batch_size}, queries have batch {queries.shape[0]}")
        h = queries
        for blk, st in zip(self.blocks, state.layers):
            h = blk.read(h, st)
        return self.norm_out(h)
