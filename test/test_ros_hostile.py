"""Hostile input over DDS: each case goes to a running node (its own process) and the node
must stay up, ~/ask must still answer, the memory must be unchanged unless the input was
valid, every refused input must be counted on /diagnostics, and nothing may be written
outside memory_dir. One node serves the module; the tests run in file order.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402

from spatial_ttt_ros.ros.input_limits import compressed_image_size  # noqa: E402
from spatial_ttt_ros.ros.stream_io import (  # noqa: E402
    NodeClient,
    NodeProcess,
    StreamPublisher,
    isolate_ros_domain,
    reliable_qos,
    write_params,
)
from spatial_ttt_ros.sim.stream import simulate_stream  # noqa: E402


class Hostile:
    def __init__(self, node, client, proc, memory_dir: Path, outside: Path, pub: StreamPublisher, frames):
        self.node, self.client, self.proc, self.pub, self.frames = node, client, proc, pub, frames
        self.memory_dir, self.outside = memory_dir, outside
        self.diagnostics: list[DiagnosticArray] = []
        self.t = 100.0  # stamps of the next good frame
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.02)

    def values(self) -> dict[str, str]:
        self.spin(0.6)  # a fresh message (period 0.2 s)
        return {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values} if self.diagnostics else {}

    def count(self, kind: str) -> int:
        return int(self.values().get(f"problem {kind}", 0))

    def wait_count(self, kind: str, at_least: int, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.count(kind) >= at_least:
                return
        raise AssertionError(f"/diagnostics never counted {kind} >= {at_least}: {self.values()}\n{self.proc.log()[-3000:]}")

    def frames_seen(self) -> int:
        return self.client.frames_seen()

    def send_good(self, n: int) -> None:
        for i in range(n):
            self.pub.publish(self.frames[i % len(self.frames)], stamp=self.t)
            self.t += 0.1
            self.spin(0.05)

    def wait_frames(self, n: int, timeout: float = 60.0) -> int:
        return self.client.wait_frames(n, timeout=timeout)

    def assert_healthy(self) -> None:
        assert self.proc.alive(), self.proc.log()[-3000:]
        r = self.client.ask("How many chairs are in the room?")
        assert r.success, r.error
        assert sorted(p.name for p in self.outside.iterdir()) == ["secret.txt"], list(self.outside.iterdir())
        assert (self.outside / "secret.txt").read_text() == "keep"


def start_hostile(tmp: Path, compressed: bool = False):
    """A node process with a hostile client beside it (a generator: yields a Hostile, then stops the node)."""
    isolate_ros_domain()
    memory_dir, outside = tmp / "memories", tmp / "outside"
    memory_dir.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("keep")
    (memory_dir / "orphan.tmp").write_text("left by a crash")  # removed at configure
    params = write_params(tmp / "params.yaml", {
        "detector": "labels", "method": "object_map", "memory_dir": str(memory_dir),
        "qos_reliability": "reliable", "queue_size": 100, "diagnostics_period_s": 0.2,
        "description_period_s": 0.0, "log_throttle_s": 0.0, "max_image_pixels": 1_000_000,
        "use_compressed": compressed,
    })
    proc = NodeProcess(params)
    s = simulate_stream(seed=5, n_rooms=1, n_frames=30, rate_hz=10.0, width=80, height=60)
    frames = [f for f, _ in s.frames()]
    rclpy.init()
    node = rclpy.create_node("hostile_input_test")
    try:
        client = NodeClient(node, timeout=60.0)
        client.wait(90.0)
        pub = StreamPublisher(node, pose="pose", labels=True, compressed=compressed, qos=reliable_qos())
        pub.wait_for_subscribers(60.0, spin=lambda t: rclpy.spin_once(node, timeout_sec=t))
        yield Hostile(node, client, proc, memory_dir, outside, pub, frames)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        code = proc.stop()
        print(proc.log()[-5000:])
        assert code == 0


@pytest.fixture(scope="module")
def h(tmp_path_factory):
    yield from start_hostile(tmp_path_factory.mktemp("ros_hostile"))


def test_orphan_temp_files_are_removed_at_start_and_good_frames_count(h):
    assert not (h.memory_dir / "orphan.tmp").exists()
    h.send_good(12)
    assert h.wait_frames(12) >= 12
    h.assert_healthy()


def test_load_requests_the_file_system_cannot_hold_are_refused(h):
    os.symlink("loop_b", h.memory_dir / "loop_a")
    os.symlink("loop_a", h.memory_dir / "loop_b")
    before = h.frames_seen()
    refused = h.count("load_refused")
    for path in ("~nosuchuser/x", "a" * 300, "loop_a", "d/" * 600 + "x"):
        r = h.client.call("load_memory", path=path)
        assert not r.success and r.message, path
    h.wait_count("load_refused", refused + 4)
    assert h.frames_seen() == before
    h.assert_healthy()


def test_save_never_writes_through_symlinks_named_like_companion_files(h):
    for name in ("victim.tmp", "victim.pipeline.json.tmp", "victim.json", "victim.pipeline.json"):
        os.symlink(h.outside / "secret.txt", h.memory_dir / name)
    r = h.client.call("save_memory", path="victim")
    assert r.success, r.message
    assert (h.memory_dir / "victim").is_file() and not (h.memory_dir / "victim").is_symlink()
    assert not (h.memory_dir / "victim.pipeline.json").is_symlink()  # replaced by the real file
    assert not any(p.name.startswith(".spatial_ttt_save_") for p in h.memory_dir.iterdir())
    h.assert_healthy()


def _crafted(h, name: str, edit) -> None:
    """A copy of the valid save 'good' with its pipeline metadata edited."""
    for suffix in ("", ".pipeline.json", ".json"):
        src = h.memory_dir / f"good{suffix}"
        if src.is_file():
            shutil.copy(src, h.memory_dir / f"{name}{suffix}")
    meta_path = h.memory_dir / f"{name}.pipeline.json"
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta_path.write_text(json.dumps(meta))


def test_crafted_memory_files_are_refused_and_the_memory_kept(h):
    assert h.client.call("save_memory", path="good").success
    before = h.frames_seen()
    refused = h.count("load_refused")

    def frames_huge(m):
        m["frames"] = 1e30

    def stamp_far(m):
        m["last_stamp"] = 1e12

    def stamp_nan(m):
        m["last_stamp"] = float("nan")

    def config_other(m):
        m["front_end"]["max_objects"] = 200_000_000

    cases = {"c_frames": frames_huge, "c_stamp": stamp_far, "c_nan": stamp_nan, "c_config": config_other}
    for name, edit in cases.items():
        _crafted(h, name, edit)
        r = h.client.call("load_memory", path=name)
        assert not r.success and "memory unchanged" in r.message, (name, r.message)
    # A memory file that is not the running memory's kind at all (a ttt-like safetensors header).
    header = json.dumps({"__metadata__": {"n_layers": "200000000"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
    blob = len(header).to_bytes(8, "little") + header.encode() + b"\0" * 8
    (h.memory_dir / "c_tensor").write_bytes(blob)
    shutil.copy(h.memory_dir / "good.pipeline.json", h.memory_dir / "c_tensor.pipeline.json")
    assert not h.client.call("load_memory", path="c_tensor").success
    h.wait_count("load_refused", refused + len(cases) + 1)
    assert h.frames_seen() == before
    d = h.client.describe()
    assert d.success and d.description.frames_seen == before
    assert h.client.call("load_memory", path="good").success  # the real one still loads
    h.assert_healthy()


def test_a_single_wild_stamp_neither_resets_nor_blocks_the_memory(h):
    h.send_good(3)
    before = h.wait_frames(h.frames_seen() + 3)
    held = h.count("time_outlier")
    bad = h.count("bad_stamp")
    for wild in (h.t - 5.0, h.t + 1e6, 2.0**31 - 1):
        h.pub.publish(h.frames[0], stamp=wild)
        h.spin(0.2)
        h.send_good(2)
    h.pub.publish(h.frames[0], stamp=-5.0)  # before the epoch: refused outright
    h.spin(0.2)
    h.send_good(2)
    after = h.wait_frames(before + 8)
    assert after >= before + 8, (before, after, h.values())  # not reset to a handful
    h.wait_count("time_outlier", held + 3)
    h.wait_count("bad_stamp", bad + 1)
    h.assert_healthy()


def test_a_long_question_is_refused_at_once_without_stalling_frames(h):
    # ~98 kB of "chair and the ": the shape the question parser is super-linear on (29 s
    # at 0458483, holding the pipeline lock); refused on its length before any parsing.
    t = time.monotonic()
    r = h.client.ask("What is the distance between the " + "chair and the " * 7000 + "table?")
    assert not r.success and "too long" in r.error, r.error[:300]
    assert time.monotonic() - t < 10.0
    assert h.count("question_too_long") >= 1
    h.assert_healthy()


def test_oversized_images_are_refused_from_the_header(h):
    before = h.frames_seen()
    n = h.count("image_too_large")
    # A consistent frame (images, camera_info and data agree) over max_image_pixels: refused,
    # not processed (0458483 processed a consistent 8000 x 8000 frame: 2.65 GB peak).
    refuse_big_frame(h, n, before)
    # Headers that say 8000 x 8000 over small data: refused from the header alone.
    msgs = h.pub.messages(h.frames[0], h.t)
    for name in ("depth", "color", "labels"):
        msgs[name].width, msgs[name].height = 8000, 8000  # header only: the data stays small
        msgs[name].step = 8000 * (2 if name != "color" else 3)
    for name in ("camera_info", "pose", "labels", "color", "depth"):
        h.pub.pubs[name].publish(msgs[name])
    h.t += 0.1
    h.wait_count("image_too_large", n + 2)
    assert h.frames_seen() == before
    h.assert_healthy()


def big_frame(frame, k: int = 15):
    """The frame scaled k times in both directions (80 x 60 -> 1200 x 900: 1.08 MP), consistently."""
    up = lambda a: None if a is None else np.repeat(np.repeat(a, k, axis=0), k, axis=1)  # noqa: E731
    K = np.array(frame.K, dtype=float).copy()
    K[:2, :] *= k
    return dataclasses.replace(frame, rgb=up(frame.rgb), depth=up(frame.depth), labels=up(frame.labels), K=K)


def refuse_big_frame(h, counted_before: int, frames_before: int) -> None:
    msgs = h.pub.messages(big_frame(h.frames[0]), h.t)
    for name in ("camera_info", "pose", "labels", "color", "depth"):
        h.pub.pubs[name].publish(msgs[name])
    h.t += 0.1
    end = time.monotonic() + 30.0
    while time.monotonic() < end and h.count("image_too_large") <= counted_before and h.frames_seen() == frames_before:
        pass
    assert h.frames_seen() == frames_before, f"the 1200 x 900 frame was processed: {h.values()}"
    h.wait_count("image_too_large", counted_before + 1)


def test_compressed_image_size_is_read_from_png_and_jpeg_headers():
    import cv2

    img = np.zeros((30, 50, 3), np.uint8)
    assert compressed_image_size(cv2.imencode(".png", img)[1].tobytes()) == (50, 30)
    assert compressed_image_size(cv2.imencode(".jpg", img)[1].tobytes()) == (50, 30)
    forged = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + (20000).to_bytes(4, "big") * 2 + b"\x08\x02\0\0\0"
    assert compressed_image_size(forged) == (20000, 20000)
    assert compressed_image_size(b"not an image") is None


def test_a_forged_log_line_in_an_encoding_is_cut_and_escaped(h):
    n = h.count("unsupported_encoding")
    msgs = h.pub.messages(h.frames[0], h.t)
    msgs["depth"].encoding = "x" * 50 + "\n[FATAL] [0.0] [spatial_ttt]: forged\n" + "y" * 100_000
    for name in ("camera_info", "pose", "labels", "color", "depth"):
        h.pub.pubs[name].publish(msgs[name])
    h.t += 0.1
    h.wait_count("unsupported_encoding", n + 1)
    last = h.values()["last error"]
    assert len(last) < 1000 and "\n" not in last
    assert "\n[FATAL]" not in h.proc.log()
    h.assert_healthy()


def test_lifecycle_transitions_while_frames_stream(h):
    """deactivate, cleanup, configure, activate (twice) while frames keep arriving: at 0458483
    a frame between cleanup and configure raised AttributeError (no worker) into the executor."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    client = h.node.create_client(ChangeState, "/spatial_ttt/change_state")
    assert client.wait_for_service(timeout_sec=30.0)

    def change(transition: int) -> None:
        future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
        end = time.monotonic() + 30.0
        while not future.done() and time.monotonic() < end:
            h.send_good(1)  # frames keep coming while the node changes state
        assert future.done() and future.result().success, f"transition {transition}: {h.values()}"
        h.send_good(3)

    for _ in range(2):
        for t in (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_CLEANUP,
                  Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            change(t)
    h.send_good(5)
    assert h.wait_frames(5) >= 5
    assert "AttributeError" not in h.proc.log() and "Traceback" not in h.proc.log(), h.proc.log()[-3000:]
    h.assert_healthy()


def lone_node(tmp: Path, params: dict, env: dict | None = None) -> NodeProcess:
    """A node of its own (another name, another ROS domain than the module's), once active."""
    import random

    domain = str(random.SystemRandom().randint(1, 101))
    proc = NodeProcess(write_params(tmp / "params.yaml", {"detector": "labels", "method": "object_map", **params}),
                       extra_ros_args=["-r", "__node:=lone_test"], env={"ROS_DOMAIN_ID": domain, **(env or {})})
    end = time.monotonic() + 120.0
    while time.monotonic() < end and proc.alive() and "]: active" not in proc.log():
        time.sleep(0.2)
    assert "]: active" in proc.log(), proc.log()[-3000:]
    return proc


def test_memory_dir_defaults_under_ros_home(tmp_path):
    proc = lone_node(tmp_path, {}, env={"ROS_HOME": str(tmp_path / "ros_home")})
    try:
        assert f"memory_dir {tmp_path / 'ros_home' / 'spatial_ttt'}" in proc.log(), proc.log()[-3000:]
    finally:
        assert proc.stop() == 0


def test_ctrl_c_pressed_again_and_again_ends_the_node_with_exit_0(tmp_path):
    """SIGINT after SIGINT (a terminal's Ctrl-C held down; launch forwarding its own SIGINT on
    top of the process group's): at 0458483 a later one landed in main()'s cleanup as a
    KeyboardInterrupt traceback (exit -2 under launch, 6 of 8 runs); ros2 launch's single
    SIGINT in test_ros_cli does not hit that window every time, a burst does."""
    import signal

    proc = lone_node(tmp_path, {"memory_dir": str(tmp_path / "m")})
    for _ in range(20):
        if not proc.alive():
            break
        proc.proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
    code = proc.proc.wait(60)
    log = proc.log()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]
