"""The baselines of the learned TTT map: keep the write tokens and attend over them at question time.

``full_context`` keeps every write token of the stream (the "traditional" model: memory and
question-time compute grow with the stream); ``sliding_window`` keeps the tokens of the last
``window_s`` seconds. Both use the same tokens, the same learned rates and the same readout
as the TTT map (memory/learned_model.py); only the memory differs: instead of fast weights
fitted by gradient steps, a location query attends over the stored tokens.

Attention, for a query at q and value channel c, with a Gaussian position kernel k (spread
``SIGMA``, about the TTT map's finest cell) and a sink of weight 1 (an empty place reads 0):

    read_c(q) = sum_i k(q - x_i) eta_ic v_ic / (1 + sum_i k(q - x_i) eta_ic)

computed exactly for all grid queries at once by splatting the tokens onto the query grid
and blurring with k (the kernel is separable). The birth channels (when something was
first seen at a place) are the earliest object time near q: full attention can look it up.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from spatial_ttt_ros.memory import learned_map as lm
from spatial_ttt_ros.memory.learned_readout import grid_axes
from spatial_ttt_ros.memory.learned_writes import KIND_OBJECT, WriteTokens

SIGMA = 0.3  # m


def _blur(x: Tensor, res: float) -> Tensor:
    """x [C, H, W] -> Gaussian blur with SIGMA (separable, truncated at 3 sigma)."""
    r = max(1, int(math.ceil(3 * SIGMA / res)))
    t = torch.arange(-r, r + 1, dtype=x.dtype) * res
    k = torch.exp(-0.5 * (t / SIGMA) ** 2)
    c = x.shape[0]
    y = F.conv2d(x.unsqueeze(0), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, r), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(r, 0), groups=c)
    return y[0]


def attention_grid(toks: WriteTokens, eta: Tensor, times: Tensor, lo: np.ndarray, hi: np.ndarray):
    """Stored tokens (with their rates eta [N, C] and times [N]) -> reads [H, W, C] on the grid over [lo, hi]."""
    xs, ys, res = grid_axes(lo, hi)
    h, w = len(ys), len(xs)
    c = lm.N_CHANNELS
    fx = (toks.xy[:, 0] - float(xs[0])) / res
    fy = (toks.xy[:, 1] - float(ys[0])) / res
    ix, iy = torch.floor(fx).long(), torch.floor(fy).long()
    ax, ay = fx - ix, fy - iy
    mass = torch.zeros(h * w, c)
    num = torch.zeros(h * w, c)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        kx = ax if dx else 1 - ax
        ky = ay if dy else 1 - ay
        jx, jy = ix + dx, iy + dy
        ok = (jx >= 0) & (jx < w) & (jy >= 0) & (jy < h)
        idx = (jy * w + jx)[ok]
        wt = (kx * ky)[ok].unsqueeze(-1) * eta[ok]  # [n, C]
        mass = mass.index_add(0, idx, wt)
        num = num.index_add(0, idx, wt * toks.target[ok])
    # Splatting puts sum_i eta_i k(.) into cells of area res^2; the kernel's peak is 1.
    mass = _blur(mass.T.reshape(c, h, w), res)
    num = _blur(num.T.reshape(c, h, w), res)
    reads = (num / (1.0 + mass)).permute(1, 2, 0)  # [H, W, C]
    # Birth: the earliest object time within about SIGMA of each cell.
    obj = toks.kind == KIND_OBJECT
    first = torch.full((h * w,), float("inf"))
    oix = torch.round(fx[obj]).long().clamp(0, w - 1)
    oiy = torch.round(fy[obj]).long().clamp(0, h - 1)
    if bool(obj.any()):
        first = first.scatter_reduce(0, oiy * w + oix, times[obj], reduce="amin")
    r = max(1, int(round(SIGMA / res)))
    first = -F.max_pool2d(-first.view(1, 1, h, w), 2 * r + 1, 1, r)[0, 0]
    ev = lm.evidence(reads)
    seen = torch.isfinite(first)
    reads = reads.clone()
    reads[..., lm.CH_BIRTH] = torch.where(seen, ev, torch.zeros_like(ev))
    reads[..., lm.CH_BIRTH_T] = torch.where(seen, ev * first.nan_to_num(posinf=0.0), torch.zeros_like(ev))
    return reads, xs, ys
