"""The stream's state: bounded, independent of how many frames have been seen.

Per language-model layer:
  - TTT layers: fast weights (fp32), their starting row norms, momentum of the last
    update, the pending tokens of the current partial chunk (< chunk + one frame),
    and the raw Q/K/V of the last frame for the causal conv;
  - every layer: the attention KV window (TTT layers: window_size; anchors:
    anchor_window), keys after rope.
Plus the position counter (Qwen3-VL M-RoPE) and the token counter.

States are never modified in place: every update builds new tensors, so fork()
(a shallow copy) is a free snapshot for answering a question.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

PENDING_KEYS = ("k", "v", "lr0", "lr1", "lr2", "mom")


@dataclass
class LayerState:
    keys: torch.Tensor | None = None  # [1, Hkv, L, hd]
    values: torch.Tensor | None = None  # [1, Hkv, L, hd]
    weights: tuple | None = None  # (W0, W1, W2) fp32, TTT layers only
    norms: tuple | None = None  # starting row norms of W0, W1, W2
    momentum_dw: tuple | None = None  # last update (momentum), or None
    pending: dict = field(default_factory=dict)  # PENDING_KEYS -> [H, n, *]
    conv_prev: tuple | None = None  # raw (q, k, v) [h*w, C] of the last frame

    def pending_len(self) -> int:
        return 0 if not self.pending else int(self.pending["k"].shape[1])


@dataclass
class StreamState:
    layers: list[LayerState]
    next_position: int = 0  # next M-RoPE text position
    n_tokens: int = 0  # tokens prefilled so far
    n_frames: int = 0

    def fork(self) -> "StreamState":
        return StreamState(
            layers=[dataclasses.replace(ls, pending=dict(ls.pending)) for ls in self.layers],
            next_position=self.next_position,
            n_tokens=self.n_tokens,
            n_frames=self.n_frames,
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor, by a stable name (for nbytes and for tests)."""
        out: dict[str, torch.Tensor] = {}
        for i, ls in enumerate(self.layers):
            for name in ("keys", "values"):
                t = getattr(ls, name)
                if t is not None:
                    out[f"{i}.{name}"] = t
            for group in ("weights", "norms", "momentum_dw", "conv_prev"):
                ts = getattr(ls, group)
                if ts is not None:
                    for j, t in enumerate(ts):
                        out[f"{i}.{group}.{j}"] = t
            for k, t in ls.pending.items():
                if t is not None:
                    out[f"{i}.pending.{k}"] = t
        return out

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors().values())
