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
from spatial_ttt_ros.evaluation.tf_buffer import TfBuffer, pose_at_stamp
from spatial_ttt_ros.frames import CameraFrame
from spatial_ttt_ros.images import color_to_rgb, depth_to_metres, labels_to_ids
from spatial_ttt_ros.poses import pose_to_matrix

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
ODOMETRY = "nav_msgs/msg/Odometry"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"

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
            tf = TfBuffer()
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
                                   pose_to_matrix(tr.translation, tr.rotation), static=conn.topic == tp.tf_static)
                    elif pose_kind == "pose" and conn.topic == tp.pose:
                        pose_s.append((_stamp(msg.header.stamp), pose_to_matrix(msg.pose.position, msg.pose.orientation)))
                    elif pose_kind == "odom" and conn.topic == tp.odom:
                        odom_child = msg.child_frame_id.lstrip("/")
                        p = msg.pose.pose
                        pose_s.append((_stamp(msg.header.stamp), pose_to_matrix(p.position, p.orientation)))
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
            pose_at = lambda t: pose_at_stamp(ps, pm, t, tol)  # noqa: E731
            source = f"pose {tp.pose}"
        elif pose_kind == "odom":
            source = f"odom {tp.odom}"
            need_tf = odom_child not in ("", cam) and tf.has_chain(odom_child, cam)

            def pose_at(t):
                M = pose_at_stamp(ps, pm, t, tol)
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
                        pending[conn.topic][t] = labels_to_ids(msg)
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
