"""Drive a running node from another process: publish camera frames as its topics,
call its services, start and stop it. Used by the node tests and ``bench node``.

``StreamPublisher`` turns core ``CameraFrame``s into the messages a robot's camera
driver would publish (colour, depth, camera_info, labels, pose or odometry).
``NodeProcess`` starts the node as its own process with ``--ros-args
--params-file`` and collects its log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from spatial_ttt_ros import topics
from spatial_ttt_ros.frames import CameraFrame
from spatial_ttt_ros.ros import conversions as conv

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "config" / "spatial_ttt.yaml"


def reliable_qos(depth: int = 50) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def service_qos() -> QoSProfile:
    """What the clients of the node's services use: reliable, KEEP_ALL for the replies.

    Every answer a service sends goes to every client of that service, and each client's
    middleware throws away the answers meant for others (rclcpp issue 2397), so one client's
    reply reader carries the answers of all the planners calling the node. With ROS's default
    service QoS (KEEP_LAST 10) on the clients, eight clients calling the node as fast as it
    answered while frames streamed at 60 Hz lost 32 of 30,529 calls (about 1 in 950, in
    bursts across clients, never a client's first call): a trace of both sides showed the
    node had taken each of those requests and written its answer within milliseconds, with
    no error or warning, and the client's middleware never delivered it. KEEP_ALL on the
    node's side alone did not help (12 of those 32); KEEP_ALL (0 of 9,967) or KEEP_LAST 100
    (0 of 9,741) on the clients did. Call the node with
    ``create_client(..., qos_profile=service_qos())``.
    """
    return QoSProfile(
        history=HistoryPolicy.KEEP_ALL,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


class StreamPublisher:
    """Publishes frames on the node's input topics from a test or benchmark node."""

    def __init__(
        self,
        node,
        pose: str = "pose",  # "pose" | "odom" | "none"
        labels: bool = True,
        compressed: bool = False,
        depth_encoding: str = "16UC1",
        color_encoding: str = "rgb8",
        qos: QoSProfile | None = None,
    ) -> None:
        self.node = node
        self.pose, self.labels, self.compressed = pose, labels, compressed
        self.depth_encoding, self.color_encoding = depth_encoding, color_encoding
        qos = qos or reliable_qos()
        self.pubs: dict[str, Any] = {
            "color": node.create_publisher(CompressedImage, topics.COLOR_COMPRESSED, qos)
            if compressed
            else node.create_publisher(Image, topics.COLOR, qos),
            "depth": node.create_publisher(Image, topics.DEPTH, qos),
            "camera_info": node.create_publisher(CameraInfo, topics.CAMERA_INFO, qos),
        }
        if labels:
            self.pubs["labels"] = node.create_publisher(Image, topics.LABELS, qos)
        if pose == "pose":
            self.pubs["pose"] = node.create_publisher(PoseStamped, topics.POSE, qos)
        elif pose == "odom":
            self.pubs["pose"] = node.create_publisher(Odometry, topics.ODOM, qos)

    def wait_for_subscribers(self, timeout: float = 20.0, spin=None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in self.pubs.values()):
                return
            if spin is not None:
                spin(0.05)
            else:
                time.sleep(0.05)
        missing = [name for name, p in self.pubs.items() if p.get_subscription_count() == 0]
        raise TimeoutError(f"no subscriber on {missing} after {timeout} s")

    def prime_camera_info(self, frame: CameraFrame, spin, seconds: float = 1.0) -> None:
        """Publish ``frame``'s camera_info every 0.1 s for ``seconds``, before any image, as a camera
        driver keeps it coming. The node's camera_info reader may match this publisher a moment
        after its depth reader (separate DDS readers; ``wait_for_subscribers`` sees only this side's
        matches), and a depth that overtakes every camera_info is dropped as ``no_camera_info``.
        ``spin(t)`` spins the publishing node for t seconds."""
        msg = self.messages(frame)["camera_info"]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pubs["camera_info"].publish(msg)
            spin(0.1)

    def messages(self, frame: CameraFrame, stamp: float | None = None) -> dict[str, Any]:
        """The messages of one frame (stamp defaults to the frame's)."""
        t = conv.sec_to_stamp(frame.stamp if stamp is None else stamp)
        cam = topics.CAMERA_FRAME
        h, w = frame.depth.shape
        out: dict[str, Any] = {}
        rgb = frame.rgb if frame.rgb is not None else np.zeros((h, w, 3), np.uint8)
        if self.compressed:
            out["color"] = conv.rgb_to_compressed(rgb, t, cam)
        elif self.color_encoding == "bgr8":
            out["color"] = conv.array_to_image(rgb[:, :, ::-1], "bgr8", t, cam)
        elif self.color_encoding == "mono8":
            out["color"] = conv.array_to_image(rgb.mean(axis=2).astype(np.uint8), "mono8", t, cam)
        else:
            out["color"] = conv.array_to_image(rgb, self.color_encoding, t, cam)
        if self.depth_encoding.upper() == "16UC1":
            d = np.nan_to_num(frame.depth, nan=0.0, posinf=0.0, neginf=0.0)
            mm = np.clip(np.round(d * 1000.0), 0, 65535).astype(np.uint16)
            out["depth"] = conv.array_to_image(mm, "16UC1", t, cam)
        else:
            out["depth"] = conv.array_to_image(frame.depth.astype(np.float32), "32FC1", t, cam)
        out["camera_info"] = conv.K_to_camera_info(frame.K, w, h, t, cam)
        if self.labels and frame.labels is not None:
            out["labels"] = conv.array_to_image(frame.labels.astype(np.uint16), "16UC1", t, cam)
        if self.pose == "pose":
            msg = PoseStamped()
            msg.header = conv.make_header(t, topics.WORLD_FRAME)
            msg.pose = conv.matrix_to_pose(frame.T_world_cam)
            out["pose"] = msg
        elif self.pose == "odom":
            msg = Odometry()
            msg.header = conv.make_header(t, topics.WORLD_FRAME)
            msg.child_frame_id = cam
            msg.pose.pose = conv.matrix_to_pose(frame.T_world_cam)
            out["pose"] = msg
        return out

    def publish(self, frame: CameraFrame, stamp: float | None = None, skip: tuple[str, ...] = ()) -> None:
        # Pose and camera_info first, the depth (the node's anchor) last, as drivers often do.
        msgs = self.messages(frame, stamp)
        for name in ("camera_info", "pose", "labels", "color", "depth"):
            if name in msgs and name in self.pubs and name not in skip:
                self.pubs[name].publish(msgs[name])


def write_params(path: Path, overrides: dict, base: Path = DEFAULT_CONFIG) -> Path:
    """A copy of config/spatial_ttt.yaml with ``overrides`` applied (what tests and the bench start the node with)."""
    doc = yaml.safe_load(base.read_text())
    doc["/**"]["ros__parameters"].update(overrides)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def node_command() -> list[str]:
    """How users start the node: the ``spatial-ttt node`` console script when it is installed
    beside this Python and its installed package has the node, else ``python -m``."""
    script = Path(sys.executable).parent / "spatial-ttt"
    installed = subprocess.run(
        [sys.executable, "-c", "import spatial_ttt_ros.ros.node, spatial_ttt_ros.pipeline"],
        cwd="/", capture_output=True,
    )  # from "/" so the import finds the installed copy, not this source tree
    if script.is_file() and installed.returncode == 0:
        return [str(script), "node"]
    return [sys.executable, "-m", "spatial_ttt_ros.ros.node"]


class LoopingPublisher:
    """Publishes a fixed set of frames over and over with increasing stamps (benchmarks, soak).

    Messages are built once; publishing only restamps them, so the publisher stays cheap.
    Stamps advance 10 ms a frame: they only need to increase, the memory does not read rates.
    """

    def __init__(self, pub: "StreamPublisher", frames: list) -> None:
        self.pub = pub
        self.messages = [pub.messages(f, 0.0) for f in frames]
        self.stamp = 100.0
        self.i = 0

    def publish_one(self) -> None:
        from spatial_ttt_ros.ros.conversions import sec_to_stamp

        msgs = self.messages[self.i % len(self.messages)]
        t = sec_to_stamp(self.stamp)
        for name in ("camera_info", "pose", "labels", "color", "depth"):
            if name in msgs and name in self.pub.pubs:
                msgs[name].header.stamp = t
                self.pub.pubs[name].publish(msgs[name])
        self.stamp += 0.01
        self.i += 1


class NodeProcess:
    """The node as its own process: ``python -m spatial_ttt_ros.ros.node --ros-args --params-file``."""

    def __init__(self, params_file: Path, extra_ros_args: list[str] | None = None, env: dict | None = None,
                 command: list[str] | None = None) -> None:
        self.log_file = tempfile.NamedTemporaryFile(prefix="spatial_ttt_node_", suffix=".log", delete=False)
        cmd = command or [sys.executable, "-m", "spatial_ttt_ros.ros.node"]
        self.argv = [*cmd, "--ros-args", "--params-file", str(params_file), *(extra_ros_args or [])]
        self.proc = subprocess.Popen(
            self.argv,
            cwd=str(REPO),
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return Path(self.log_file.name).read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (what Ctrl-C sends), then SIGKILL if it does not stop; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def call_service(node, client, request, timeout: float = 20.0, executor=None, on_sent=None):
    """Call and wait (spinning ``node``); raises TimeoutError. ``on_sent()`` once the request is out."""
    import rclpy

    if not client.wait_for_service(timeout_sec=timeout):
        raise TimeoutError(f"service {client.srv_name} not available after {timeout} s")
    future = client.call_async(request)
    if on_sent is not None:
        on_sent()
    if executor is not None:
        executor.spin_until_future_complete(future, timeout_sec=timeout)
    else:
        rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done():
        raise TimeoutError(f"service {client.srv_name} did not answer within {timeout} s")
    return future.result()


def isolate_ros_domain() -> int:
    """A random ROS_DOMAIN_ID on localhost only, so parallel test runs do not hear each other.

    Call before ``rclpy.init``; the node processes started afterwards inherit it.
    """
    import random

    domain = random.SystemRandom().randint(1, 101)  # 0..101 are valid with the default port mapping
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return domain


class NodeClient:
    """Service clients of one node (``/<name>/ask`` etc.), called from ``node`` with ``service_qos()``.

    ``sent`` counts the requests sent per service (answered or not), to hold against the
    node's own count of requests received on /diagnostics."""

    def __init__(self, node, target: str = "/spatial_ttt", timeout: float = 30.0, executor=None) -> None:
        from collections import Counter

        from std_srvs.srv import Trigger

        from spatial_ttt_ros.srv import Ask, Describe, LoadMemory, Query, SaveMemory

        self.node, self.timeout, self.executor = node, timeout, executor  # executor: for calls from another thread
        self.types = {"ask": Ask, "query": Query, "describe": Describe, "reset": Trigger,
                      "save_memory": SaveMemory, "load_memory": LoadMemory}
        self.clients = {name: node.create_client(t, f"{target}/{name}", qos_profile=service_qos())
                        for name, t in self.types.items()}
        self.sent: Counter[str] = Counter()

    def wait(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.timeout)
        for name, client in self.clients.items():
            if not client.wait_for_service(timeout_sec=max(0.1, deadline - time.monotonic())):
                raise TimeoutError(f"service {client.srv_name} not available")

    def call(self, name: str, **fields):
        request = self.types[name].Request()
        for k, v in fields.items():
            setattr(request, k, v)
        return call_service(self.node, self.clients[name], request, self.timeout, self.executor,
                            on_sent=lambda: self.sent.update((name,)))

    def ask(self, question: str, options=None):
        return self.call("ask", question=question, options=list(options or []))

    def query(self, task_type: str, object_names=(), options=None):
        return self.call("query", task_type=task_type, object_names=list(object_names), options=list(options or []))

    def describe(self):
        return self.call("describe")

    def frames_seen(self) -> int:
        r = self.describe()
        return int(r.description.frames_seen) if r.success else -1

    def wait_frames(self, n: int, timeout: float = 60.0, spin=None) -> int:
        """Poll ~/describe until the memory holds ``n`` frames (or the count stops at less)."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            seen = self.frames_seen()
            if seen >= n:
                return seen
            time.sleep(0.2)
        return seen
