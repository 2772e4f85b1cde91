"""The shared pose maths (spatial_ttt_ros.poses) and image decoding (spatial_ttt_ros.images),
on rosbags' message classes (the ROS side is tested through ros/conversions.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from spatial_ttt_ros import images, poses

TS = get_typestore(Stores.ROS2_JAZZY)


def _rotation_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_quaternions_round_trip_with_w_positive_and_refuse_non_rotations():
    rng = np.random.default_rng(3)
    for _ in range(50):
        q = rng.normal(size=4)
        R = poses.quaternion_to_matrix(*q)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        x, y, z, w = poses.matrix_to_quaternion(R)
        assert w >= 0
        np.testing.assert_allclose(np.array([x, y, z, w]), q / np.linalg.norm(q) * np.sign(q[3]), atol=1e-9)
    # 90 deg about z: the ROS convention (x, y, z, w)
    np.testing.assert_allclose(poses.quaternion_to_matrix(0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)), _rotation_z(90), atol=1e-12)
    for bad in [(0, 0, 0, 0), (math.nan, 0, 0, 1), (math.inf, 0, 0, 1)]:
        with pytest.raises(ValueError, match="invalid quaternion"):
            poses.quaternion_to_matrix(*bad)


def test_pose_messages_and_interpolation_the_short_way_round():
    msg = TS.types["geometry_msgs/msg/Pose"](
        position=TS.types["geometry_msgs/msg/Point"](x=1.0, y=2.0, z=3.0),
        orientation=TS.types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(math.pi / 8), w=math.cos(math.pi / 8)),
    )
    T = poses.pose_to_matrix(msg.position, msg.orientation)
    np.testing.assert_allclose(T[:3, :3], _rotation_z(45), atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], (1, 2, 3))
    np.testing.assert_allclose(poses.pose7_to_matrix([1, 2, 3, 0, 0, math.sin(math.pi / 8), math.cos(math.pi / 8)]), T)
    T0 = poses.make_transform(_rotation_z(170), (0, 0, 0))
    T1 = poses.make_transform(_rotation_z(-170), (2, 0, 0))
    mid = poses.interpolate_pose(T0, T1, 0.5)
    np.testing.assert_allclose(mid[:3, :3], _rotation_z(180), atol=1e-9)  # through 180, not through 0
    np.testing.assert_allclose(mid[:3, 3], (1, 0, 0))
    np.testing.assert_allclose(poses.interpolate_pose(T0, T1, 0.0), T0, atol=1e-12)
    np.testing.assert_allclose(poses.interpolate_pose(T0, T1, 1.0), T1, atol=1e-12)


def _image(arr: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False):
    arr = np.ascontiguousarray(arr)
    h = arr.shape[0]
    if bigendian:
        arr = arr.astype(arr.dtype.newbyteorder(">"))
    rows = arr.reshape(h, -1).view(np.uint8)
    data = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1).reshape(-1)
    return TS.types["sensor_msgs/msg/Image"](
        header=TS.types["std_msgs/msg/Header"](stamp=TS.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""),
        height=h, width=arr.shape[1], encoding=encoding, is_bigendian=int(bigendian), step=rows.shape[1] + pad, data=data,
    )


def test_depth_zero_is_nan_in_both_encodings_and_rows_honour_step():
    mm = np.array([[1000, 0, 2500], [1, 65535, 0]], np.uint16)
    for bigendian in (False, True):
        d = images.depth_to_metres(_image(mm, "16UC1", pad=2, bigendian=bigendian))
        assert d.dtype == np.float32 and d[0, 0] == np.float32(1.0) and d[0, 2] == np.float32(2.5)
        assert np.isnan(d[0, 1]) and np.isnan(d[1, 2]) and d[1, 1] == pytest.approx(65.535)
    m = np.array([[1.5, 0.0], [np.nan, 3.0]], np.float32)
    d = images.depth_to_metres(_image(m, "32FC1"))
    assert d[0, 0] == 1.5 and d[1, 1] == 3.0 and np.isnan(d[0, 1]) and np.isnan(d[1, 0])
    with pytest.raises(images.UnsupportedEncoding, match="16UC1"):
        images.depth_to_metres(_image(np.zeros((2, 2), np.uint8), "mono8"))
    short = _image(mm, "16UC1")
    short.data = short.data[:5]
    with pytest.raises(ValueError, match="expected"):
        images.image_to_array(short)


def test_colour_raw_and_compressed_to_rgb():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    for enc, arr in [("rgb8", rgb), ("bgr8", rgb[..., ::-1]), ("rgba8", np.dstack([rgb, np.full((4, 5), 9, np.uint8)])),
                     ("bgra8", np.dstack([rgb[..., ::-1], np.full((4, 5), 9, np.uint8)]))]:
        np.testing.assert_array_equal(images.color_to_rgb(_image(arr, enc, pad=3)), rgb)
    grey = images.color_to_rgb(_image(rgb[..., 0], "mono8"))
    assert grey.shape == (4, 5, 3) and (grey == rgb[..., :1]).all()
    with pytest.raises(images.UnsupportedEncoding, match="yuv422"):
        images.color_to_rgb(_image(np.zeros((2, 4), np.uint8), "yuv422"))

    def compressed(data: bytes):
        return TS.types["sensor_msgs/msg/CompressedImage"](
            header=TS.types["std_msgs/msg/Header"](stamp=TS.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""),
            format="rgb8; png compressed bgr8", data=np.frombuffer(data, np.uint8),
        )

    big = np.zeros((8, 12, 3), np.uint8)
    big[:, :6] = (200, 30, 10)  # red left half: catches a BGR/RGB swap
    png = cv2.imencode(".png", big[..., ::-1])[1].tobytes()
    np.testing.assert_array_equal(images.color_to_rgb(compressed(png)), big)
    grey_png = cv2.imencode(".png", big[..., 0])[1].tobytes()
    out = images.compressed_to_rgb(compressed(grey_png))
    assert out.shape == (8, 12, 3) and (out[..., 1] == big[..., 0]).all()
    for garbage in (b"", b"not an image"):
        with pytest.raises(images.UnsupportedEncoding, match="could not be decoded"):
            images.compressed_to_rgb(compressed(garbage))


def test_labels_are_int32_ids():
    ids = np.array([[0, 3], [15, 65535]], np.uint16)
    out = images.labels_to_ids(_image(ids, "16UC1"))
    assert out.dtype == np.int32 and out.tolist() == [[0, 3], [15, 65535]]
    assert images.labels_to_ids(_image(ids.astype(np.uint8), "mono8")).tolist() == [[0, 3], [15, 255]]
