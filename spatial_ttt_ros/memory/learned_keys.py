"""Multi-resolution position keys for the learned TTT map.

A world position (x, y) in metres becomes a sparse key: for each level, the four corners
of the grid cell it falls in (bilinear weights), times a fixed level gain. Each level is
a torus of ``cells x cells`` entries of side ``cell`` m, so it wraps after ``cells * cell``
metres; the levels' periods differ (23.4, 45 and 132 m by default), so two places share
*every* entry only when they are a common multiple of all periods apart (far beyond
100 m), and places closer than the finest period (23.4 m) share no fine entry at all.
Why tori and not a random hash: a hash makes neighbouring cells collide as often as far
ones, a torus only makes places exactly one period apart collide, and the coarser levels
tell those apart.

Why the level gains are set by hand: up to v7 they were trained (through every write and
read), but fixing them at the values below cost less than 2 points everywhere on validation
and held-out seeds (v7: -1.7 to +1.6 on validation, fixed gains ahead in 4 of 6 runs), so
since v8 they are constants and the rest of the model is trained around them.

The fast weights (memory/learned_map.py) are one row per entry; a read at x is the sum
over levels and corners of gain_l * bilinear weight * row. Key features are sparse:
``(index [N, J] long, weight [N, J])`` with J = 4 * levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Level:
    cell: float  # m, side of one cell
    cells: int  # cells per side of the torus (period = cell * cells)

    @property
    def period(self) -> float:
        return self.cell * self.cells


DEFAULT_LEVELS = (Level(0.3, 78), Level(1.0, 45), Level(3.0, 44))
GAINS = (1.0, 0.5, 0.25)  # level gains (fine levels weigh more), normalised in PositionKeys


class PositionKeys(nn.Module):
    """xy [N, 2] metres -> (index [N, 4L] into the concatenated tables, weight [N, 4L])."""

    def __init__(self, levels: tuple[Level, ...] = DEFAULT_LEVELS, gains: tuple[float, ...] = GAINS) -> None:
        super().__init__()
        if len(gains) != len(levels):
            raise ValueError(f"one gain per level: {len(levels)} levels, {len(gains)} gains")
        self.levels = tuple(levels)
        offsets, n = [], 0
        for lv in self.levels:
            offsets.append(n)
            n += lv.cells * lv.cells
        self.n_entries = n
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.long), persistent=False)
        self.register_buffer("cell", torch.tensor([lv.cell for lv in self.levels]), persistent=False)
        self.register_buffer("cells", torch.tensor([lv.cells for lv in self.levels], dtype=torch.long), persistent=False)
        # How much each resolution contributes to a read (and so to each write's step); normalised so
        # that a key's squared norm is at most 1 (keeps a step stable). Not saved: it is no weight.
        g = torch.tensor(gains, dtype=torch.float32)
        if not bool((g > 0).all()):
            raise ValueError(f"level gains must be positive, got {tuple(gains)}")
        self.register_buffer("gain", g / g.pow(2).sum().sqrt(), persistent=False)

    def gains(self) -> Tensor:
        """[L] level gains (normalised)."""
        return self.gain

    def level_columns(self, level: int) -> Tensor:
        """[4L] bool: the columns of a key (``forward``'s index/weight) that belong to ``level``."""
        cols = torch.zeros(len(self.levels), 4, dtype=torch.bool)
        cols[level] = True
        return cols.flatten()

    def forward(self, xy: Tensor) -> tuple[Tensor, Tensor]:
        u = xy.unsqueeze(-2) / self.cell[:, None]  # [N, L, 2] in cells
        base = torch.floor(u)
        frac = u - base  # [N, L, 2]
        base = base.long()
        idx, wts = [], []
        for dx in (0, 1):
            for dy in (0, 1):
                ix = (base[..., 0] + dx).remainder(self.cells)  # [N, L]
                iy = (base[..., 1] + dy).remainder(self.cells)
                idx.append(self.offsets + iy * self.cells + ix)
                wx = frac[..., 0] if dx else 1.0 - frac[..., 0]
                wy = frac[..., 1] if dy else 1.0 - frac[..., 1]
                wts.append(wx * wy)
        g = self.gains()
        index = torch.stack(idx, -1).flatten(-2)  # [N, L*4]
        weight = (torch.stack(wts, -1) * g[:, None]).flatten(-2)
        return index, weight
