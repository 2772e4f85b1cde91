"""Readout of the learned TTT map: location queries on a grid -> a small CNN -> objects and floor.

1. Location queries: the map is read on a grid of ``GRID_RES`` m cells over everything
   written (plus a margin); reads are turned into scale-free inputs (``grid_inputs``):
   class evidence, total evidence, free floor, and the channel ratios that are means of
   the observations (height, log of the size power mean, birth time).
2. A learned CNN (``ReadoutNet``, a few dilated 3x3 convolutions, receptive field about 3 m)
   predicts per cell and class an object-centre heatmap and a log-size correction. It is
   trained on the map's reads at the end of long simulated streams (training/learned_train.py).
3. Decoding (``decode``): per class, cells that are the largest of their ``PEAK_WINDOW`` x
   ``PEAK_WINDOW`` neighbourhood (1.4 m at 0.2 m cells: a blob the CNN splits into two peaks
   is one object) with a heatmap above the threshold are objects; the centre is the cell moved by the CNN's
   offset, height and size the ratios at the peak (size corrected by the CNN), first seen the
   earliest birth time among the neighbouring cells that hold the class. A peak under
   ``MIN_SHARE`` of its class's strongest peak is dropped: a faint mislabel (a weak "cabinet"
   on a laptop) would otherwise count as one more object, date its class or answer "closest".

The room is the seen floor (``seen_floor``): cells whose free channel holds at least
``MIN_FREE``, gaps closed and holes under furniture filled (memory/occupancy.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from spatial_ttt_ros.memory.learned_map import (
    CH_BIRTH,
    CH_BIRTH_T,
    CH_FREE,
    CH_MASS,
    CH_SIZE,
    CH_Z,
    SIZE_POWER,
    evidence,
)
from spatial_ttt_ros.memory.occupancy import close_and_fill_holes
from spatial_ttt_ros.perception.tokens import N_CLASSES

GRID_RES = 0.2  # m per location query
GRID_MARGIN = 1.0  # m around what was written
MAX_GRID = 256  # cells per side at most (51 m at 0.2 m); larger spaces are read more coarsely
# CNN input channels: class evidence (N_CLASSES), then these
IN_EVIDENCE, IN_FREE, IN_Z, IN_LOG_SIZE, IN_BIRTH_MASS, IN_BIRTH_T, IN_MASS = (N_CLASSES + i for i in (0, 1, 2, 3, 6, 7, 8))
N_INPUTS = N_CLASSES + 9
MAX_OFFSET = 1.5  # cells: how far the learned centre offset may move a peak
# Free-channel level of a floor cell. Chosen on validation seeds 8000-8007 (room-size score over the
# 10 runs of 300 to 7,500 frames, exact, noisy and sparse): 0.6 with no erosion 0.934; v8's 0.5 with
# the cells eroded by 0.2 m 0.861 (noisy 1,000: 0.91 against 0.81); 0.4 eroded 0.912; 0.5 uneroded 0.903.
MIN_FREE = 0.6
# A peak is an object only if its heat is at least this share of its class's strongest peak. Chosen
# on validation seeds 8000-8007 with the threshold (scripts/threshold_sweep.py --min-shares; mean over
# the 10 runs at threshold 0.1: none 76.7, 0.4 87.3, 0.5 87.9, 0.6 87.4; docs/results/threshold_sweeps_v8b.json).
MIN_SHARE = 0.5
PEAK_WINDOW = 7  # cells (1.4 m): an object is the largest heat of its class in this window around it
BIRTH_RADIUS = 1  # cells around a peak whose births (where they hold its class) date the object


def grid_axes(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Cell-centre coordinates along x and y covering [lo, hi] plus the margin -> (xs, ys, res)."""
    lo = np.asarray(lo, np.float64) - GRID_MARGIN
    hi = np.asarray(hi, np.float64) + GRID_MARGIN
    res = max(GRID_RES, float((hi - lo).max()) / MAX_GRID)
    n = np.maximum(np.ceil((hi - lo) / res).astype(int), 1)
    xs = lo[0] + (np.arange(n[0]) + 0.5) * res
    ys = lo[1] + (np.arange(n[1]) + 0.5) * res
    return xs, ys, res


def grid_inputs(reads: Tensor) -> Tensor:
    """Map reads [H, W, C] -> CNN inputs [N_INPUTS, H, W] (scale-free: ratios are means of observations)."""
    p = evidence(reads)  # [H, W]
    mass = reads[..., CH_MASS]
    den = mass.clamp_min(0.05)
    z = (reads[..., CH_Z] / den).clamp(-1.0, 3.0)
    size_pow = (reads[..., CH_SIZE : CH_SIZE + 3] / den.unsqueeze(-1)).clamp_min(1e-6)
    log_size = (size_pow.log() / SIZE_POWER).clamp(-4.0, 1.5)  # [H, W, 3]
    bm = reads[..., CH_BIRTH]
    bt = (reads[..., CH_BIRTH_T] / bm.clamp_min(0.05)).clamp(-1.0, 100.0)
    feats = [
        reads[..., :N_CLASSES],
        p.unsqueeze(-1),
        reads[..., CH_FREE : CH_FREE + 1],
        z.unsqueeze(-1),
        log_size,
        bm.unsqueeze(-1),
        (bt * (mass > 0.05)).unsqueeze(-1),
        mass.unsqueeze(-1),
    ]
    return torch.cat(feats, -1).permute(2, 0, 1)


class ReadoutNet(nn.Module):
    """[B, N_INPUTS, H, W] -> (heat logits [B, N_CLASSES, H, W], log-size correction [B, 3, H, W],
    centre offset [B, 2, H, W] in cells, within +-MAX_OFFSET)."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(N_INPUTS, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=2, dilation=2),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=4, dilation=4),
            nn.ReLU(),
        )
        self.skip = nn.Conv2d(N_INPUTS, hidden, 1)
        self.heat = nn.Conv2d(hidden, N_CLASSES, 1)
        self.size = nn.Conv2d(hidden, 3, 1)
        self.offset = nn.Conv2d(hidden, 2, 1)
        nn.init.constant_(self.heat.bias, -2.2)  # CenterNet's prior: few cells are centres
        for head in (self.size, self.offset):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.body(x) + self.skip(x)
        return self.heat(h), self.size(h), MAX_OFFSET * torch.tanh(self.offset(h))


@dataclass
class GridObject:
    class_id: int
    xy: np.ndarray  # (2,) world metres
    z: float
    size: np.ndarray  # (3,) metres
    first_seen: float  # token time units
    score: float


def decode(inputs: Tensor, heat_logits: Tensor, size_corr: Tensor, offset: Tensor, xs: np.ndarray, ys: np.ndarray,
           threshold: float) -> list[GridObject]:
    """One map's CNN outputs (no batch dim; offset [2, H, W] in cells) -> objects, strongest first."""
    heat = torch.sigmoid(heat_logits)  # [K, H, W]
    peaks = (heat >= F.max_pool2d(heat.unsqueeze(0), PEAK_WINDOW, 1, PEAK_WINDOW // 2)[0]) & (heat >= threshold)
    res = float(xs[1] - xs[0]) if len(xs) > 1 else GRID_RES
    hgt, wid = heat.shape[1:]
    out = []
    for c, iy, ix in zip(*torch.nonzero(peaks, as_tuple=True)):
        c, iy, ix = int(c), int(iy), int(ix)
        xy = np.array([xs[ix], ys[iy]]) + res * offset[:, iy, ix].double().numpy()
        log_size = inputs[IN_LOG_SIZE : IN_LOG_SIZE + 3, iy, ix] + size_corr[:, iy, ix]
        # first seen: the earliest birth time among the cells around the peak that hold this class
        # (a neighbour of another class, seen earlier, does not lend its birth)
        r = BIRTH_RADIUS
        b0, b1, a0, a1 = max(iy - r, 0), min(iy + r + 1, hgt), max(ix - r, 0), min(ix + r + 1, wid)
        own = inputs[c, b0:b1, a0:a1]
        bm = inputs[IN_BIRTH_MASS, b0:b1, a0:a1]
        bt = inputs[IN_BIRTH_T, b0:b1, a0:a1]
        # The strongest birth is taken among the cells of this class only: a stronger birth of a
        # neighbour in the window would otherwise leave no cell of this class "born" (dated 0 s).
        mine = own >= 0.5 * float(inputs[c, iy, ix])
        top = float(bm[mine].max()) if bool(mine.any()) else 0.0
        born = mine & (bm >= 0.5 * top)
        t_first = float(bt[born].min()) if top > 0.02 else 0.0
        out.append(
            GridObject(
                class_id=c,
                xy=xy,
                z=float(inputs[IN_Z, iy, ix]),
                size=np.exp(log_size.double().numpy()),
                first_seen=max(t_first, 0.0),
                score=float(heat[c, iy, ix]),
            )
        )
    best = {}
    for o in out:
        best[o.class_id] = max(best.get(o.class_id, 0.0), o.score)
    out = [o for o in out if o.score >= MIN_SHARE * best[o.class_id]]
    out.sort(key=lambda o: -o.score)
    return out


def seen_floor(reads: Tensor, xs: np.ndarray, ys: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
    """Reads [H, W, C] -> (area m^2, min_xy, max_xy) of the seen floor, or None when none was written."""
    free = (reads[..., CH_FREE] >= MIN_FREE).numpy().astype(np.uint8)
    res = float(xs[1] - xs[0]) if len(xs) > 1 else GRID_RES
    filled = close_and_fill_holes(free)
    if not filled.any():
        return None
    iy, ix = np.nonzero(filled)
    lo = np.array([xs[ix.min()], ys[iy.min()]]) - 0.5 * res
    hi = np.array([xs[ix.max()], ys[iy.max()]]) + 0.5 * res
    return float(filled.sum()) * res * res, lo, hi


def heatmap_loss(heat_logits: Tensor, target: Tensor) -> Tensor:
    """CenterNet's focal loss: heat_logits, target [K, H, W] (target 1 at centres, Gaussian around)."""
    p = torch.sigmoid(heat_logits).clamp(1e-4, 1 - 1e-4)
    pos = target >= 0.999
    pos_loss = -((1 - p) ** 2 * torch.log(p))[pos].sum()
    neg_loss = -(((1 - target) ** 4) * p**2 * torch.log(1 - p))[~pos].sum()
    return (pos_loss + neg_loss) / pos.sum().clamp_min(1)
