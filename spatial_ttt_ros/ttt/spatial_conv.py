"""Spatial-predictive convolution: depthwise 3x3x3 Conv3d over (time, h, w) of the grid tokens.

Applied to the TTT branch's Q, K and V only (not to the attention's), so that a
fast-weight key/value at a grid cell carries its spatio-temporal neighbourhood: the
inner loss then learns to predict a cell from its neighbours, which is what
Spatial-TTT credits for its 3D gains. Initialised to the identity (Dirac), so a fresh
model is unchanged by it.

Frame layout: tokens [ego, grid h*w (row-major), object slots M]; only the grid
tokens are convolved, ego and objects pass through unchanged.

Causal variant (default): the kernel's time taps see frames t-2, t-1, t (left padding),
and a cache of the last two frames' inputs makes streaming exact with no look-ahead.
Centred variant (causal=False): taps t-1, t, t+1; needs the whole sequence at once
(offline use only; the backbone refuses to stream it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SpatialConv3d(nn.Module):
    """Depthwise 3x3x3 conv on the grid part of frame tokens.

    forward(x [B, F, T, C], cache [B, 2, gh, gw, C] | None) -> (y [B, F, T, C], new cache)
    """

    def __init__(self, channels: int, grid_hw: tuple[int, int], causal: bool = True):
        super().__init__()
        self.channels = channels
        self.grid_hw = (int(grid_hw[0]), int(grid_hw[1]))
        self.causal = causal
        self.weight = nn.Parameter(torch.zeros(channels, 1, 3, 3, 3))
        self.bias = nn.Parameter(torch.zeros(channels))
        with torch.no_grad():
            # Dirac: the "current frame, same cell" tap is 1 (time tap 2 when causal, 1 when centred).
            self.weight[:, 0, 2 if causal else 1, 1, 1] = 1.0

    def init_cache(self, batch: int, device=None, dtype=None) -> Tensor:
        gh, gw = self.grid_hw
        return torch.zeros(batch, 2, gh, gw, self.channels, device=device, dtype=dtype)

    def forward(self, x: Tensor, cache: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        b, f, t, c = x.shape
        gh, gw = self.grid_hw
        g = x[:, :, 1 : 1 + gh * gw].reshape(b, f, gh, gw, c)
        if self.causal:
            if cache is None:
                cache = self.init_cache(b, x.device, x.dtype)
            seq = torch.cat([cache.to(x.dtype), g], dim=1)  # [B, 2+F, gh, gw, C]
            new_cache = seq[:, -2:]
            pad_t = (0, 0)
        else:
            seq, new_cache, pad_t = g, None, (1, 1)
        if torch.is_grad_enabled() and self.weight.requires_grad:
            out = self._taps(seq, pad_t, f)
        else:
            vol = seq.permute(0, 4, 1, 2, 3)  # [B, C, time, gh, gw]
            vol = F.pad(vol, (1, 1, 1, 1) + pad_t)  # zero padding in space (and in time if centred)
            out = F.conv3d(vol, self.weight.to(x.dtype), self.bias.to(x.dtype), groups=c)  # [B,C,F,gh,gw]
            out = out.permute(0, 2, 3, 4, 1)
        out = out.reshape(b, f, gh * gw, c)
        y = torch.cat([x[:, :, :1], out, x[:, :, 1 + gh * gw :]], dim=2)
        return y, new_cache

    def _taps(self, seq: Tensor, pad_t: tuple[int, int], f: int) -> Tensor:
        """The same conv as 27 shifted multiply-adds, channels last: [B, time, gh, gw, C] -> [B, F, gh, gw, C].

        Used when training: CPU depthwise Conv3d backward is ~100x slower than this for our
        tiny grids. Same maths (a test checks both paths agree).
        """
        gh, gw = self.grid_hw
        vol = F.pad(seq, (0, 0, 1, 1, 1, 1) + pad_t)  # [B, F+2, gh+2, gw+2, C]
        w = self.weight.to(seq.dtype).view(self.channels, 27)
        out = self.bias.to(seq.dtype)
        for dt in range(3):
            for dy in range(3):
                for dx in range(3):
                    tap = vol[:, dt : dt + f, dy : dy + gh, dx : dx + gw]
                    out = out + tap * w[:, dt * 9 + dy * 3 + dx]
        return out
