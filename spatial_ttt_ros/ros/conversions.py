"""ROS messages <-> the core's plain types (numpy images, 4x4 poses, Answer, Inventory).

Image decoding is ``spatial_ttt_ros.images`` and pose maths ``spatial_ttt_ros.poses``
(ROS-free, shared with the bag reader; cv_bridge for ROS 2 is not installable here and
PyPI's port breaks on 16UC1); their names are re-exported here for the node. Everything
here is pure functions, testable without ``rclpy.init``.
"""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PointStamped, Pose, Vector3
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from spatial_ttt_ros.msg import Answer as AnswerMsg
from spatial_ttt_ros.msg import InventoryObject as InventoryObjectMsg
from spatial_ttt_ros.msg import RoomExtent, SceneDescription
from spatial_ttt_ros import poses
from spatial_ttt_ros.answer import Answer
from spatial_ttt_ros.images import (  # noqa: F401 (the node's names)
    COLOR_ENCODINGS,
    DEPTH_ENCODINGS,
    LABEL_ENCODINGS,
    UnsupportedEncoding,
    color_to_rgb,
    compressed_to_rgb,
    depth_to_metres,
    image_to_array,
    labels_to_ids,
    pixel_type,
)
from spatial_ttt_ros.inventory import Inventory
from spatial_ttt_ros.poses import interpolate_pose, pose7_to_matrix, quaternion_to_matrix  # noqa: F401 (the node's names)


# ----------------------------------------------------------------------------- time


def stamp_to_sec(stamp) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def sec_to_stamp(t: float) -> Time:
    sec = math.floor(t)
    nanosec = int(round((t - sec) * 1e9))
    if nanosec >= 1_000_000_000:  # rounding up to the next second
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return Time(sec=int(sec), nanosec=nanosec)


# ----------------------------------------------------------------------------- images


def array_to_image(arr: np.ndarray, encoding: str, stamp: float | Time = 0.0, frame_id: str = "") -> Image:
    """A sensor_msgs/Image of ``arr`` (little-endian, packed rows)."""
    arr = np.ascontiguousarray(arr)
    dtype, channels = pixel_type(encoding)
    arr = arr.astype(dtype.newbyteorder("<"), copy=False)
    h, w = arr.shape[:2]
    msg = Image()
    msg.header = make_header(stamp, frame_id)
    msg.height, msg.width = int(h), int(w)
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(w * channels * arr.dtype.itemsize)
    msg.data = arr.tobytes()
    return msg


def rgb_to_compressed(rgb: np.ndarray, stamp: float | Time = 0.0, frame_id: str = "", fmt: str = "jpeg") -> CompressedImage:
    import cv2

    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ValueError("image encoding failed")
    msg = CompressedImage()
    msg.header = make_header(stamp, frame_id)
    msg.format = f"rgb8; {fmt} compressed bgr8"
    msg.data = buf.tobytes()
    return msg


# ----------------------------------------------------------------------------- camera


def camera_info_to_K(msg: CameraInfo) -> np.ndarray:
    K = np.array(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"camera_info has no valid intrinsics (k={list(msg.k)})")
    return K


def K_to_camera_info(K: np.ndarray, width: int, height: int, stamp: float | Time = 0.0, frame_id: str = "") -> CameraInfo:
    msg = CameraInfo()
    msg.header = make_header(stamp, frame_id)
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in np.asarray(K, dtype=np.float64).reshape(9)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    P = np.zeros((3, 4))
    P[:3, :3] = np.asarray(K).reshape(3, 3)
    msg.p = [float(v) for v in P.reshape(12)]
    return msg


# ----------------------------------------------------------------------------- poses


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """4x4 transform of a geometry_msgs/Pose (or anything with .position/.orientation)."""
    T = poses.pose_to_matrix(pose.position, pose.orientation)
    if not np.all(np.isfinite(T)):
        raise ValueError("pose contains NaN or inf")
    return T


def transform_to_matrix(transform) -> np.ndarray:
    """4x4 of a geometry_msgs/Transform (translation + rotation)."""
    return poses.pose_to_matrix(transform.translation, transform.rotation)


def matrix_to_pose(T: np.ndarray) -> Pose:
    T = np.asarray(T, dtype=np.float64)
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    qx, qy, qz, qw = poses.matrix_to_quaternion(T[:3, :3])
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = qx, qy, qz, qw
    return pose


# ----------------------------------------------------------------------------- outputs


def make_header(stamp: float | Time, frame_id: str) -> Header:
    h = Header()
    h.stamp = stamp if isinstance(stamp, Time) else sec_to_stamp(float(stamp))
    h.frame_id = frame_id
    return h


def _point(v) -> Point:
    return Point(x=float(v[0]), y=float(v[1]), z=float(v[2]) if len(v) > 2 else 0.0)


def answer_to_msg(answer: Answer, question: str, stamp: float | Time, frame_id: str) -> AnswerMsg:
    header = make_header(stamp, frame_id)
    msg = AnswerMsg()
    msg.header = header
    msg.question = question
    msg.task_type = answer.task
    msg.text = answer.text
    msg.value = float(answer.value)
    msg.unit = answer.unit
    msg.option = answer.option
    msg.choice = answer.choice
    msg.confidence = float(min(1.0, max(0.0, answer.confidence)))
    msg.position_labels = [p.label for p in answer.positions]
    msg.positions = [PointStamped(header=header, point=_point(p.position)) for p in answer.positions]
    return msg


def inventory_to_description(
    inventory: Inventory, text: str, frames_seen: int, stamp: float | Time, frame_id: str
) -> SceneDescription:
    msg = SceneDescription()
    msg.header = make_header(stamp, frame_id)
    msg.text = text
    msg.frames_seen = int(frames_seen)
    for o in inventory.objects:
        m = InventoryObjectMsg()
        m.label = o.label
        m.center = _point(o.center)
        m.size = Vector3(x=float(o.size[0]), y=float(o.size[1]), z=float(o.size[2]))
        m.yaw = float(o.yaw)
        m.first_seen = float(o.first_seen)
        m.confidence = float(min(1.0, max(0.0, o.confidence)))
        msg.objects.append(m)
    room = RoomExtent()
    if inventory.room is not None:
        room.area_m2 = float(inventory.room.area_m2)
        room.min = _point(inventory.room.min_xy)
        room.max = _point(inventory.room.max_xy)
    msg.room = room
    return msg


def _class_colour(label: str) -> ColorRGBA:
    # A stable colour per class name, so RViz shows the same class in the same colour.
    h = (sum(ord(c) * (i + 1) for i, c in enumerate(label)) % 360) / 360.0
    i, f = int(h * 6), h * 6 - int(h * 6)
    q, t = 1 - f, f
    r, g, b = [(1, t, 0), (q, 1, 0), (0, 1, t), (0, q, 1), (t, 0, 1), (1, 0, q)][i % 6]
    return ColorRGBA(r=0.2 + 0.8 * r, g=0.2 + 0.8 * g, b=0.2 + 0.8 * b, a=0.5)


def inventory_to_markers(inventory: Inventory, stamp: float | Time, frame_id: str, ns: str = "spatial_ttt") -> MarkerArray:
    """DELETEALL, then per object a CUBE and a TEXT_VIEW_FACING with its class; the room as a LINE_STRIP."""
    header = make_header(stamp, frame_id)
    out = MarkerArray()
    out.markers.append(Marker(header=header, ns=ns, id=0, action=Marker.DELETEALL))
    for i, o in enumerate(inventory.objects):
        colour = _class_colour(o.label)
        cube = Marker(header=header, ns=f"{ns}/objects", id=i, type=Marker.CUBE, action=Marker.ADD)
        cube.pose.position = _point(o.center)
        cube.pose.orientation.z, cube.pose.orientation.w = math.sin(o.yaw / 2), math.cos(o.yaw / 2)
        cube.scale = Vector3(x=max(float(o.size[0]), 0.01), y=max(float(o.size[1]), 0.01), z=max(float(o.size[2]), 0.01))
        cube.color = colour
        out.markers.append(cube)
        text = Marker(header=header, ns=f"{ns}/labels", id=i, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        text.pose.position = _point(o.center + np.array([0.0, 0.0, o.size[2] / 2 + 0.15]))
        text.pose.orientation.w = 1.0
        text.scale.z = 0.2  # text height [m]
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        text.text = o.label
        out.markers.append(text)
    room = inventory.room
    if room is not None:
        # One LINE_STRIP per room outline; the floor's bounding box when there are none.
        outlines = [np.asarray(p, dtype=np.float64) for p in room.polygons if len(p) >= 3]
        if not outlines:
            (x0, y0), (x1, y1) = room.min_xy, room.max_xy
            outlines = [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])]
        for i, corners in enumerate(outlines):
            line = Marker(header=header, ns=f"{ns}/room", id=i, type=Marker.LINE_STRIP, action=Marker.ADD)
            line.pose.orientation.w = 1.0
            line.scale.x = 0.05  # line width [m]
            line.color = ColorRGBA(r=0.9, g=0.9, b=0.9, a=1.0)
            line.points = [_point((float(c[0]), float(c[1]), 0.0)) for c in list(corners) + [corners[0]]]
            out.markers.append(line)
    return out
