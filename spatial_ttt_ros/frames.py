"""What one camera frame is, once it has left ROS (or a bag, or the simulator).

Axes: the camera frame is the optical frame (x right, y down, z forward); the
world frame follows REP-103 (x forward, y left, z up, metres), e.g. ``map``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class CameraFrame:
    stamp: float  # seconds (ROS time of the colour image)
    depth: np.ndarray  # (H, W) float32 metres; NaN, inf or <= 0 = no reading
    K: np.ndarray  # (3, 3) float64 pinhole intrinsics of depth (and colour: same size)
    T_world_cam: np.ndarray  # (4, 4) float64, maps optical-frame points into the world
    rgb: np.ndarray | None = None  # (H, W, 3) uint8 RGB
    labels: np.ndarray | None = None  # (H, W) int class ids, id = CLASSES index + 1, 0 = none
    frame_index: int = -1  # position in the stream, when known

    def __post_init__(self) -> None:
        self.depth = np.asarray(self.depth, dtype=np.float32)
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.T_world_cam = np.asarray(self.T_world_cam, dtype=np.float64).reshape(4, 4)
        if self.depth.ndim != 2:
            raise ValueError(f"depth must be (H, W), got shape {self.depth.shape}")
        h, w = self.depth.shape
        for name in ("rgb", "labels"):
            img = getattr(self, name)
            if img is not None and img.shape[:2] != (h, w):
                raise ValueError(
                    f"{name} is {img.shape[1]}x{img.shape[0]} but depth is {w}x{h}; "
                    "they must be registered to the same size"
                )
        if not np.all(np.isfinite(self.T_world_cam)):
            raise ValueError("camera pose contains NaN or inf")
        if not np.all(np.isfinite(self.K)) or self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            raise ValueError(f"invalid intrinsics K={self.K.tolist()}")


@dataclass
class Detection:
    """A 2D detection in image pixels (from the ONNX detector or a label image)."""

    label: str  # canonical class name (see classes.py)
    score: float  # 0..1
    box_xyxy: np.ndarray  # (4,) float pixels x0, y0, x1, y1
    mask: np.ndarray | None = None  # (H, W) bool, when the source has per-pixel labels


@dataclass
class ObjectObservation:
    """A detection lifted into the world frame."""

    label: str
    score: float
    center: np.ndarray  # (3,) world metres
    size: np.ndarray  # (3,) world axis-aligned extent x, y, z in metres
    stamp: float  # seconds
    frame_index: int = -1
    extras: dict = field(default_factory=dict)
