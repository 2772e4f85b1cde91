"""Poses as 4x4 transforms, to and from ROS's (x, y, z, w) quaternions, and their interpolation.

ROS-free and shared by ros/conversions.py (rclpy messages), evaluation/ (bags read
with rosbags) and sim/bag_writer.py. The rotation maths is scipy's ``Rotation`` and
``Slerp``; what is kept here is what scipy lacks: the 4x4 layout, a clear error for a
quaternion that is no rotation (zero length, NaN), one sign convention (w >= 0) for
the quaternions we write, and reading any message with ``.x .y .z (.w)`` fields, so
rclpy's and rosbags' message classes both work.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """(3, 3) rotation of a quaternion of any non-zero length; ValueError for zero, NaN or inf."""
    q = np.array([x, y, z, w], dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n < 1e-12:  # scipy would accept NaN and give a NaN matrix
        raise ValueError(f"invalid quaternion ({x}, {y}, {z}, {w})")
    return Rotation.from_quat(q / n).as_matrix()


def matrix_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a (3, 3) rotation, with w >= 0."""
    x, y, z, w = Rotation.from_matrix(np.asarray(R, dtype=np.float64)[:3, :3]).as_quat(canonical=True)
    return float(x), float(y), float(z), float(w)


def make_transform(R: np.ndarray, t) -> np.ndarray:
    """(4, 4) homogeneous transform of a (3, 3) rotation and a translation (3,)."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def pose_to_matrix(position, orientation) -> np.ndarray:
    """(4, 4) of a position (``.x .y .z``) and an orientation quaternion (``.x .y .z .w``):
    a geometry_msgs Pose's fields, or a Transform's translation and rotation."""
    o = orientation
    return make_transform(quaternion_to_matrix(o.x, o.y, o.z, o.w), (position.x, position.y, position.z))


def pose7_to_matrix(values) -> np.ndarray:
    """(4, 4) of [x, y, z, qx, qy, qz, qw] (the node's camera_in_base parameter)."""
    x, y, z, qx, qy, qz, qw = (float(v) for v in values)
    return make_transform(quaternion_to_matrix(qx, qy, qz, qw), (x, y, z))


def interpolate_pose(T0: np.ndarray, T1: np.ndarray, alpha: float) -> np.ndarray:
    """Pose at fraction ``alpha`` (0..1) from T0 to T1: lerp of the translation, slerp of the
    rotation (the short way round)."""
    # Slerp refuses times outside [0, 1]; callers compute alpha from stamps, keep it in range.
    alpha = min(1.0, max(0.0, float(alpha)))
    rotations = Rotation.from_matrix(np.stack([np.asarray(T0)[:3, :3], np.asarray(T1)[:3, :3]]))
    R = Slerp([0.0, 1.0], rotations)(alpha).as_matrix()
    return make_transform(R, (1 - alpha) * np.asarray(T0)[:3, 3] + alpha * np.asarray(T1)[:3, 3])
