"""Hand-made rosbag2 files for the evaluation tests: small, exact, and able to leave
out or damage what a test needs (the simulator's writer always writes everything)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from spatial_ttt_ros import topics as T
from spatial_ttt_ros.poses import matrix_to_quaternion

TS = get_typestore(Stores.ROS2_JAZZY)
K = np.array([[80.0, 0, 40.0], [0, 80.0, 30.0], [0, 0, 1]])


def _time(t: float):
    sec = int(np.floor(t))
    return TS.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=int(round((t - sec) * 1e9)))


def _header(t: float, frame: str):
    return TS.types["std_msgs/msg/Header"](stamp=_time(t), frame_id=frame)


def _image(t, arr: np.ndarray, encoding: str, frame=T.CAMERA_FRAME):
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    return TS.types["sensor_msgs/msg/Image"](
        header=_header(t, frame), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=arr.nbytes // h, data=arr.view(np.uint8).reshape(-1),
    )


def _quat(R: np.ndarray):
    x, y, z, w = matrix_to_quaternion(R)
    return TS.types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)


def _point(p):
    return TS.types["geometry_msgs/msg/Point"](x=float(p[0]), y=float(p[1]), z=float(p[2]))


def _vec(p):
    return TS.types["geometry_msgs/msg/Vector3"](x=float(p[0]), y=float(p[1]), z=float(p[2]))


def pose_at(i: int) -> np.ndarray:
    """Optical camera looking along world +x (z forward -> x, x right -> -y, y down -> -z)."""
    M = np.eye(4)
    M[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)
    M[:3, 3] = (0.1 * i, 0.0, 1.2)
    return M


def write_bag(
    path: Path,
    n: int = 5,
    *,
    rate: float = 10.0,
    pose: str = "pose",  # "pose", "odom", "tf", or "none"
    depth: str = "16UC1",  # "16UC1", "32FC1" or "none"
    color: str = "rgb8",
    labels: bool = True,
    storage: str = "mcap",
    frames: list | None = None,  # CameraFrames to write instead of the synthetic ones
) -> Path:
    h, w = (60, 80) if frames is None else frames[0].depth.shape
    n = n if frames is None else len(frames)
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
    with writer:
        c = writer.add_connection(T.COLOR, "sensor_msgs/msg/Image", typestore=TS)
        d = writer.add_connection(T.DEPTH, "sensor_msgs/msg/Image", typestore=TS) if depth != "none" else None
        ci = writer.add_connection(T.CAMERA_INFO, "sensor_msgs/msg/CameraInfo", typestore=TS)
        lab = writer.add_connection(T.LABELS, "sensor_msgs/msg/Image", typestore=TS) if labels else None
        p = {
            "pose": lambda: writer.add_connection(T.POSE, "geometry_msgs/msg/PoseStamped", typestore=TS),
            "odom": lambda: writer.add_connection(T.ODOM, "nav_msgs/msg/Odometry", typestore=TS),
            "tf": lambda: writer.add_connection(T.TF, "tf2_msgs/msg/TFMessage", typestore=TS),
            "none": lambda: None,
        }[pose]()
        for i in range(n):
            f = None if frames is None else frames[i]
            t = 100.0 + (i / rate if f is None else f.stamp)
            ns = int(round(t * 1e9))
            rgb = np.zeros((h, w, 3), np.uint8)
            rgb[..., 0] = i  # red channel carries the frame number, to check order and bgr
            rgb[..., 2] = 200
            if f is not None:
                rgb = f.rgb
            img = rgb[..., ::-1] if color == "bgr8" else rgb
            writer.write(c, ns, TS.serialize_cdr(_image(t, img, color), "sensor_msgs/msg/Image"))
            if d is not None:
                dm = np.full((h, w), 2.0 + 0.01 * i, np.float32)
                dm[0, 0] = 0.0  # one pixel with no reading
                if f is not None:
                    dm = np.nan_to_num(f.depth, nan=0.0, posinf=0.0).astype(np.float32)
                arr = (dm * 1000).astype(np.uint16) if depth == "16UC1" else dm
                writer.write(d, ns + 1000, TS.serialize_cdr(_image(t, arr, depth), "sensor_msgs/msg/Image"))
            info = TS.types["sensor_msgs/msg/CameraInfo"](
                header=_header(t, T.CAMERA_FRAME), height=h, width=w, distortion_model="plumb_bob",
                d=np.zeros(5), k=(K if f is None else f.K).reshape(-1), r=np.eye(3).reshape(-1), p=np.zeros(12),
                binning_x=0, binning_y=0,
                roi=TS.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
            )
            writer.write(ci, ns, TS.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
            if lab is not None:
                la = np.zeros((h, w), np.uint16)
                la[20:40, 30:50] = 1  # a chair
                if f is not None:
                    la = f.labels.astype(np.uint16)
                writer.write(lab, ns + 2000, TS.serialize_cdr(_image(t, la, "16UC1"), "sensor_msgs/msg/Image"))
            M = pose_at(i) if f is None else f.T_world_cam
            if pose == "pose":
                msg = TS.types["geometry_msgs/msg/PoseStamped"](
                    header=_header(t, T.WORLD_FRAME),
                    pose=TS.types["geometry_msgs/msg/Pose"](position=_point(M[:3, 3]), orientation=_quat(M[:3, :3])),
                )
                writer.write(p, ns, TS.serialize_cdr(msg, "geometry_msgs/msg/PoseStamped"))
            elif pose == "odom":
                PwC = TS.types["geometry_msgs/msg/PoseWithCovariance"](
                    pose=TS.types["geometry_msgs/msg/Pose"](position=_point(M[:3, 3]), orientation=_quat(M[:3, :3])),
                    covariance=np.zeros(36),
                )
                TwC = TS.types["geometry_msgs/msg/TwistWithCovariance"](
                    twist=TS.types["geometry_msgs/msg/Twist"](linear=_vec((0, 0, 0)), angular=_vec((0, 0, 0))),
                    covariance=np.zeros(36),
                )
                msg = TS.types["nav_msgs/msg/Odometry"](
                    header=_header(t, T.WORLD_FRAME), child_frame_id=T.CAMERA_FRAME, pose=PwC, twist=TwC
                )
                writer.write(p, ns, TS.serialize_cdr(msg, "nav_msgs/msg/Odometry"))
            elif pose == "tf":
                # map -> base_link (moving) -> camera (fixed 1.2 m up, optical axes)
                base = np.eye(4)
                base[:3, 3] = (M[0, 3], M[1, 3], 0.0)
                cam = np.linalg.inv(base) @ M
                tfs = []
                for parent, child, X in ((T.WORLD_FRAME, T.BASE_FRAME, base), (T.BASE_FRAME, T.CAMERA_FRAME, cam)):
                    tfs.append(
                        TS.types["geometry_msgs/msg/TransformStamped"](
                            header=_header(t, parent), child_frame_id=child,
                            transform=TS.types["geometry_msgs/msg/Transform"](
                                translation=_vec(X[:3, 3]), rotation=_quat(X[:3, :3])
                            ),
                        )
                    )
                msg = TS.types["tf2_msgs/msg/TFMessage"](transforms=tfs)
                writer.write(p, ns, TS.serialize_cdr(msg, "tf2_msgs/msg/TFMessage"))
    return path


# --------------------------------------------------------------------------- tests
import pytest  # noqa: E402

from spatial_ttt_ros.evaluation.bag_reader import BagReader, BagTopics  # noqa: E402


@pytest.mark.parametrize(
    "pose,depth,color,storage",
    [("pose", "16UC1", "rgb8", "mcap"), ("odom", "32FC1", "bgr8", "mcap"), ("tf", "16UC1", "bgr8", "sqlite3")],
)
def test_reads_frames_from_each_pose_source_and_encoding(tmp_path, pose, depth, color, storage):
    bag = write_bag(tmp_path / "bag", n=4, pose=pose, depth=depth, color=color, storage=storage)
    reader = BagReader(bag)
    frames = list(reader)
    assert reader.info.pose_source.startswith(pose)
    assert [f.frame_index for f in frames] == [0, 1, 2, 3]
    assert [round(f.stamp, 6) for f in frames] == [100.0, 100.1, 100.2, 100.3]
    f = frames[2]
    # colour comes out RGB whatever the bag's encoding (red carries the frame number)
    assert f.rgb.dtype == np.uint8 and tuple(f.rgb[5, 5]) == (2, 0, 200)
    # depth in metres; a 0 reading is "no reading" (NaN for 16UC1, <= 0 for 32FC1)
    assert f.depth.dtype == np.float32 and abs(float(f.depth[10, 10]) - 2.02) < 1e-3
    assert not (f.depth[0, 0] > 0)
    np.testing.assert_allclose(f.K, K)
    np.testing.assert_allclose(f.T_world_cam, pose_at(2), atol=1e-9)
    assert f.labels is not None and f.labels[30, 40] == 1 and f.labels[0, 0] == 0


def test_labels_can_be_ignored_and_frames_limited(tmp_path):
    bag = write_bag(tmp_path / "bag", n=5)
    frames = list(BagReader(bag, use_labels=False, max_frames=3))
    assert len(frames) == 3 and all(f.labels is None for f in frames)


def test_topic_names_can_be_overridden(tmp_path):
    bag = write_bag(tmp_path / "bag", n=2)
    with pytest.raises(ValueError, match="/cam/rgb"):
        BagReader(bag, BagTopics(color="/cam/rgb", color_compressed="/cam/rgb/compressed"))


def test_bag_without_needed_topics_names_them_and_lists_present(tmp_path):
    bag = write_bag(tmp_path / "bag", n=2, depth="none", pose="none")
    with pytest.raises(ValueError) as e:
        BagReader(bag)
    msg = str(e.value)
    assert str(bag) in msg
    assert "/camera/depth/image_raw" in msg and "camera pose" in msg  # what is missing
    assert "Topics present: /camera/color/camera_info" in msg and "/camera/color/image_raw" in msg
    assert "\n" not in msg  # one line for the CLI


def test_tf_without_chain_to_camera_is_a_clear_error(tmp_path):
    bag = write_bag(tmp_path / "bag", n=2, pose="tf")
    with pytest.raises(ValueError, match=r"no chain map -> other_optical_frame; frames in /tf: base_link"):
        BagReader(bag, BagTopics(camera_frame="other_optical_frame"))


def test_truncated_bag_is_a_clear_error(tmp_path):
    bag = write_bag(tmp_path / "bag", n=3)
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"cannot open bag {bag} \(corrupt or not a rosbag2\): .+"):
        BagReader(bag)


def test_damaged_messages_are_a_clear_error(tmp_path):
    bag = write_bag(tmp_path / "bag", n=3)
    mcap = next(bag.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    data[200:4000] = b"\xff" * 3800  # the data records, not the index at the end
    mcap.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"corrupt bag {bag}: .*message"):
        list(BagReader(bag))


def test_not_a_bag_and_missing_path(tmp_path):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not a bag at all" * 20)
    with pytest.raises(ValueError, match=f"cannot open bag {junk}"):
        BagReader(junk)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BagReader(tmp_path / "nothing")
