"""Bad input over DDS: each case is logged, counted on /diagnostics, and the node stays up
(its ~/describe still answers afterwards).

One node process serves the module. The first test must see the node before any
camera_info was published, so the tests run in file order (pytest's default).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402

from spatial_ttt_ros.ros.stream_io import (  # noqa: E402
    NodeClient,
    NodeProcess,
    StreamPublisher,
    isolate_ros_domain,
    reliable_qos,
    write_params,
)
from spatial_ttt_ros.sim.stream import simulate_stream  # noqa: E402

_stamps = itertools.count(100)  # each test gets fresh, later stamps (seconds)


@pytest.fixture(scope="module")
def frames():
    s = simulate_stream(seed=11, n_rooms=1, n_frames=24, rate_hz=10.0, width=80, height=60)
    return [f for f, _ in s.frames()]


class Harness:
    def __init__(self, node, client, proc, memory_dir: Path, pub_mm: StreamPublisher, pub_m: StreamPublisher):
        self.node, self.client, self.proc, self.memory_dir = node, client, proc, memory_dir
        self.pub_mm, self.pub_m = pub_mm, pub_m  # depth as 16UC1 millimetres / 32FC1 metres
        self.diagnostics: list[DiagnosticArray] = []
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.02)

    def stamps(self, n: int, rate: float = 10.0) -> list[float]:
        # Each call continues the stream's time line (0.5 s after the last call's frames): a
        # jump far ahead would be held until 3 frames agree on it (a wild stamp must not count).
        base = getattr(self, "_next_stamp", 1000.0)
        self._next_stamp = base + n / rate + 0.5
        return [base + i / rate for i in range(n)]

    def send(self, frames, stamps, pub=None, skip=(), edit=None) -> None:
        pub = pub or self.pub_mm
        for frame, t in zip(frames, stamps):
            msgs = pub.messages(frame, t)
            if edit is not None:
                edit(msgs)
            for name in ("camera_info", "pose", "labels", "color", "depth"):
                if name in msgs and name not in skip:
                    pub.pubs[name].publish(msgs[name])
            self.spin(0.03)

    def values(self) -> dict[str, str]:
        if not self.diagnostics:
            return {}
        return {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values}

    def problem_count(self, kind: str) -> int:
        return int(self.values().get(f"problem {kind}", 0))

    def wait_problem(self, kind: str, at_least: int = 1, timeout: float = 10.0) -> dict[str, str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.problem_count(kind) >= at_least:
                return self.values()
            self.spin(0.1)
        raise AssertionError(f"diagnostics never counted {kind} (last: {self.values()})\n{self.proc.log()[-3000:]}")

    def assert_alive(self) -> None:
        assert self.proc.alive(), self.proc.log()[-3000:]
        assert self.client.describe().success

    def processed(self) -> int:
        return int(self.values().get("frames processed", 0))


@pytest.fixture(scope="module")
def h(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ros_bad")
    isolate_ros_domain()
    memory_dir = tmp / "memories"
    params = write_params(
        tmp / "params.yaml",
        {
            "detector": "labels",
            "method": "object_map",  # bad-input handling is the node's, not the model's: keep it light
            "memory_dir": str(memory_dir),
            "qos_reliability": "reliable",
            "queue_size": 100,
            "diagnostics_period_s": 0.2,
            "description_period_s": 0.0,
            "log_throttle_s": 0.0,  # log every occurrence: the test reads the log
            "on_time_jump": "reset",
        },
    )
    proc = NodeProcess(params)
    rclpy.init()
    node = rclpy.create_node("bad_input_test")
    try:
        client = NodeClient(node)
        client.wait(30.0)
        pub_mm = StreamPublisher(node, pose="pose", labels=True, depth_encoding="16UC1", qos=reliable_qos())
        pub_m = StreamPublisher(node, pose="pose", labels=True, depth_encoding="32FC1", qos=reliable_qos())
        pub_mm.wait_for_subscribers(20.0, spin=lambda t: rclpy.spin_once(node, timeout_sec=t))
        yield Harness(node, client, proc, memory_dir, pub_mm, pub_m)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        code = proc.stop()
        print(proc.log()[-5000:])
        assert code == 0


def test_no_camera_info_yet(h, frames):
    h.send(frames[:3], h.stamps(3), skip=("camera_info",))
    h.wait_problem("no_camera_info", 3)
    assert "no camera_info received yet" in h.proc.log()
    assert h.client.frames_seen() == 0
    h.assert_alive()


def test_good_frames_are_processed(h, frames):
    h.send(frames[:6], h.stamps(6))
    assert h.client.wait_frames(6, timeout=15.0) == 6
    h.assert_alive()


def test_unsupported_encoding(h, frames):
    def yuv(msgs):
        msgs["color"].encoding = "yuv422"

    def depth_8u(msgs):
        msgs["depth"].encoding = "8UC3"

    before = h.client.frames_seen()
    h.send(frames[:2], h.stamps(2), edit=yuv)
    h.send(frames[:2], h.stamps(2), edit=depth_8u)
    values = h.wait_problem("unsupported_encoding", 4)
    assert "yuv422" in h.proc.log() and "8UC3" in h.proc.log()
    assert "unsupported_encoding" in values["last error"]
    assert h.client.frames_seen() == before  # nothing written
    h.assert_alive()


def test_depth_and_colour_of_different_sizes(h, frames):
    def half_depth(msgs):
        d = msgs["depth"]
        arr = np.frombuffer(d.data, dtype="<u2").reshape(d.height, d.width)[::2, ::2]
        d.height, d.width = arr.shape
        d.step = arr.shape[1] * 2
        d.data = arr.tobytes()

    h.send(frames[:2], h.stamps(2), edit=half_depth)
    h.wait_problem("size_mismatch", 2)
    assert "colour is 80x60 but depth is 40x30" in h.proc.log()
    h.assert_alive()


def test_nan_and_zero_depth_are_ignored_pixels(h, frames):
    before = h.client.frames_seen()
    holey = []
    for f in frames[6:10]:
        g = type(f)(stamp=f.stamp, depth=f.depth.copy(), K=f.K, T_world_cam=f.T_world_cam, rgb=f.rgb, labels=f.labels)
        g.depth[:, : g.depth.shape[1] // 3] = np.nan
        g.depth[:, -g.depth.shape[1] // 3 :] = 0.0
        holey.append(g)
    h.send(holey, h.stamps(4), pub=h.pub_m)  # 32FC1: NaN survives the wire
    all_nan = type(frames[0])(stamp=0.0, depth=np.full_like(frames[0].depth, np.nan), K=frames[0].K,
                              T_world_cam=frames[0].T_world_cam, rgb=frames[0].rgb, labels=frames[0].labels)
    h.send([all_nan], h.stamps(1), pub=h.pub_m)
    assert h.client.wait_frames(before + 5, timeout=15.0) == before + 5  # processed, not refused
    h.spin(0.5)
    assert float(h.values()["invalid depth fraction"]) > 0.05
    h.assert_alive()


def test_no_pose_for_a_frame(h, frames):
    # One pose message missing at 10 Hz: the pose is interpolated from its neighbours.
    before = h.client.frames_seen()
    stamps = h.stamps(5)
    h.send(frames[10:12], stamps[:2])
    h.send(frames[12:13], stamps[2:3], skip=("pose",))
    h.send(frames[13:15], stamps[3:5])
    assert h.client.wait_frames(before + 5, timeout=15.0) == before + 5
    assert h.problem_count("no_pose") == 0
    # At 1 Hz the neighbours are 2 s apart (> pose_max_gap_s): that frame has no pose.
    stamps = h.stamps(3, rate=1.0)
    h.send(frames[15:16], stamps[:1])
    h.send(frames[16:17], stamps[1:2], skip=("pose",))  # this frame never gets a pose ...
    h.send(frames[17:18], stamps[2:3])  # ... and the next pose proves it never will
    h.wait_problem("no_pose", 1)
    assert "no pose message within 0.05 s" in h.proc.log()
    assert h.client.wait_frames(before + 7, timeout=10.0) == before + 7
    h.assert_alive()


def test_stamps_going_backwards_reset_the_memory(h, frames):
    before = h.client.frames_seen()
    assert before > 0
    late = h.stamps(3)
    h.send(frames[15:18], late)
    seen = h.client.wait_frames(before + 3, timeout=10.0)  # all three in the memory before the step back
    # A small step back: that frame is dropped as out of order, the memory kept.
    dropped = h.problem_count("out_of_order") + h.problem_count("no_labels")
    h.send(frames[18:19], [late[-1] - 0.05])
    # Dropped by the stamp order (out_of_order) or, when its partners were already pruned
    # behind the last set, by the synchroniser (no_labels): either way counted, memory kept.
    end = time.monotonic() + 10.0
    while time.monotonic() < end and h.problem_count("out_of_order") + h.problem_count("no_labels") <= dropped:
        h.spin(0.1)
    assert h.problem_count("out_of_order") + h.problem_count("no_labels") > dropped, h.values()
    assert h.client.frames_seen() == seen
    # The bag restarts from its beginning: once 3 frames agree on the new time line (the first
    # two are held: one wild stamp must not reset the memory), the memory starts a new stream.
    h.send(frames[:6], [1.0 + i / 10 for i in range(6)])
    h.wait_problem("time_jump", 1)
    assert h.client.wait_frames(4, timeout=10.0) >= 4
    h.spin(0.5)
    assert h.client.frames_seen() == 4  # only the new stream's frames, from the third on
    assert "memory reset" in h.proc.log() and "input buffers cleared" in h.proc.log()
    h.assert_alive()


def test_questions_that_cannot_be_answered(h):
    unknown = h.client.ask("How many unicorns are in this room?")
    assert not unknown.success and "unicorn" in unknown.error
    empty = h.client.ask("   ")
    assert not empty.success and "empty question" in empty.error
    bad_task = h.client.query("object_juggling", ["chair"])
    assert not bad_task.success and bad_task.error
    h.wait_problem("question_error", 3)
    ok = h.client.ask("How many chairs are in this room?")
    assert ok.success, ok.error
    h.assert_alive()


def test_load_memory_refuses_paths_outside_and_corrupt_files(h, tmp_path):
    client = h.client
    saved = client.call("save_memory", path="good.state")
    assert saved.success, saved.message
    frames_before = client.frames_seen()
    answer_before = client.ask("How many chairs are in this room?").answer.value

    outside = tmp_path / "outside.state"
    outside.write_text("{}")
    (h.memory_dir / "link.state").symlink_to(outside)
    refusals = {
        "../outside.state": "outside memory_dir",
        "/etc/passwd": "outside memory_dir",
        str(outside): "outside memory_dir",
        "link.state": "outside memory_dir",
        "missing.state": "no saved memory",
        "": "empty path",
    }
    # A corrupt state beside valid metadata, and a foreign file (valid metadata, another memory).
    good = Path(saved.message)
    (h.memory_dir / "corrupt.state").write_bytes(os.urandom(300))
    (h.memory_dir / "corrupt.state.pipeline.json").write_text(good.with_name(good.name + ".pipeline.json").read_text())
    meta = json.loads(good.with_name(good.name + ".pipeline.json").read_text())
    meta["memory"] = "some_other_memory"
    (h.memory_dir / "foreign.state").write_bytes(good.read_bytes())
    (h.memory_dir / "foreign.state.pipeline.json").write_text(json.dumps(meta))
    refusals["corrupt.state"] = "refused corrupt.state"
    refusals["foreign.state"] = "some_other_memory"

    for path, why in refusals.items():
        r = client.call("load_memory", path=path)
        assert not r.success, path
        assert why in r.message, (path, r.message)
        assert client.frames_seen() == frames_before, f"memory changed by refused load of {path!r}"
    assert client.ask("How many chairs are in this room?").answer.value == answer_before
    h.wait_problem("load_refused", len(refusals))

    escaped = client.call("save_memory", path="../escape.state")
    assert not escaped.success and "outside memory_dir" in escaped.message
    assert not (h.memory_dir.parent / "escape.state").exists()
    h.assert_alive()
