"""Read a rosbag2 (mcap or sqlite3) into ``CameraFrame`` objects, without ROS installed.

The bag is read with ``rosbags`` in two passes:

1. An index pass reads the small messages in full (camera_info, pose / odometry,
   /tf, /tf_static) and only the header stamps of the image messages (parsed from
   the first bytes of the CDR payload, so no pixel data is decoded).
2. A frame pass decodes the images and yields one ``CameraFrame`` per colour image
   that has a depth image (and, when present, a label image) within the sync
   tolerance, intrinsics and a camera pose at its stamp.

Two passes keep memory bounded (at most a few frames are held) and let the pairing
look both ways in time, which a single pass over log-time order cannot do when a
recorder wrote depth before colour. Pose sources, in order of preference: a
``geometry_msgs/PoseStamped`` topic, a ``nav_msgs/Odometry`` topic (composed with
/tf when its child frame is not the camera), the /tf chain world -> camera frame.

Every failure to read the bag is a ``ValueError`` naming the file and what failed,
and a bag without the needed topics names the missing ones and lists those present.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from spatial_ttt_ros import topics as T
from spatial_ttt_ros.frames import CameraFrame

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
ODOMETRY = "nav_msgs/msg/Odometry"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"

# Largest gap between two pose samples that we interpolate across; beyond it a frame
# in the gap has no trustworthy pose and is skipped (counted as "no pose").
MAX_POSE_GAP = 0.5  # s


@dataclass(frozen=True)
class BagTopics:
    """Where the reader looks; defaults are the names in ``topics.py``."""

    color: str = T.COLOR
    color_compressed: str = T.COLOR_COMPRESSED
    depth: str = T.DEPTH
    camera_info: str = T.CAMERA_INFO
    pose: str = T.POSE
    odom: str = T.ODOM
    tf: str = T.TF
    tf_static: str = "/tf_static"
    labels: str | None = T.LABELS  # None: ignore label images even if present
    world_frame: str = T.WORLD_FRAME
    camera_frame: str = T.CAMERA_FRAME

    def with_overrides(self, **kw: str | None) -> "BagTopics":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


@dataclass
class BagInfo:
    path: Path
    topics: dict[str, tuple[str, int]]  # every topic in the bag: (type, message count)
    color_topic: str
    pose_source: str  # "pose <topic>", "odom <topic>" or "tf <world> -> <camera>"
    has_labels: bool
    n_color: int  # colour images in the bag
    n_frames: int  # frames the reader will yield
    skipped: dict[str, int] = field(default_factory=dict)  # why colour images were not used
    start_stamp: float = 0.0  # stamp of the first yielded frame
    end_stamp: float = 0.0
    rate_hz: float = 0.0  # median colour rate


class _TfBuffer:
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
        return _interpolate(stamps, mats, t, tol)

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


def quat_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    q = np.array([w, x, y, z], dtype=np.float64)
    n = np.linalg.norm(q)
    if n < 1e-12:
        raise ValueError("zero-length quaternion")
    w, x, y, z = q / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """(w, x, y, z) of a rotation matrix (Shepperd's method, numerically safe)."""
    tr = np.trace(R)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + R[i, i] - R[j, j] - R[k, k])
        q = [0.0] * 4
        q[0] = (R[k, j] - R[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (R[j, i] + R[i, j]) / s
        q[1 + k] = (R[k, i] + R[i, k]) / s
    q = np.asarray(q)
    return q / np.linalg.norm(q)


def _slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:  # nearly parallel: linear is exact enough and avoids 0/0
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    th = np.arccos(d)
    return (np.sin((1 - a) * th) * q0 + np.sin(a * th) * q1) / np.sin(th)


def _pose_matrix(position, orientation) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = quat_to_matrix(orientation.x, orientation.y, orientation.z, orientation.w)
    M[:3, 3] = (position.x, position.y, position.z)
    return M


def _interpolate(stamps: list[float], mats: list[np.ndarray], t: float, tol: float) -> np.ndarray | None:
    """Pose at ``t``: interpolated between neighbours up to MAX_POSE_GAP apart, or the
    nearest sample within ``tol`` at either end; None otherwise (no extrapolation)."""
    if not stamps:
        return None
    i = bisect.bisect_left(stamps, t)
    if i < len(stamps) and abs(stamps[i] - t) <= 1e-6:
        return mats[i]
    if 0 < i < len(stamps):
        t0, t1 = stamps[i - 1], stamps[i]
        if t1 - t0 <= MAX_POSE_GAP:
            a = (t - t0) / (t1 - t0)
            M0, M1 = mats[i - 1], mats[i]
            q = _slerp(_matrix_to_quat(M0[:3, :3]), _matrix_to_quat(M1[:3, :3]), a)
            M = np.eye(4)
            M[:3, :3] = quat_to_matrix(q[1], q[2], q[3], q[0])
            M[:3, 3] = (1 - a) * M0[:3, 3] + a * M1[:3, 3]
            return M
    near = [j for j in (i - 1, i) if 0 <= j < len(stamps)]
    j = min(near, key=lambda j: abs(stamps[j] - t))
    return mats[j] if abs(stamps[j] - t) <= tol else None


def header_stamp(rawdata: bytes | memoryview) -> float:
    """Stamp of a CDR-serialised message whose first field is std_msgs/Header.

    Bytes 0-3 are the CDR encapsulation (byte 1: 1 = little endian), then
    builtin_interfaces/Time (int32 sec, uint32 nanosec).
    """
    if len(rawdata) < 12:
        raise ValueError(f"message of {len(rawdata)} bytes is too short to hold a header")
    endian = "<" if rawdata[1] == 1 else ">"
    sec, nsec = struct.unpack_from(endian + "iI", rawdata, 4)
    return sec + nsec * 1e-9


def _stamp(t) -> float:
    return t.sec + t.nanosec * 1e-9


def image_to_array(msg) -> np.ndarray:
    """sensor_msgs/Image -> (H, W) or (H, W, C) array in the image's own dtype, honouring
    ``step`` (row padding) and ``is_bigendian``."""
    enc = msg.encoding.lower()
    spec = {
        "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
        "mono8": (np.uint8, 1), "8uc1": (np.uint8, 1), "8uc3": (np.uint8, 3),
        "mono16": (np.uint16, 1), "16uc1": (np.uint16, 1), "32fc1": (np.float32, 1),
    }.get(enc)
    if spec is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}")
    dtype, ch = spec
    h, w = int(msg.height), int(msg.width)
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    row = w * ch * dt.itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    if msg.step < row or data.size < h * msg.step:
        raise ValueError(f"{enc} image {w}x{h}: step {msg.step} / {data.size} bytes do not fit")
    rows = data[: h * msg.step].reshape(h, msg.step)[:, :row]
    arr = np.ascontiguousarray(rows).view(dt).reshape((h, w, ch) if ch > 1 else (h, w))
    return arr.astype(dt.newbyteorder("="), copy=False)


def color_to_rgb(msg) -> np.ndarray:
    """Image (rgb8, bgr8, rgba8, bgra8, mono8) or CompressedImage -> (H, W, 3) uint8 RGB."""
    if hasattr(msg, "format"):  # sensor_msgs/CompressedImage
        import cv2

        bgr = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot decode compressed image (format {msg.format!r})")
        return np.ascontiguousarray(bgr[..., ::-1])
    arr = image_to_array(msg)
    enc = msg.encoding.lower()
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if enc.startswith("bgr"):
        arr = arr[..., 2::-1]
    return np.ascontiguousarray(arr[..., :3])


def depth_to_metres(msg) -> np.ndarray:
    """16UC1 / mono16 millimetres or 32FC1 metres -> (H, W) float32 metres, NaN = no reading."""
    arr = image_to_array(msg)
    if arr.dtype == np.uint16:
        out = arr.astype(np.float32) * 1e-3
        out[arr == 0] = np.nan
        return out
    if arr.dtype == np.float32:
        return arr.astype(np.float32, copy=True)
    raise ValueError(f"depth encoding {msg.encoding!r} is neither 16UC1 (mm) nor 32FC1 (m)")


def _nearest(stamps: list[float], t: float, tol: float) -> int | None:
    i = bisect.bisect_left(stamps, t)
    best = None
    for j in (i - 1, i):
        if 0 <= j < len(stamps) and abs(stamps[j] - t) <= tol:
            if best is None or abs(stamps[j] - t) < abs(stamps[best] - t):
                best = j
    return best


def _resize_nearest(img: np.ndarray, h: int, w: int) -> np.ndarray:
    ys = (np.arange(h) * img.shape[0] / h).astype(int)
    xs = (np.arange(w) * img.shape[1] / w).astype(int)
    return img[ys][:, xs]


class BagReader:
    """Frames of one bag. Construction runs the index pass (and raises on a bad bag);
    iterating runs the frame pass and may be repeated."""

    def __init__(
        self,
        path: str | Path,
        topics: BagTopics | None = None,
        *,
        use_labels: bool = True,
        sync_tolerance: float | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.topics = topics or BagTopics()
        self.use_labels = use_labels and self.topics.labels is not None
        self.max_frames = max_frames
        if not self.path.exists():
            raise FileNotFoundError(f"bag {self.path} does not exist")
        self._index(sync_tolerance)

    # -- pass 1 -----------------------------------------------------------------------
    def _open(self):
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        try:
            reader = AnyReader([self.path], default_typestore=get_typestore(Stores.ROS2_JAZZY))
            reader.open()
        except Exception as exc:  # rosbags raises several types for a damaged bag
            raise ValueError(f"cannot open bag {self.path} (corrupt or not a rosbag2): {_why(exc)}") from None
        return reader

    def _index(self, sync_tolerance: float | None) -> None:
        tp = self.topics
        reader = self._open()
        try:
            present = {name: (info.msgtype or "?", info.msgcount) for name, info in reader.topics.items()}
            conns = {c.topic: c for c in reader.connections}

            def has(topic: str | None, *types: str) -> bool:
                return topic is not None and topic in present and present[topic][0] in types

            color = tp.color if has(tp.color, IMAGE) else tp.color_compressed if has(tp.color_compressed, COMPRESSED) else None
            missing = []
            if color is None:
                missing.append(f"{tp.color} (sensor_msgs/Image) or {tp.color_compressed} (CompressedImage)")
            if not has(tp.depth, IMAGE):
                missing.append(f"{tp.depth} (sensor_msgs/Image depth)")
            if not has(tp.camera_info, CAMERA_INFO):
                missing.append(f"{tp.camera_info} (sensor_msgs/CameraInfo)")
            pose_kind = "pose" if has(tp.pose, POSE_STAMPED) else "odom" if has(tp.odom, ODOMETRY) else "tf" if (
                has(tp.tf, TF_MESSAGE)
            ) else None
            if pose_kind is None:
                missing.append(
                    f"a camera pose: {tp.pose} (PoseStamped), {tp.odom} (Odometry) or {tp.tf} (TFMessage)"
                )
            if missing:
                listing = ", ".join(f"{n} ({t})" for n, (t, _) in sorted(present.items())) or "none"
                raise ValueError(
                    f"bag {self.path} lacks the topics needed: {'; '.join(missing)}. Topics present: {listing}"
                )
            self.has_labels = self.use_labels and has(tp.labels, IMAGE)

            image_topics = [color, tp.depth] + ([tp.labels] if self.has_labels else [])
            small_topics = [tp.camera_info, tp.tf, tp.tf_static] + ([tp.pose] if pose_kind == "pose" else []) + (
                [tp.odom] if pose_kind == "odom" else []
            )
            stamps: dict[str, list[float]] = {t: [] for t in image_topics}
            self._infos: list[tuple[float, np.ndarray, int, int]] = []  # stamp, K, w, h
            pose_s: list[tuple[float, np.ndarray]] = []
            odom_child = ""
            tf = _TfBuffer()
            wanted = [conns[t] for t in image_topics + small_topics if t in conns]
            # every connection of a topic (a bag may hold several for one topic)
            wanted = [c for c in reader.connections if c.topic in {w.topic for w in wanted}]
            n = 0
            try:
                for conn, _, raw in reader.messages(connections=wanted):
                    n += 1
                    if conn.topic in stamps:
                        stamps[conn.topic].append(header_stamp(raw))
                        continue
                    msg = reader.deserialize(raw, conn.msgtype)
                    if conn.topic == tp.camera_info:
                        K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
                        self._infos.append((_stamp(msg.header.stamp), K, int(msg.width), int(msg.height)))
                    elif conn.topic in (tp.tf, tp.tf_static) and conn.msgtype == TF_MESSAGE:
                        for ts in msg.transforms:
                            tr = ts.transform
                            tf.add(ts.header.frame_id, ts.child_frame_id, _stamp(ts.header.stamp),
                                   _pose_matrix(tr.translation, tr.rotation), static=conn.topic == tp.tf_static)
                    elif pose_kind == "pose" and conn.topic == tp.pose:
                        pose_s.append((_stamp(msg.header.stamp), _pose_matrix(msg.pose.position, msg.pose.orientation)))
                    elif pose_kind == "odom" and conn.topic == tp.odom:
                        odom_child = msg.child_frame_id.lstrip("/")
                        p = msg.pose.pose
                        pose_s.append((_stamp(msg.header.stamp), _pose_matrix(p.position, p.orientation)))
            except Exception as exc:
                raise _corrupt_bag(self.path, n, exc) from None
        finally:
            reader.close()

        self.color_topic = color
        self._infos.sort(key=lambda x: x[0])
        color_st = sorted(stamps[color])
        if len(color_st) > 1:
            period = float(np.median(np.diff(color_st)))
        else:
            period = 0.1
        tol = sync_tolerance if sync_tolerance is not None else max(1e-3, min(0.05, 0.45 * period))
        self.sync_tolerance = tol

        # Pose at a stamp, from whichever source the bag has.
        pose_s.sort(key=lambda x: x[0])
        ps, pm = [p[0] for p in pose_s], [p[1] for p in pose_s]
        cam = tp.camera_frame.lstrip("/")
        if pose_kind == "pose":
            pose_at = lambda t: _interpolate(ps, pm, t, tol)  # noqa: E731
            source = f"pose {tp.pose}"
        elif pose_kind == "odom":
            source = f"odom {tp.odom}"
            need_tf = odom_child not in ("", cam) and tf.has_chain(odom_child, cam)

            def pose_at(t):
                M = _interpolate(ps, pm, t, tol)
                if M is None or not need_tf:
                    return M
                extra = tf.lookup(odom_child, cam, t, tol)
                return None if extra is None else M @ extra
        else:
            if not tf.has_chain(tp.world_frame, cam):
                frames = sorted(set(tf.parent) | set(tf.parent.values()))
                raise ValueError(
                    f"bag {self.path} lacks the topics needed: no pose topic ({tp.pose}, {tp.odom}) and "
                    f"{tp.tf} has no chain {tp.world_frame} -> {cam}; frames in /tf: {', '.join(frames) or 'none'}"
                )
            source = f"tf {tp.world_frame} -> {cam}"
            pose_at = lambda t: tf.lookup(tp.world_frame, cam, t, tol)  # noqa: E731

        depth_st = sorted(stamps[tp.depth])
        label_st = sorted(stamps[tp.labels]) if self.has_labels else []
        info_st = [i[0] for i in self._infos]
        # plan: one entry per frame to yield
        self._plan: list[dict] = []
        skipped = {"no depth": 0, "no camera_info": 0, "no pose": 0, "no labels": 0}
        for t in color_st:
            d = _nearest(depth_st, t, tol)
            if d is None:
                skipped["no depth"] += 1
                continue
            if not self._infos:
                skipped["no camera_info"] += 1
                continue
            # camera_info is often published once or with a stamp of 0: take the nearest one
            ii = _nearest(info_st, t, float("inf"))
            M = pose_at(t)
            if M is None:
                skipped["no pose"] += 1
                continue
            lab = _nearest(label_st, t, tol) if self.has_labels else None
            if self.has_labels and lab is None:
                skipped["no labels"] += 1  # still used, without labels
            self._plan.append(
                {"stamp": t, "depth": depth_st[d], "labels": None if lab is None else label_st[lab],
                 "info": ii, "T": M}
            )
        if self.max_frames is not None:
            self._plan = self._plan[: self.max_frames]
        self.info = BagInfo(
            path=self.path,
            topics=present,
            color_topic=color,
            pose_source=source,
            has_labels=self.has_labels,
            n_color=len(color_st),
            n_frames=len(self._plan),
            skipped={k: v for k, v in skipped.items() if v},
            start_stamp=self._plan[0]["stamp"] if self._plan else 0.0,
            end_stamp=self._plan[-1]["stamp"] if self._plan else 0.0,
            rate_hz=1.0 / period if period > 0 else 0.0,
        )
        if not self._plan:
            raise ValueError(
                f"bag {self.path} has no usable frames: {len(color_st)} colour images on {color}, "
                f"none with depth, camera_info and a pose within {tol * 1e3:.0f} ms ({self.info.skipped})"
            )

    def __len__(self) -> int:
        return len(self._plan)

    # -- pass 2 -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[CameraFrame]:
        return self.frames()

    def frames(self) -> Iterator[CameraFrame]:
        tp = self.topics
        want = {
            self.color_topic: {p["stamp"] for p in self._plan},
            tp.depth: {p["depth"] for p in self._plan},
        }
        if self.has_labels:
            want[tp.labels] = {p["labels"] for p in self._plan if p["labels"] is not None}
        # decoded images waiting for the rest of their frame: topic -> stamp -> array
        pending: dict[str, dict[float, np.ndarray]] = {t: {} for t in want}
        nxt = 0  # next plan entry to emit, so frames come out in stamp order
        reader = self._open()
        n = 0
        try:
            conns = [c for c in reader.connections if c.topic in want]
            try:
                for conn, _, raw in reader.messages(connections=conns):
                    n += 1
                    t = header_stamp(raw)
                    if t not in want[conn.topic]:
                        continue
                    msg = reader.deserialize(raw, conn.msgtype)
                    if conn.topic == self.color_topic:
                        pending[conn.topic][t] = color_to_rgb(msg)
                    elif conn.topic == tp.depth:
                        pending[conn.topic][t] = depth_to_metres(msg)
                    else:
                        pending[conn.topic][t] = image_to_array(msg).astype(np.int32)
                    while nxt < len(self._plan) and self._ready(self._plan[nxt], pending):
                        yield self._make(nxt, pending)
                        nxt += 1
            except Exception as exc:
                raise _corrupt_bag(self.path, n, exc) from None
        finally:
            reader.close()
        if nxt < len(self._plan):  # the index promised frames the data did not deliver
            raise ValueError(
                f"corrupt bag {self.path}: {len(self._plan) - nxt} indexed frames could not be read back"
            )

    def _ready(self, p: dict, pending: dict) -> bool:
        tp = self.topics
        return (
            p["stamp"] in pending[self.color_topic]
            and p["depth"] in pending[tp.depth]
            and (p["labels"] is None or p["labels"] in pending[tp.labels])
        )

    def _make(self, i: int, pending: dict) -> CameraFrame:
        tp = self.topics
        p = self._plan[i]
        rgb = pending[self.color_topic].pop(p["stamp"])
        # a depth image may serve two colour frames when rates differ: copy, keep until unused
        depth = pending[tp.depth][p["depth"]]
        if not any(q["depth"] == p["depth"] for q in self._plan[i + 1 : i + 3]):
            pending[tp.depth].pop(p["depth"])
        labels = None
        if p["labels"] is not None:
            labels = pending[tp.labels][p["labels"]]
            if not any(q["labels"] == p["labels"] for q in self._plan[i + 1 : i + 3]):
                pending[tp.labels].pop(p["labels"])
        _, K, iw, ih = self._infos[p["info"]]
        h, w = rgb.shape[:2]
        K = K.copy()
        if (iw, ih) != (w, h) and iw > 0 and ih > 0:  # info for another resolution: rescale
            K[0] *= w / iw
            K[1] *= h / ih
        if depth.shape != (h, w):  # registered depth at another size: resample onto colour
            depth = _resize_nearest(depth, h, w)
        if labels is not None and labels.shape != (h, w):
            labels = _resize_nearest(labels, h, w)
        return CameraFrame(
            stamp=p["stamp"], depth=depth.copy(), K=K, T_world_cam=p["T"], rgb=rgb, labels=labels, frame_index=i
        )


def _corrupt_bag(path: Path, n: int, exc: Exception) -> ValueError:
    """The error for a bag whose reading failed after ``n`` messages had been taken.

    Our own checks (ValueError) reject message ``n`` itself; anything else is most often the
    reader failing to deliver the next one.
    """
    if isinstance(exc, ValueError):
        return ValueError(f"corrupt bag {path}: message {n}: {exc}")
    return ValueError(f"corrupt bag {path}: reading message {n + 1} failed: {_why(exc)}")


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def read_frames(path: str | Path, topics: BagTopics | None = None, **kw) -> Iterator[CameraFrame]:
    """Convenience: iterate the frames of a bag."""
    return iter(BagReader(path, topics, **kw))
