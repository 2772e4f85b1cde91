"""One RGB keyframe -> Qwen3-VL video patches, in NumPy/OpenCV (no torchvision).

Like the official evaluation, a still keyframe is a two-frame video of the same
image (temporal patch 2), resized to a fixed size (352 x 480 there), normalised
with mean = std = 0.5, and flattened in the order of the Qwen3-VL video processor:
(grid_t, gh/m, gw/m, m, m, C, temporal, patch, patch).
"""

from __future__ import annotations

import cv2
import numpy as np


def frame_to_patches(
    rgb: np.ndarray,  # [H, W, 3] uint8
    height: int,
    width: int,
    patch: int = 16,
    merge: int = 2,
    temporal: int = 2,
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """-> (pixel_values [gh*gw, 3*temporal*patch*patch] float32, (1, gh, gw))."""
    unit = patch * merge
    height = max(unit, int(round(height / unit)) * unit)
    width = max(unit, int(round(width / unit)) * unit)
    if rgb.shape[:2] != (height, width):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
    x = (rgb.astype(np.float32) / 255.0 - 0.5) / 0.5  # [H, W, 3]
    x = np.repeat(x.transpose(2, 0, 1)[None], temporal, axis=0)  # [tp, C, H, W]
    gh, gw = height // patch, width // patch
    x = x.reshape(1, temporal, 3, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)  # [gt, gh/m, gw/m, m, m, C, tp, p, p]
    return np.ascontiguousarray(x.reshape(gh * gw, 3 * temporal * patch * patch)), (1, gh, gw)
