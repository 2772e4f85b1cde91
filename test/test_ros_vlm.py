"""The node with qa_backend vlm / hybrid on the tiny random Spatial-TTT (CPU).

- configure refuses a missing or absent vlm_checkpoint with the reason on /diagnostics;
- over DDS: the node as its own process, qa_backend vlm, fed simulator frames from this
  process: the colour frames reach the VLM as keyframes (/diagnostics) and ~/ask answers
  from it (no positions: the VLM never invents them);
- hybrid: a VSI-Bench question goes to the geometric memory (positions), a free-form one
  the parser refuses goes to the VLM.

The tiny model answers random text: what is checked is the path, not the quality.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a node process per mode: tens of seconds

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("transformers")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from spatial_ttt_ros.ros.node import SpatialTTTNode  # noqa: E402
from spatial_ttt_ros.ros.stream_io import (  # noqa: E402
    NodeClient,
    NodeProcess,
    StreamPublisher,
    isolate_ros_domain,
    write_params,
)
from spatial_ttt_ros.sim.stream import simulate_stream  # noqa: E402
from spatial_ttt_ros.vlm.tiny import make_tiny_checkpoint  # noqa: E402

N_FRAMES = 6
VSI = "How many chairs are in the room?"
FREE = "What is the mood of this room?"  # the geometric parser refuses it


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_vlm"))


@pytest.fixture(scope="module")
def frames():
    s = simulate_stream(3, 1, N_FRAMES, 10.0, 64, 48)
    return [f for f, _ in s.frames()]


def test_configure_refuses_a_missing_checkpoint(tmp_path):
    isolate_ros_domain()
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        for checkpoint, reason in (("", "vlm_checkpoint"), (str(tmp_path / "absent"), "no config.json")):
            node = SpatialTTTNode(context=context, parameter_overrides=[
                Parameter("qa_backend", value="vlm"), Parameter("vlm_checkpoint", value=checkpoint),
                Parameter("memory_dir", value=str(tmp_path / "m"))])
            try:
                assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
                status = node.diagnostics_status()
                assert status.level == DiagnosticStatus.ERROR and reason in status.message, status.message
                refused = node.set_parameters([Parameter("qa_backend", value="oracle")])[0]
                assert not refused.successful and "qa_backend" in refused.reason
            finally:
                node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


@pytest.fixture(scope="module", params=["vlm", "hybrid"])
def live(request, tiny_dir, frames, tmp_path_factory):
    mode = request.param
    tmp = tmp_path_factory.mktemp(f"ros_{mode}")
    isolate_ros_domain()
    params = write_params(tmp / "params.yaml", {
        "detector": "labels", "method": "object_map", "memory_dir": str(tmp / "memories"),
        "qos_reliability": "reliable", "qos_depth": 50, "queue_size": 50, "diagnostics_period_s": 0.5,
        "model_threads": 1, "qa_backend": mode, "vlm_checkpoint": str(tiny_dir),
        "vlm_keyframe_interval_s": 0.0, "vlm_max_new_tokens": 4,
    })
    proc = NodeProcess(params)
    rclpy.init()
    node = rclpy.create_node(f"vlm_{mode}_test")
    diagnostics: list[DiagnosticArray] = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    try:
        client = NodeClient(node)
        client.wait(60.0)
        pub = StreamPublisher(node, pose="pose", labels=True)
        pub.wait_for_subscribers(30.0, spin=lambda t: rclpy.spin_once(node, timeout_sec=t))
        # The intrinsics first, as a camera driver has them out before any image.
        pub.prime_camera_info(frames[0], spin=lambda t: rclpy.spin_once(node, timeout_sec=t))
        for frame in frames:
            pub.publish(frame)
            rclpy.spin_once(node, timeout_sec=0.05)
            time.sleep(0.1)
        seen = client.wait_frames(len(frames), timeout=60.0)
        assert seen == len(frames), f"node holds {seen} of {len(frames)} frames\n{proc.log()[-3000:]}"
        yield {"mode": mode, "node": node, "client": client, "proc": proc, "diagnostics": diagnostics}
    finally:
        node.destroy_node()
        rclpy.shutdown()
        code = proc.stop()
        print(proc.log()[-3000:])
        assert code == 0, f"node exited with {code} on SIGINT"


def qa_status(live, timeout: float = 20.0) -> str:
    """The node's qa_backend line on /diagnostics once the VLM holds every frame."""
    line = ""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rclpy.spin_once(live["node"], timeout_sec=0.1)
        for arr in live["diagnostics"][-3:]:
            for st in arr.status:
                line = next((kv.value for kv in st.values if kv.key == "qa_backend"), line)
        if f"{N_FRAMES} keyframes" in line:
            break
    return line


def test_frames_reach_the_vlm_and_it_answers(live):
    assert qa_status(live).startswith(f"{live['mode']} (VLM: {N_FRAMES} keyframes")
    r = live["client"].ask(FREE)
    assert r.success, r.error
    assert r.answer.task_type == "free_form" and not r.answer.positions and r.answer.question == FREE
    assert 0.0 <= r.answer.confidence <= 1.0


def test_vsi_question_routing(live):
    r = live["client"].ask(VSI)
    assert r.success, r.error
    assert r.answer.task_type == "object_counting"
    if live["mode"] == "vlm":  # the VLM: its number (if any) and no positions
        assert not r.answer.positions
    else:  # hybrid: the geometric memory, with the chairs' positions and a whole count
        assert r.answer.unit == "count" and r.answer.value == len(r.answer.positions)
        assert r.answer.text.startswith(("There ", "I have not seen"))  # the solver's sentence
