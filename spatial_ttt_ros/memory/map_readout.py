"""Object readout from the position-keyed TTT map: location queries over the whole map, per-class peaks.

The map (memory/spatial_map.py) answers "what was written near (x, y)?" as kernel-weighted
sums: per class, about how many observations of that class lie within the kernel (about
0.35 m), plus their mean position, height, log size and, per class, when the class was first
written there. Reading it as an inventory is then peak finding, the same job an occupancy
grid's object extractor does:

1. Location queries: read the map on a ``cells x cells`` grid over its whole torus (16 m
   on a side by default), so every place the map can hold is asked; the grid is cut where
   nothing was written, so positions are continuous over the space seen.
2. Per class, a grid read is a candidate where it is the largest in its ``window x window``
   neighbourhood, holds at least ``min_observations`` observations of the class (misses
   and scattered false positives stay below it) and at least ``min_share`` of everything
   written there (a class confusion of a well-seen object does not: it shares the place
   with many more observations of the true class).
3. A candidate's centre is the class-weighted centroid of the reads around it; height is the
   channel mean at the peak, size the power mean of the observed extents (most views are
   partial); first seen is the earliest birth time of the class around the peak (the mean
   time of the observations that were novel when written); strength = observations.
4. Same-class candidates closer than ``merge_radius`` (m) are one object (the strongest
   is kept).

Everything here is plain torch on tensors; ``memory/model.py`` turns the result into an
``Inventory``. The variants that never write the map (ttt_frozen, sliding_window, full_context) do not
use this readout (their map reads are exactly zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from spatial_ttt_ros.memory.occupancy import close_and_fill_holes
from spatial_ttt_ros.memory.spatial_map import (
    CH_BIRTH,
    CH_BIRTH_T,
    CH_CLASS,
    CH_FREE,
    CH_PRESENCE,
    CH_SIZE_POW,
    CH_TIME,
    CH_TIME2,
    CH_Z,
    N_CLASS_ONEHOT,
    SIZE_POWER,
    SpatialMap,
)


BIRTH_MIN = 0.3  # novel observations (kernel-weighted) for a read to carry a birth time


@dataclass(frozen=True)
class PeakSettings:
    """How map reads become objects (stored in a checkpoint's info; chosen on validation seeds)."""

    min_observations: float = 5.0  # class observations at a peak (kernel-weighted) to report an object
    min_share: float = 0.3  # the class's share of all observations written at the peak
    merge_radius: float = 1.2  # m: same-class peaks closer than this are one object (pose drift splits them)
    cells: int = 96  # location queries per side of the map's torus
    window: int = 5  # local-maximum neighbourhood, in cells (odd)
    min_free: float = 0.5  # free-space samples (kernel-weighted) for a read to count as seen floor
    floor_erode: float = 0.35  # m: the map's kernel spreads the floor this far past its edge; taken back

    def __post_init__(self) -> None:
        if self.cells < 8 or self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"map readout needs cells >= 8 and an odd window >= 1, got {self.cells}, {self.window}")
        if self.min_observations <= 0 or not 0.0 <= self.min_share <= 1.0 or self.merge_radius < 0:
            raise ValueError(
                "map readout needs min_observations > 0, 0 <= min_share <= 1 and merge_radius >= 0, got "
                f"{self.min_observations}, {self.min_share}, {self.merge_radius}"
            )

    @staticmethod
    def from_info(info: dict) -> "PeakSettings":
        """Settings from a checkpoint's info (keys ``map_<field>``); missing keys take the defaults."""
        kw = {f: info[f"map_{f}"] for f in PeakSettings.__dataclass_fields__ if f"map_{f}" in info}
        return PeakSettings(**kw)


@dataclass
class MapObject:
    """One object read from the map, in the model's normalised frame."""

    class_id: int  # index into classes.CLASSES
    xy: np.ndarray  # (2,) normalised world xy (relative to the stream origin, / pos_scale)
    z: float  # normalised height of the centre
    log_size: np.ndarray  # (3,) log metres
    first_seen: float  # token time (seconds since the stream start * TIME_SCALE)
    observations: float  # kernel-weighted observations of the class at the peak


def read_map(smap: SpatialMap, state: dict, cells: int) -> tuple[Tensor, Tensor]:
    """Read batch element 0 of the map state on a ``cells x cells`` grid covering one torus period.

    The torus has no edge, so the grid is cut where the map is emptiest: along x and along y,
    in the middle of the widest run of rows / columns where nothing was written. Positions are
    then continuous across everything written (a space narrower than the period never wraps).

    -> (reads [cells(y), cells(x), dk] in observation units, query positions [cells, cells, 2]).
    """
    step = smap.period / cells
    idx = smap.grid_positions(cells)[0, :, 0]  # [G]: the grid's axis (the same for x and y)
    state0 = {k: v[:1] for k, v in state.items()}
    reads = smap.read_at_features(state0, smap.grid_features(cells))[0].reshape(cells, cells, -1)
    written = (reads[..., CH_PRESENCE].abs() + reads[..., CH_FREE].abs()) > 0.1  # [G, G]
    cut_x = _cut(written.any(0).numpy())
    cut_y = _cut(written.any(1).numpy())
    reads = torch.roll(reads, shifts=(-cut_y, -cut_x), dims=(0, 1))
    ax = idx[cut_x] + torch.arange(cells, dtype=torch.float32) * step
    ay = idx[cut_y] + torch.arange(cells, dtype=torch.float32) * step
    gy, gx = torch.meshgrid(ay, ax, indexing="ij")
    return reads, torch.stack([gx, gy], -1)


def _cut(used: np.ndarray) -> int:
    """Index where a circular row of cells is best cut: the middle of its longest run of unused cells."""
    n = len(used)
    if used.all() or not used.any():
        return 0
    start = int(np.argmax(used))  # walk from a used cell so no empty run straddles the walk's ends
    best, best_len, run_start, run = 0, -1, None, 0
    for k in range(1, n + 1):
        i = (start + k) % n
        if not used[i]:
            if run == 0:
                run_start = i
            run += 1
            if run > best_len:
                best, best_len = run_start, run
        else:
            run = 0
    return (best + best_len // 2) % n


def find_objects(reads: Tensor, pos: Tensor, period: float, settings: PeakSettings, pos_scale: float) -> list[MapObject]:
    """Per-class peaks of ``read_map``'s reads and positions over one torus ``period`` (see the module
    doc) -> objects, strongest first."""
    G = reads.shape[0]
    p = reads[..., CH_PRESENCE]  # [G, G]
    dens = reads[..., CH_CLASS : CH_CLASS + N_CLASS_ONEHOT].permute(2, 0, 1)  # [C, G, G]
    # Circular padding: the reads cover one period of the torus, so the grid wraps around.
    r = settings.window // 2
    padded = F.pad(dens.unsqueeze(0), (r, r, r, r), mode="circular")
    local_max = F.max_pool2d(padded, settings.window, 1)[0]
    ok = (dens >= local_max) & (dens >= settings.min_observations) & (dens >= settings.min_share * p.clamp_min(1e-6))
    found: list[MapObject] = []
    for c, y, x in zip(*torch.nonzero(ok, as_tuple=True)):
        c, y, x = int(c), int(y), int(x)
        ys = torch.arange(y - r, y + r + 1).remainder(G)
        xs = torch.arange(x - r, x + r + 1).remainder(G)
        nb = reads[ys][:, xs]  # [W, W, dk]: the reads around the peak
        w = nb[..., CH_CLASS + c].clamp_min(0.0)  # class observations around the peak
        # centroid in positions relative to the peak (the neighbourhood may wrap the grid edge)
        rel = pos[ys][:, xs] - pos[y, x]
        rel = rel - torch.round(rel / period) * period
        xy = pos[y, x] + (w.unsqueeze(-1) * rel).sum((0, 1)) / w.sum().clamp_min(1e-6)
        rd = reads[y, x]
        pres = max(float(rd[CH_PRESENCE]), 1e-6)
        # First seen: the earliest birth of the class in the neighbourhood (a first sighting from
        # afar is often displaced by depth noise, so it need not lie at the peak itself).
        birth = nb[..., CH_BIRTH + c]
        t_birth = nb[..., CH_BIRTH_T + c] / birth.clamp_min(1e-6)
        born = birth > BIRTH_MIN
        if bool(born.any()):
            t_first = float(t_birth[born].min())
        else:  # fallback: observation times assumed uniform in [first, last]
            mt, mt2 = float(rd[CH_TIME]) / pres, float(rd[CH_TIME2]) / pres
            t_first = mt - math.sqrt(max(3.0 * (mt2 - mt * mt), 0.0))
        # Size: the power mean of the observed extents (partial views are smaller than the object).
        size_pow = (rd[CH_SIZE_POW : CH_SIZE_POW + 3] / pres).clamp_min(1e-8)
        found.append(
            MapObject(
                class_id=c,
                xy=xy.numpy().astype(np.float64),
                z=float(rd[CH_Z]) / pres,
                log_size=(size_pow.log() / SIZE_POWER).numpy().astype(np.float64),
                first_seen=max(t_first, 0.0),
                observations=float(dens[c, y, x]),
            )
        )
    found.sort(key=lambda o: -o.observations)
    kept: list[MapObject] = []
    radius = settings.merge_radius / pos_scale
    for o in found:
        if not any(k.class_id == o.class_id and float(np.hypot(*(k.xy - o.xy))) < radius for k in kept):
            kept.append(o)
    return kept


@dataclass
class MapRoom:
    """Seen floor read from the map's free-space channel (normalised frame)."""

    area: float  # m^2
    min_xy: np.ndarray  # (2,) normalised
    max_xy: np.ndarray  # (2,) normalised


def seen_floor(reads: Tensor, pos: Tensor, settings: PeakSettings, pos_scale: float) -> MapRoom | None:
    """Cells whose free-space channel holds at least ``min_free`` samples, gaps closed and holes under
    furniture filled (memory/occupancy.py) -> area and bounding box; None when no floor was written."""
    free = (reads[..., CH_FREE] >= settings.min_free).numpy().astype(np.uint8)  # [G(y), G(x)]
    step = float(pos[0, 1, 0] - pos[0, 0, 0])  # normalised cell size
    filled = close_and_fill_holes(free)
    r = int(round(settings.floor_erode / (step * pos_scale)))
    if r > 0:
        filled = cv2.erode(filled, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    if not filled.any():
        return None
    iy, ix = np.nonzero(filled)
    p = pos.numpy().astype(np.float64)
    lo = np.array([p[0, ix.min(), 0], p[iy.min(), 0, 1]]) - 0.5 * step
    hi = np.array([p[0, ix.max(), 0], p[iy.max(), 0, 1]]) + 0.5 * step
    return MapRoom(area=float(filled.sum()) * (step * pos_scale) ** 2, min_xy=lo, max_xy=hi)
