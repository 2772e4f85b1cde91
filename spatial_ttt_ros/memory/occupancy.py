"""2D occupancy helpers shared by the explicit object map and the TTT map's room readout."""

from __future__ import annotations

import cv2
import numpy as np


def close_and_fill_holes(grid: np.ndarray) -> np.ndarray:
    """Occupancy (uint8 0/1, 2D) with one-cell gaps closed and enclosed holes filled.

    Why: floor seen through depth rays has gaps between rays and holes under furniture
    (the rays stop at its top); the room's floor is the region they enclose.
    """
    if grid.size == 0:
        return grid
    g = np.pad(grid.astype(np.uint8), 2)
    g = cv2.morphologyEx(g, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    # Holes = background not reachable from the border.
    flood = g.copy()
    mask = np.zeros((g.shape[0] + 2, g.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, mask, (0, 0), 1)
    g = g | (1 - flood)
    return g[2:-2, 2:-2]
