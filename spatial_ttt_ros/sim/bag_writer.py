"""Write camera streams as rosbag2 (mcap by default, or sqlite3) with standard message types only.

Topics (names from ``spatial_ttt_ros.topics``), all stamped with the frame's stamp:

- ``COLOR``        sensor_msgs/Image rgb8
- ``DEPTH``        sensor_msgs/Image 16UC1 millimetres (0 = no reading; > 65.535 m clipped to 0)
- ``CAMERA_INFO``  sensor_msgs/CameraInfo (plumb_bob, zero distortion)
- ``POSE``         geometry_msgs/PoseStamped, frame ``map``, the camera optical frame's pose
- ``ODOM``         nav_msgs/Odometry, frame ``map``, child ``camera_color_optical_frame`` (the
                   optical pose again, so a node told "odometry = camera pose" needs no mount
                   transform), twist from finite differences in the child frame
- ``TF``           tf2_msgs/TFMessage: map -> base_link (on the floor under the camera, x along
                   the camera's heading, z up) and base_link -> camera_color_optical_frame
- ``LABELS``       sensor_msgs/Image 16UC1 class ids (optional)
- ``GT_INSTANCES`` sensor_msgs/Image 16UC1 instance ids (optional, ground truth)

Reproducibility: rosbags writes no wall-clock time into mcap or metadata.yaml; all
times come from the message stamps, so the same frames give the same bytes
(tested for mcap and sqlite3).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

from spatial_ttt_ros import topics
from spatial_ttt_ros.poses import matrix_to_quaternion

# A fixed epoch for bag stamps (2023-11-14T22:13:20Z): ROS tools treat stamp 0 as "unset",
# and a constant keeps bags reproducible. Frame i of a stream at rate r is at BAG_EPOCH_NS + i / r.
BAG_EPOCH_NS = 1_700_000_000 * 1_000_000_000

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
ODOMETRY = "nav_msgs/msg/Odometry"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def base_pose(T_world_cam: np.ndarray) -> np.ndarray:
    """(4, 4) map <- base_link: on the floor under the camera, x along its heading, z up."""
    forward = T_world_cam[:3, 2]
    yaw = math.atan2(forward[1], forward[0]) if np.hypot(forward[0], forward[1]) > 1e-9 else 0.0
    T = np.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    T[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    T[:2, 3] = T_world_cam[:2, 3]
    return T


def depth_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) float metres -> uint16 millimetres; invalid, <= 0 or beyond 65.535 m -> 0."""
    d = np.asarray(depth_m, dtype=np.float64)
    mm = np.where(np.isfinite(d) & (d > 0), np.round(d * 1000.0), 0.0)
    mm = np.where(mm > 65535, 0, mm)
    return mm.astype(np.uint16)


class BagWriter:
    """Context manager writing one camera stream into a new rosbag2 at ``path``.

    ``path`` must not exist (rosbags refuses to overwrite). ``storage``: "mcap" or "sqlite3".
    """

    def __init__(self, path: str | Path, storage: str = "mcap", with_labels: bool = True,
                 with_instances: bool = True):
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        self.storage = storage
        self.with_labels, self.with_instances = with_labels, with_instances
        self.ts = get_typestore(Stores.ROS2_JAZZY)
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._conns: dict[str, object] = {}
        self._prev: tuple[int, np.ndarray] | None = None
        self.count = 0

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        add = self._writer.add_connection
        self._conns = {
            topics.COLOR: add(topics.COLOR, IMAGE, typestore=self.ts),
            topics.DEPTH: add(topics.DEPTH, IMAGE, typestore=self.ts),
            topics.CAMERA_INFO: add(topics.CAMERA_INFO, CAMERA_INFO, typestore=self.ts),
            topics.POSE: add(topics.POSE, POSE_STAMPED, typestore=self.ts),
            topics.ODOM: add(topics.ODOM, ODOMETRY, typestore=self.ts),
            topics.TF: add(topics.TF, TF_MESSAGE, typestore=self.ts),
        }
        if self.with_labels:
            self._conns[topics.LABELS] = add(topics.LABELS, IMAGE, typestore=self.ts)
        if self.with_instances:
            self._conns[topics.GT_INSTANCES] = add(topics.GT_INSTANCES, IMAGE, typestore=self.ts)
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    # ---- message builders
    def _header(self, stamp_ns: int, frame_id: str):
        t = self.ts.types
        return t["std_msgs/msg/Header"](
            stamp=t["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)),
            frame_id=frame_id,
        )

    def _image(self, stamp_ns: int, array: np.ndarray, encoding: str):
        array = np.ascontiguousarray(array)
        h, w = array.shape[:2]
        data = array.view(np.uint8).reshape(-1)
        return self.ts.types[IMAGE](
            header=self._header(stamp_ns, topics.CAMERA_FRAME), height=h, width=w, encoding=encoding,
            is_bigendian=0, step=int(data.size // h), data=data,
        )

    def _pose(self, T: np.ndarray):
        t = self.ts.types
        q = matrix_to_quaternion(T[:3, :3])
        return t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
            orientation=t["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
        )

    def _transform(self, stamp_ns: int, parent: str, child: str, T: np.ndarray):
        t = self.ts.types
        q = matrix_to_quaternion(T[:3, :3])
        return t["geometry_msgs/msg/TransformStamped"](
            header=self._header(stamp_ns, parent), child_frame_id=child,
            transform=t["geometry_msgs/msg/Transform"](
                translation=t["geometry_msgs/msg/Vector3"](x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                rotation=t["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
            ),
        )

    def _camera_info(self, stamp_ns: int, K: np.ndarray, width: int, height: int):
        t = self.ts.types
        P = np.zeros((3, 4))
        P[:3, :3] = K
        return t[CAMERA_INFO](
            header=self._header(stamp_ns, topics.CAMERA_FRAME), height=height, width=width,
            distortion_model="plumb_bob", d=np.zeros(5), k=np.asarray(K, dtype=np.float64).reshape(9),
            r=np.eye(3).reshape(9), p=P.reshape(12), binning_x=0, binning_y=0,
            roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )

    def _odometry(self, stamp_ns: int, T: np.ndarray):
        t = self.ts.types
        lin = np.zeros(3)
        ang = np.zeros(3)
        if self._prev is not None:
            prev_ns, T_prev = self._prev
            dt = (stamp_ns - prev_ns) * 1e-9
            if dt > 0:
                # Velocities of the child (optical) frame, expressed in the child frame.
                lin = T[:3, :3].T @ (T[:3, 3] - T_prev[:3, 3]) / dt
                dR = T_prev[:3, :3].T @ T[:3, :3]
                ang = Rotation.from_matrix(dR).as_rotvec() / dt
        vec = t["geometry_msgs/msg/Vector3"]
        return t[ODOMETRY](
            header=self._header(stamp_ns, topics.WORLD_FRAME), child_frame_id=topics.CAMERA_FRAME,
            pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=self._pose(T), covariance=np.zeros(36)),
            twist=t["geometry_msgs/msg/TwistWithCovariance"](
                twist=t["geometry_msgs/msg/Twist"](linear=vec(x=float(lin[0]), y=float(lin[1]), z=float(lin[2])),
                                                   angular=vec(x=float(ang[0]), y=float(ang[1]), z=float(ang[2]))),
                covariance=np.zeros(36),
            ),
        )

    def _put(self, topic: str, stamp_ns: int, msg, msgtype: str) -> None:
        self._writer.write(self._conns[topic], stamp_ns, self.ts.serialize_cdr(msg, msgtype))

    def write_frame(self, stamp_ns: int, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray,
                    T_world_cam: np.ndarray, labels: np.ndarray | None = None,
                    instances: np.ndarray | None = None) -> None:
        """Write one frame: rgb (H, W, 3) uint8 RGB, depth (H, W) metres, K (3, 3), T_world_cam (4, 4)."""
        stamp_ns = int(stamp_ns)
        h, w = depth_m.shape
        T = np.asarray(T_world_cam, dtype=np.float64)
        self._put(topics.COLOR, stamp_ns, self._image(stamp_ns, np.asarray(rgb, dtype=np.uint8), "rgb8"), IMAGE)
        self._put(topics.DEPTH, stamp_ns, self._image(stamp_ns, depth_to_mm(depth_m), "16UC1"), IMAGE)
        self._put(topics.CAMERA_INFO, stamp_ns, self._camera_info(stamp_ns, K, w, h), CAMERA_INFO)
        pose = self.ts.types[POSE_STAMPED](header=self._header(stamp_ns, topics.WORLD_FRAME), pose=self._pose(T))
        self._put(topics.POSE, stamp_ns, pose, POSE_STAMPED)
        self._put(topics.ODOM, stamp_ns, self._odometry(stamp_ns, T), ODOMETRY)
        T_base = base_pose(T)
        T_base_cam = np.linalg.inv(T_base) @ T
        tf = self.ts.types[TF_MESSAGE](transforms=[
            self._transform(stamp_ns, topics.WORLD_FRAME, topics.BASE_FRAME, T_base),
            self._transform(stamp_ns, topics.BASE_FRAME, topics.CAMERA_FRAME, T_base_cam),
        ])
        self._put(topics.TF, stamp_ns, tf, TF_MESSAGE)
        if self.with_labels and labels is not None:
            self._put(topics.LABELS, stamp_ns, self._image(stamp_ns, np.asarray(labels, dtype=np.uint16), "16UC1"), IMAGE)
        if self.with_instances and instances is not None:
            self._put(topics.GT_INSTANCES, stamp_ns,
                      self._image(stamp_ns, np.asarray(instances, dtype=np.uint16), "16UC1"), IMAGE)
        self._prev = (stamp_ns, T)
        self.count += 1


def stamp_ns(index: int, rate_hz: float) -> int:
    """Bag stamp of frame ``index`` at ``rate_hz`` (integer nanoseconds, no float drift)."""
    return BAG_EPOCH_NS + int(round(index * 1e9 / rate_hz))


def write_stream(stream, path: str | Path, storage: str = "mcap", progress=None) -> dict[int, int]:
    """Render every frame of a ``SimStream`` into a bag; returns first_seen_frame (recorded on the way)."""
    with BagWriter(path, storage) as bag:
        for frame, instances in stream.frames():
            bag.write_frame(stamp_ns(frame.frame_index, stream.rate_hz), frame.rgb, frame.depth, frame.K,
                            frame.T_world_cam, frame.labels, instances)
            if progress is not None:
                progress(frame.frame_index)
    return stream.first_seen_frame
