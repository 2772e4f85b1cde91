"""Hostile input over DDS: each case goes to a running node (its own process) and the node
must stay up, ~/ask must still answer, the memory must be unchanged unless the input was
valid, every refused input must be counted on /diagnostics, and nothing may be written
outside memory_dir. One node serves the module; the tests run in file order.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def h(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ros_hostile")
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
    })
    proc = NodeProcess(params)
    s = simulate_stream(seed=5, n_rooms=1, n_frames=30, rate_hz=10.0, width=80, height=60)
    frames = [f for f, _ in s.frames()]
    rclpy.init()
    node = rclpy.create_node("hostile_input_test")
    try:
        client = NodeClient(node, timeout=60.0)
        client.wait(90.0)
        pub = StreamPublisher(node, pose="pose", labels=True, qos=reliable_qos())
        pub.wait_for_subscribers(60.0, spin=lambda t: rclpy.spin_once(node, timeout_sec=t))
        yield Hostile(node, client, proc, memory_dir, outside, pub, frames)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        code = proc.stop()
        print(proc.log()[-5000:])
        assert code == 0


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
    t = time.monotonic()
    r = h.client.ask("How many chairs " * 7000 + "are in the room?")  # ~110 kB
    assert not r.success and "too long" in r.error
    assert time.monotonic() - t < 10.0
    assert h.count("question_too_long") >= 1
    h.assert_healthy()


def test_oversized_images_are_refused_from_the_header(h):
    before = h.frames_seen()
    n = h.count("image_too_large")
    msgs = h.pub.messages(h.frames[0], h.t)
    for name in ("depth", "color", "labels"):
        msgs[name].width, msgs[name].height = 8000, 8000  # header only: the data stays small
        msgs[name].step = 8000 * (2 if name != "color" else 3)
    for name in ("camera_info", "pose", "labels", "color", "depth"):
        h.pub.pubs[name].publish(msgs[name])
    h.t += 0.1
    h.wait_count("image_too_large", n + 1)
    assert h.frames_seen() == before
    h.assert_healthy()


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
