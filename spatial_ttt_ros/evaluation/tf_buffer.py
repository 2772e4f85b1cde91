"""Poses over time, read back at any stamp: the pose series of a bag and a minimal tf2.

ROS-free (the bag reader uses it without ROS installed). A series is interpolated
between neighbouring samples (``poses.interpolate_pose``) up to ``MAX_POSE_GAP`` apart;
``TfBuffer`` keeps, per child frame, its parent and its transforms over time (static
ones apart) and chains them between any two frames of one tree.
"""

from __future__ import annotations

import bisect

import numpy as np

from spatial_ttt_ros.poses import interpolate_pose

# Largest gap between two pose samples that we interpolate across; beyond it a frame
# in the gap has no trustworthy pose and is skipped (counted as "no pose").
MAX_POSE_GAP = 0.5  # s


def pose_at_stamp(stamps: list[float], mats: list[np.ndarray], t: float, tol: float) -> np.ndarray | None:
    """Pose at ``t`` of a series sorted by stamp: interpolated between neighbours up to
    MAX_POSE_GAP apart, or the nearest sample within ``tol`` at either end; None otherwise
    (no extrapolation)."""
    if not stamps:
        return None
    i = bisect.bisect_left(stamps, t)
    if i < len(stamps) and abs(stamps[i] - t) <= 1e-6:
        return mats[i]
    if 0 < i < len(stamps):
        t0, t1 = stamps[i - 1], stamps[i]
        if t1 - t0 <= MAX_POSE_GAP:
            return interpolate_pose(mats[i - 1], mats[i], (t - t0) / (t1 - t0))
    near = [j for j in (i - 1, i) if 0 <= j < len(stamps)]
    j = min(near, key=lambda j: abs(stamps[j] - t))
    return mats[j] if abs(stamps[j] - t) <= tol else None


class TfBuffer:
    """A minimal tf2: per child frame its parent and its transforms over time."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.static: dict[str, np.ndarray] = {}
        self.samples: dict[str, tuple[list[float], list[np.ndarray]]] = {}

    def add(self, parent: str, child: str, stamp: float, T_parent_child: np.ndarray, static: bool) -> None:
        parent, child = parent.lstrip("/"), child.lstrip("/")
        self.parent[child] = parent
        if static:
            self.static[child] = T_parent_child
            return
        stamps, mats = self.samples.setdefault(child, ([], []))
        i = bisect.bisect_right(stamps, stamp)
        stamps.insert(i, stamp)
        mats.insert(i, T_parent_child)

    def has_chain(self, target: str, source: str) -> bool:
        return self._path(target.lstrip("/"), source.lstrip("/")) is not None

    def _ancestors(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self.parent and len(chain) < 64:  # 64: guard against loops
            chain.append(self.parent[chain[-1]])
        return chain

    def _path(self, target: str, source: str) -> tuple[list[str], list[str]] | None:
        up_s, up_t = self._ancestors(source), self._ancestors(target)
        common = next((f for f in up_s if f in up_t), None)
        if common is None:
            return None
        return up_s[: up_s.index(common)], up_t[: up_t.index(common)]

    def _to_parent(self, child: str, t: float, tol: float) -> np.ndarray | None:
        if child in self.static:
            return self.static[child]
        stamps, mats = self.samples.get(child, ([], []))
        return pose_at_stamp(stamps, mats, t, tol)

    def lookup(self, target: str, source: str, t: float, tol: float) -> np.ndarray | None:
        """T_target_source at time ``t`` (None when some link has no sample near t)."""
        path = self._path(target.lstrip("/"), source.lstrip("/"))
        if path is None:
            return None
        from_source, from_target = path

        def to_common(frames: list[str]) -> np.ndarray | None:
            M = np.eye(4)
            for f in frames:
                step = self._to_parent(f, t, tol)
                if step is None:
                    return None
                M = step @ M
            return M

        T_c_s, T_c_t = to_common(from_source), to_common(from_target)
        if T_c_s is None or T_c_t is None:
            return None
        return np.linalg.inv(T_c_t) @ T_c_s
