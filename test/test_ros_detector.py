"""The real YOLOX-Nano detector in the node, on a real RGB-D walk through an office.

35 frames of ../shared/data/hololens_office go out as a camera driver would send
them: the original JPEGs as CompressedImage, depth as 16UC1 millimetres, camera_info
and the camera pose as nav_msgs/Odometry. The node must detect and remember the
office's furniture and answer about it without error.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")

from sensor_msgs.msg import CompressedImage  # noqa: E402

from spatial_ttt_ros.frames import CameraFrame  # noqa: E402
from spatial_ttt_ros.ros import conversions as conv  # noqa: E402
from spatial_ttt_ros.ros.stream_io import (  # noqa: E402
    NodeClient,
    NodeProcess,
    StreamPublisher,
    isolate_ros_domain,
    write_params,
)

# Every 3rd frame of the first part of the walk (frames 21..125): past the potted plants, along
# the long table with its chairs, to the sofa: 35 frames.
FRAMES = range(21, 126, 3)
RATE_HZ = 5.0
# The sequence's world has +y up; the node works in REP-103 (z up): rotate +90 deg about x.
Y_UP_TO_Z_UP = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def load_walk(root: Path, indices) -> list[tuple[CameraFrame, bytes]]:
    names = sorted(p.stem for p in (root / "rgb").glob("*.jpg"))
    poses = np.loadtxt(root / "poses.txt").reshape(-1, 4, 4)
    K = np.loadtxt(root / "K.txt")
    out = []
    for k, i in enumerate(indices):
        jpeg = (root / "rgb" / f"{names[i]}.jpg").read_bytes()
        depth_mm = cv2.imread(str(root / "depth" / f"{names[i]}.png"), cv2.IMREAD_UNCHANGED)
        frame = CameraFrame(
            stamp=50.0 + k / RATE_HZ,
            depth=depth_mm.astype(np.float32) / 1000.0,
            K=K,
            T_world_cam=Y_UP_TO_Z_UP @ poses[i],
        )
        out.append((frame, jpeg))
    return out


def test_yolox_node_remembers_the_office(yolox_model, hololens_dir, tmp_path):
    walk = load_walk(hololens_dir, FRAMES)
    isolate_ros_domain()
    params = write_params(
        tmp_path / "params.yaml",
        {
            "detector": "onnx",
            "model_path": str(yolox_model),
            "class_names_file": "",  # coco_classes.txt beside the model
            "providers": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
            "method": "object_map",  # the node's default memory
            "use_compressed": True,
            "pose_source": "odom",
            "memory_dir": str(tmp_path / "memories"),
            "qos_reliability": "reliable",
            "qos_depth": 100,
            "queue_size": 100,
            "diagnostics_period_s": 0.5,
        },
    )
    proc = NodeProcess(params)
    rclpy.init()
    node = rclpy.create_node("detector_test")
    try:
        client = NodeClient(node, timeout=30.0)
        client.wait(40.0)
        pub = StreamPublisher(node, pose="odom", labels=False, compressed=True, depth_encoding="16UC1")
        pub.wait_for_subscribers(20.0, spin=lambda t: rclpy.spin_once(node, timeout_sec=t))
        pub.prime_camera_info(walk[0][0], spin=lambda t: rclpy.spin_once(node, timeout_sec=t))
        t0 = time.monotonic()
        for i, (frame, jpeg) in enumerate(walk):
            msgs = pub.messages(frame)
            color = CompressedImage(header=msgs["depth"].header, format="bgr8; jpeg compressed bgr8")
            color.data = jpeg  # the file's own bytes, as a JPEG-streaming camera sends them
            msgs["color"] = color
            for name in ("camera_info", "pose", "color", "depth"):
                pub.pubs[name].publish(msgs[name])
            rclpy.spin_once(node, timeout_sec=0.0)
            time.sleep(max(0.0, t0 + (i + 1) / RATE_HZ - time.monotonic()))
        assert client.wait_frames(len(walk), timeout=60.0) == len(walk), proc.log()[-3000:]

        d = client.describe()
        assert d.success
        labels = {o.label for o in d.description.objects}
        print("remembered:", sorted(o.label for o in d.description.objects))
        print(d.description.text)
        assert {"chair", "table"} <= labels
        assert len(labels & {"chair", "table", "sofa", "potted plant"}) >= 3
        assert 10.0 < d.description.room.area_m2 < 400.0  # an office, not a cupboard or a city

        chairs = client.ask("How many chairs are in this room?")
        assert chairs.success, chairs.error
        assert chairs.answer.value >= 1 and chairs.answer.positions
        distance = client.query("object_abs_distance", ["chair", "table"])
        assert distance.success, distance.error
        assert 0.0 <= distance.answer.value < 20.0 and distance.answer.unit == "m"
        room = client.query("room_size_estimation")
        assert room.success and room.answer.value > 0
        # The detector ran on every frame and found things; nothing was dropped.
        values = {}
        end = time.monotonic() + 5
        from diagnostic_msgs.msg import DiagnosticArray

        got: list = []
        node.create_subscription(DiagnosticArray, "/diagnostics", got.append, 10)
        while not got and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        values = {kv.key: kv.value for kv in got[-1].status[0].values}
        assert int(values["detections"]) >= len(walk)
        assert int(values["dropped (queue full)"]) == 0
        assert "latency detect p50/p95/max [ms]" in values
        print("diagnostics:", values)
        assert conv.stamp_to_sec(d.description.header.stamp) == pytest.approx(walk[-1][0].stamp, abs=1e-6)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        code = proc.stop()
        print(proc.log()[-3000:])
    assert code == 0
