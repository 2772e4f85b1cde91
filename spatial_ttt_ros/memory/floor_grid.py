"""The object map's room: a growing 2D grid of floor seen, read out as a ``Room``."""

from __future__ import annotations

import cv2
import numpy as np

from spatial_ttt_ros.inventory import Room
from spatial_ttt_ros.memory.occupancy import close_and_fill_holes


class FloorGrid:
    """Growing 2D occupancy grid (uint8) of floor space seen, indexed by world x, y cells."""

    def __init__(self, resolution: float) -> None:
        self.res = float(resolution)
        self.origin = np.zeros(2, dtype=np.int64)  # cell index of grid[0, 0] (ix, iy)
        self.grid = np.zeros((0, 0), dtype=np.uint8)  # [ix - origin_x, iy - origin_y]
        self._room: tuple[Room | None] | None = None  # (room(),) until a cell is added

    def mark(self, xy: np.ndarray) -> None:
        if xy.size == 0:
            return
        idx = np.floor(xy / self.res).astype(np.int64)
        lo, hi = idx.min(axis=0), idx.max(axis=0)
        if self.grid.size == 0:
            self.origin = lo - 8
            self.grid = np.zeros(tuple((hi - lo + 17).tolist()), dtype=np.uint8)
        else:
            cur_hi = self.origin + np.array(self.grid.shape) - 1
            if np.any(lo < self.origin) or np.any(hi > cur_hi):
                # Grow with a margin so a robot walking off the edge does not re-allocate every frame.
                new_lo = np.minimum(lo - 16, self.origin)
                new_hi = np.maximum(hi + 16, cur_hi)
                g = np.zeros(tuple((new_hi - new_lo + 1).tolist()), dtype=np.uint8)
                o = self.origin - new_lo
                g[o[0] : o[0] + self.grid.shape[0], o[1] : o[1] + self.grid.shape[1]] = self.grid
                self.grid, self.origin = g, new_lo
        rel = idx - self.origin
        cells = (rel[:, 0], rel[:, 1])
        if self._room is not None and self.grid[cells].all():
            return  # nothing new: the room read out last stays valid
        self.grid[cells] = 1
        self._room = None

    def mark_rays(self, cam: np.ndarray, hits: np.ndarray) -> None:
        """Mark the floor under the camera ``cam`` (2,) and along each ray to ``hits`` (N, 2)."""
        # Free space: the floor between the camera and what each ray hits. Stop half a
        # cell short of the hit so the wall's own cell is not counted as floor.
        step = 0.5 * self.res
        samples = [cam[None, :]]
        for p in hits:
            v = p - cam
            length = float(np.hypot(*v)) - 0.5 * self.res
            if length <= 0.0:
                continue
            t = np.arange(0.0, length + 1e-9, step) / (length + 0.5 * self.res)
            samples.append(cam + t[:, None] * v)
        self.mark(np.concatenate(samples))

    def filled(self) -> np.ndarray:
        """Occupancy with small gaps closed and enclosed holes (under furniture) filled."""
        return close_and_fill_holes(self.grid)

    def to_json(self) -> dict:
        return {
            "resolution": self.res,
            "origin": self.origin.tolist(),
            "shape": list(self.grid.shape),
            "cells": np.flatnonzero(self.grid).tolist(),
        }

    @staticmethod
    def from_json(d: dict) -> "FloorGrid":
        fg = FloorGrid(float(d["resolution"]))
        fg.origin = np.asarray(d["origin"], dtype=np.int64).reshape(2)
        shape = tuple(int(s) for s in d["shape"])
        g = np.zeros(int(np.prod(shape)), dtype=np.uint8)
        g[np.asarray(d["cells"], dtype=np.int64)] = 1
        fg.grid = g.reshape(shape)
        return fg

    def room(self) -> Room | None:
        """The floor seen (gaps closed, holes filled) as a ``Room``: area, bounds and outlines.
        Computed again only after new floor cells were seen (the ``Room`` is never changed)."""
        if self._room is None:
            self._room = (self._make_room(),)
        return self._room[0]

    def _make_room(self) -> Room | None:
        g = self.filled()
        if g.size == 0 or not g.any():
            return None
        res = self.res
        ix, iy = np.nonzero(g)
        area = float(g.sum()) * res * res
        min_xy = (np.array([ix.min(), iy.min()]) + self.origin) * res
        max_xy = (np.array([ix.max(), iy.max()]) + self.origin + 1) * res
        polygons = []
        contours, _ = cv2.findContours(g.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for cnt in contours:
            # cv2 points are (col, row) = (iy, ix) of cell corners.
            p = cnt.reshape(-1, 2)[:, ::-1].astype(np.float64)
            polygons.append((p + self.origin + 0.5) * res)
        return Room(area_m2=area, min_xy=min_xy.astype(np.float64), max_xy=max_xy.astype(np.float64), polygons=polygons)
