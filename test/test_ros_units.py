"""The node's pure parts without DDS traffic: conversions, synchroniser, worker queue,
memory paths, parameter table vs config file, launch file, lifecycle transitions."""

from __future__ import annotations

import ast
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.exceptions import InvalidParameterValueException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import HistoryPolicy, ReliabilityPolicy, qos_profile_parameters, qos_profile_services_default  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from spatial_ttt_ros import topics  # noqa: E402
from spatial_ttt_ros.classes import CLASS_TO_ID  # noqa: E402
from spatial_ttt_ros.answer import Answer, UsedPosition  # noqa: E402
from spatial_ttt_ros.inventory import Inventory, InventoryObject, Room  # noqa: E402
from spatial_ttt_ros.ros import conversions as conv  # noqa: E402
from spatial_ttt_ros.ros.frame_sync import ApproximateTimeSync  # noqa: E402
from spatial_ttt_ros.ros.memory_files import MemoryPathError, resolve_memory_path  # noqa: E402
from spatial_ttt_ros.ros.node import SERVICE_QUEUE_DEPTH, SpatialTTTNode, label_id_table  # noqa: E402
from spatial_ttt_ros.ros.params import PARAMETERS, descriptor, markdown_table  # noqa: E402
from spatial_ttt_ros.ros.stream_io import isolate_ros_domain  # noqa: E402
from spatial_ttt_ros.ros.worker import FrameWorker  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- images


def test_image_rows_with_padding_and_big_endian_depth():
    depth_mm = np.array([[1000, 2500, 0], [65535, 1, 300]], dtype=np.uint16)
    msg = Image(height=2, width=3, encoding="16UC1", is_bigendian=1, step=8)  # 2 padding bytes a row
    rows = [depth_mm[r].astype(">u2").tobytes() + b"\xff\xff" for r in range(2)]
    msg.data = b"".join(rows)
    np.testing.assert_array_equal(conv.image_to_array(msg), depth_mm)
    metres = conv.depth_to_metres(msg)
    assert metres.dtype == np.float32 and metres[0, 1] == pytest.approx(2.5)
    assert math.isnan(metres[0, 2])  # 0 = no reading, NaN by the one rule of spatial_ttt_ros.images


def test_colour_encodings_give_rgb():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(conv.color_to_rgb(conv.array_to_image(rgb, "rgb8")), rgb)
    np.testing.assert_array_equal(conv.color_to_rgb(conv.array_to_image(rgb[:, :, ::-1], "bgr8")), rgb)
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(conv.color_to_rgb(conv.array_to_image(rgba, "rgba8")), rgb)
    mono = rgb[:, :, 0]
    out = conv.color_to_rgb(conv.array_to_image(mono, "mono8"))
    assert out.shape == (4, 5, 3) and (out[:, :, 1] == mono).all()


def test_float_depth_keeps_nan_and_bad_images_are_refused():
    d = np.array([[1.5, np.nan], [0.0, 3.25]], dtype=np.float32)
    out = conv.depth_to_metres(conv.array_to_image(d, "32FC1"))
    assert math.isnan(out[0, 1]) and out[1, 1] == 3.25
    with pytest.raises(conv.UnsupportedEncoding, match="yuv422"):
        conv.color_to_rgb(Image(height=1, width=1, encoding="yuv422", step=2, data=b"\x00\x00"))
    with pytest.raises(conv.UnsupportedEncoding, match="16UC1"):
        conv.depth_to_metres(conv.array_to_image(np.zeros((2, 2), np.uint8), "mono8"))
    short = conv.array_to_image(np.zeros((4, 4), np.uint16), "16UC1")
    short.data = bytes(10)
    with pytest.raises(ValueError, match="expected 32"):
        conv.image_to_array(short)


def test_compressed_round_trip_and_garbage():
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, :12] = (200, 30, 10)  # red left half: catches a BGR/RGB swap
    for fmt in ("jpeg", "png"):
        out = conv.compressed_to_rgb(conv.rgb_to_compressed(rgb, 1.0, "cam", fmt))
        assert out.shape == rgb.shape and out[8, 4, 0] > 150 and out[8, 4, 2] < 60
    with pytest.raises(conv.UnsupportedEncoding):
        conv.compressed_to_rgb(CompressedImage(format="jpeg", data=b"not an image"))


def test_label_ids_follow_the_class_names_parameter():
    table = label_id_table(["couch", "chair", "unknown thing"])
    assert table.tolist() == [0, CLASS_TO_ID["sofa"], CLASS_TO_ID["chair"], 0]


# ----------------------------------------------------------------------------- poses and messages


def test_pose_conversions_round_trip_and_interpolate():
    rng = np.random.default_rng(1)
    for _ in range(20):
        q = rng.normal(size=4)
        T = np.eye(4)
        T[:3, :3] = conv.quaternion_to_matrix(*q)
        T[:3, 3] = rng.normal(size=3)
        np.testing.assert_allclose(conv.pose_to_matrix(conv.matrix_to_pose(T)), T, atol=1e-9)
    T0, T1 = np.eye(4), np.eye(4)
    T1[:3, :3] = conv.quaternion_to_matrix(0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4))  # 90 deg about z
    T1[:3, 3] = (2, 0, 0)
    mid = conv.interpolate_pose(T0, T1, 0.5)
    np.testing.assert_allclose(mid[:3, 3], (1, 0, 0))
    assert math.degrees(math.atan2(mid[1, 0], mid[0, 0])) == pytest.approx(45.0)
    with pytest.raises(ValueError):
        conv.quaternion_to_matrix(0, 0, 0, 0)


def _inventory() -> Inventory:
    return Inventory(
        objects=[
            InventoryObject("chair", np.array([1.0, 2.0, 0.4]), np.array([0.5, 0.5, 0.9]), 1.5, 0.9),
            InventoryObject("potted plant", np.array([3.0, 0.0, 0.3]), np.array([0.4, 0.4, 0.6]), 2.0, 0.8, yaw=0.3),
        ],
        room=Room(20.0, np.array([0.0, -1.0]), np.array([5.0, 3.0]), polygons=[np.array([[0, -1], [5, -1], [5, 3], [0, 3]])]),
        stamp=12.5,
    )


def test_markers_and_description():
    inv = _inventory()
    ma = conv.inventory_to_markers(inv, 12.5, "map")
    assert ma.markers[0].action == Marker.DELETEALL
    cubes = [m for m in ma.markers if m.type == Marker.CUBE]
    texts = [m for m in ma.markers if m.type == Marker.TEXT_VIEW_FACING]
    lines = [m for m in ma.markers if m.type == Marker.LINE_STRIP]
    assert [t.text for t in texts] == ["chair", "potted plant"]
    assert cubes[0].pose.position.x == 1.0 and cubes[0].scale.z == pytest.approx(0.9)
    assert cubes[1].pose.orientation.z == pytest.approx(math.sin(0.15))
    assert len(lines) == 1 and len(lines[0].points) == 5  # closed outline
    assert len({(m.ns, m.id) for m in ma.markers}) == len(ma.markers)  # no marker overwrites another
    d = conv.inventory_to_description(inv, "two things", 7, inv.stamp, "map")
    assert d.frames_seen == 7 and d.room.area_m2 == 20.0 and d.objects[1].label == "potted plant"
    assert conv.stamp_to_sec(d.header.stamp) == pytest.approx(12.5)


def test_answer_message():
    a = Answer("object_abs_distance", "About 1.2 m.", value=1.2, unit="m", confidence=1.3,
               positions=[UsedPosition("chair", np.array([1.0, 2.0, 0.5]))])
    msg = conv.answer_to_msg(a, "how far", 3.0, "map")
    assert msg.value == 1.2 and msg.confidence == 1.0 and msg.position_labels == ["chair"]
    assert msg.positions[0].point.y == 2.0 and msg.positions[0].header.frame_id == "map"
    choice = conv.answer_to_msg(Answer("route_planning", "B", option="B", choice="turn left"), "q", 0.0, "map")
    assert math.isnan(choice.value) and choice.option == "B"


# ----------------------------------------------------------------------------- synchroniser


def _sync(**kw) -> ApproximateTimeSync:
    return ApproximateTimeSync("depth", ["color", "pose"], tolerance=0.02, buffer_size=8,
                               interpolators={"pose": lambda a, b, alpha: a + alpha * (b - a)}, **kw)


def test_sync_pairs_within_tolerance_in_order():
    s = _sync()
    out = []
    for t in (0.0, 0.1, 0.2):
        out += s.add("color", t - 0.005, f"c{t}").sets
        out += s.add("pose", t, 10 * t).sets
        out += s.add("depth", t, f"d{t}").sets
    # Each pair waits until colour passes its stamp (a closer colour might still come),
    # so the last one goes out only when the next colour arrives.
    assert [x.stamp for x in out] == [0.0, 0.1]
    assert out[1].items == {"depth": "d0.1", "color": "c0.1", "pose": 1.0}
    assert out[1].offsets["color"] == pytest.approx(-0.005)
    assert [x.stamp for x in s.add("color", 0.3, "c").sets] == [0.2]


def test_sync_interpolates_the_pose_between_neighbours():
    s = _sync()
    s.add("pose", 0.99, 0.0)
    s.add("color", 1.0, "c")
    assert s.add("depth", 1.0, "d").sets == []  # waits for a pose after it
    sets = s.add("pose", 1.01, 2.0).sets
    assert len(sets) == 1 and sets[0].items["pose"] == pytest.approx(1.0)


def test_sync_bridges_a_lost_pose_up_to_max_gap():
    for max_gap, expected in ((0.5, [1.0]), (0.3, [])):
        s = ApproximateTimeSync("depth", ["pose"], tolerance=0.02, buffer_size=8, max_gap={"pose": max_gap},
                                interpolators={"pose": lambda a, b, alpha: a + alpha * (b - a)})
        s.add("pose", 0.8, 0.0)
        s.add("depth", 1.0, "d")  # its own pose (at 1.0) was lost
        r = s.add("pose", 1.2, 4.0)
        assert [x.stamp for x in r.sets] == expected
        if expected:
            assert r.sets[0].items["pose"] == pytest.approx(2.0)
        else:
            assert r.dropped and r.dropped[0].missing == ["pose"]


def test_sync_drops_a_frame_whose_partner_never_comes():
    s = _sync()
    s.add("color", 1.0, "c1")
    s.add("depth", 1.0, "d1")
    r = s.add("pose", 1.5, 5.0)  # the pose stream moved past 1.0 without one near it
    assert [(d.stamp, d.missing, d.overflow) for d in r.dropped] == [(1.0, ["pose"], False)]
    for i in range(9):  # nothing at all on colour: the anchor buffer overflows
        r = s.add("depth", 2.0 + i, "d")
    assert r.dropped and r.dropped[0].overflow and "color" in r.dropped[0].missing


def test_sync_time_jump_clears_the_buffers():
    s = _sync(jump_threshold=1.0)
    for t in (100.0, 100.1):
        s.add("color", t, "c")
        s.add("pose", t, 0.0)
        s.add("depth", t, "d")
    s.add("depth", 100.2, "waiting")
    r = s.add("color", 1.0, "c")  # a bag restarting
    assert r.time_jump and r.discarded_on_jump == 1 and s.jumps == 1
    s.add("pose", 1.0, 0.0)
    assert [x.stamp for x in s.add("depth", 1.0, "d").sets] == [1.0]


# ----------------------------------------------------------------------------- worker


def test_worker_drops_oldest_and_survives_errors():
    seen, errors, resets = [], [], []
    gate = threading.Event()

    def process(item):
        gate.wait(5)
        if item.payload == "bad":
            raise ValueError("bad frame")
        seen.append(item.payload)

    w = FrameWorker(2, process, resets.append, lambda exc, item: errors.append(str(exc)))
    w.start()
    w.offer("first")  # taken by the worker, which then blocks on the gate
    time.sleep(0.1)
    assert w.offer("a") and w.offer("b")
    assert not w.offer("bad")  # queue full: "a" dropped
    assert w.dropped == 1 and w.depth() == 2
    gate.set()
    assert w.wait_idle(5)
    assert seen == ["first", "b"] and errors == ["bad frame"]
    w.new_generation()
    w.offer("c")
    assert w.wait_idle(5)
    assert resets == [1] and seen[-1] == "c"
    w.stop()


# ----------------------------------------------------------------------------- memory paths


def test_memory_paths_stay_inside_the_directory(tmp_path):
    root = tmp_path / "mem"
    root.mkdir()
    (root / "a.state").write_text("x")
    assert resolve_memory_path(root, "a.state", must_exist=True) == (root / "a.state").resolve()
    assert resolve_memory_path(root, str(root / "sub" / "b.state"), must_exist=False).parent.name == "sub"
    outside = tmp_path / "secret"
    outside.write_text("x")
    (root / "link").symlink_to(outside)
    (root / "dirlink").symlink_to(tmp_path)
    for bad in ("../secret", str(outside), "link", "dirlink/secret", "sub/../../secret", ".", ""):
        with pytest.raises(MemoryPathError):
            resolve_memory_path(root, bad, must_exist=False)
    (root / "a.state.pipeline.json").symlink_to(outside)  # a companion file that escapes
    with pytest.raises(MemoryPathError, match="links outside"):
        resolve_memory_path(root, "a.state", must_exist=True)


# ----------------------------------------------------------------------------- parameters, config, launch


def test_config_file_lists_every_parameter_with_its_default():
    doc = yaml.safe_load((REPO / "config" / "spatial_ttt.yaml").read_text())
    params = doc["/**"]["ros__parameters"]
    assert list(params) == [p.name for p in PARAMETERS]
    for spec in PARAMETERS:
        value = params[spec.name]
        assert type(value) is type(spec.default), spec.name  # ROS refuses an int for a double
        assert value == spec.default, spec.name
    text = (REPO / "config" / "spatial_ttt.yaml").read_text()
    lines = text.splitlines()
    for spec in PARAMETERS:  # every parameter has a comment on its line or the next (wrapped values)
        i = next(i for i, ln in enumerate(lines) if ln.strip().startswith(spec.name + ":"))
        assert any("#" in ln for ln in lines[i : i + 3]), spec.name


def test_descriptors_have_descriptions_and_ranges():
    for spec in PARAMETERS:
        d = descriptor(spec)
        assert len(d.description) > 15, spec.name
        if isinstance(spec.default, float):
            assert d.floating_point_range, spec.name
            assert d.floating_point_range[0].from_value <= spec.default <= d.floating_point_range[0].to_value
        elif isinstance(spec.default, int) and not isinstance(spec.default, bool):
            assert d.integer_range, spec.name
    table = markdown_table()
    assert all(f"`{p.name}`" in table for p in PARAMETERS)


def test_launch_file_compiles_and_names_the_node():
    path = REPO / "launch" / "spatial_ttt.launch.py"
    source = path.read_text()
    tree = ast.parse(source)
    compile(tree, str(path), "exec")
    consts = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"spatial_ttt_ros", "spatial_ttt_node", "params_file", "namespace", "use_sim_time"} <= consts
    assert "spatial_ttt.yaml" in source and "get_package_share_directory" in source
    installed = (REPO / "CMakeLists.txt").read_text()
    assert "spatial_ttt_node DESTINATION lib/${PROJECT_NAME}" in installed
    assert "install(DIRECTORY launch config DESTINATION share/${PROJECT_NAME})" in installed
    # Every input topic of topics.py can be remapped from a launch argument (relative names).
    for topic in (topics.COLOR, topics.COLOR_COMPRESSED, topics.DEPTH, topics.CAMERA_INFO, topics.LABELS,
                  topics.POSE, topics.ODOM):
        assert topic.lstrip("/") in consts, topic


# ----------------------------------------------------------------------------- lifecycle (no traffic)


@pytest.fixture
def ros_context():
    isolate_ros_domain()
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


def test_lifecycle_transitions(ros_context, tmp_path):
    import torch

    threads = torch.get_num_threads()
    node = SpatialTTTNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("method", value="object_map"),
            Parameter("memory_dir", value=str(tmp_path / "m")),
            Parameter("model_threads", value=1),
        ],
    )
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert torch.get_num_threads() == 1  # model_threads applied at configure
        torch.set_num_threads(threads)
        assert (tmp_path / "m").is_dir()
        names = {n for n, _ in node.get_service_names_and_types_by_node("spatial_ttt", "/")}
        assert {"/spatial_ttt/ask", "/spatial_ttt/query", "/spatial_ttt/describe", "/spatial_ttt/reset",
                "/spatial_ttt/save_memory", "/spatial_ttt/load_memory"} <= names
        # The node's services queue 100 requests (node_service_qos); rclpy's own keep theirs.
        ours = {s.srv_name: s.qos_profile for s in node._node_services}
        assert set(ours) == {"~/ask", "~/query", "~/describe", "~/reset", "~/save_memory", "~/load_memory"}
        assert SERVICE_QUEUE_DEPTH == 100
        for q in ours.values():
            assert (q.history, q.depth, q.reliability) == (HistoryPolicy.KEEP_LAST, 100, ReliabilityPolicy.RELIABLE)
        others = [s for s in node.services if s not in node._node_services]
        assert len(others) >= 10  # parameter, lifecycle and type-description services
        for s in others:
            default = qos_profile_parameters if "parameter" in s.srv_name else qos_profile_services_default
            assert s.qos_profile == default, (s.srv_name, s.qos_profile)
        refused = node.set_parameters([Parameter("queue_size", value=20)])[0]
        assert not refused.successful and "read at configure" in refused.reason
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        subs = {n for n, _ in node.get_subscriber_names_and_types_by_node("spatial_ttt", "/")}
        assert {topics.COLOR, topics.DEPTH, topics.CAMERA_INFO, topics.LABELS, topics.POSE, topics.ODOM} <= subs
        assert node._worker is not None and node._worker._thread.is_alive()
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node._worker is None
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.pipeline is None
        assert node.set_parameters([Parameter("queue_size", value=20)])[0].successful  # unconfigured: allowed
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.params.queue_size == 20
    finally:
        node.destroy_node()


def test_service_calls_and_unsent_answers_are_counted(ros_context, tmp_path):
    """The node's books of its service calls on /diagnostics: every request a handler takes is
    answered (errors and refusals included), and an answer the middleware would not send
    (rclpy's "failed to send response" warning) is counted, not lost silently."""
    import torch

    from spatial_ttt_ros.srv import Ask, Describe

    threads = torch.get_num_threads()
    node = SpatialTTTNode(context=ros_context, parameter_overrides=[
        Parameter("method", value="object_map"), Parameter("memory_dir", value=str(tmp_path / "m")),
        Parameter("model_threads", value=1)])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        torch.set_num_threads(threads)
        srv = {s.srv_name.rsplit("/", 1)[-1]: s for s in node._node_services}
        assert srv["describe"].callback(Describe.Request(), Describe.Response()).success  # inactive: still describes
        assert not srv["ask"].callback(Ask.Request(question="How many chairs?"), Ask.Response()).success  # refused
        assert node._on_python_warning("failed to send response (timeout): client will not receive response",
                                       RuntimeWarning)
        assert not node._on_python_warning("something else", RuntimeWarning)
        values = {kv.key: kv.value for kv in node.diagnostics_status().values}
        assert values["service calls received"] == values["service calls answered"] == "2"
        assert values["service calls by service (received/answered)"] == "ask 1/1, describe 1/1"
        assert values["service answers not sent"] == "1"
        assert node.stats.problems_snapshot().get("answer_not_sent") == 1
    finally:
        node.destroy_node()


def test_bad_parameters_fail_configure_with_a_reason(ros_context, tmp_path):
    node = SpatialTTTNode(
        context=ros_context,
        parameter_overrides=[Parameter("detector", value="onnx"), Parameter("memory_dir", value=str(tmp_path))],
    )
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "model_path" in node.configure_error
        status = node.diagnostics_status()
        assert status.level == DiagnosticStatus.ERROR and "model_path" in status.message
    finally:
        node.destroy_node()
    with pytest.raises(InvalidParameterValueException):  # out of the declared range: refused at declaration
        SpatialTTTNode(context=ros_context, parameter_overrides=[Parameter("queue_size", value=0)])


def test_installed_executable_exits_with_the_reason_on_bad_parameters(tmp_path):
    """`ros2 run spatial_ttt_ros spatial_ttt_node` (lib/) with a broken parameter: exit 1, one clear line."""
    import os
    import subprocess
    import sys

    exe = Path(sys.executable).parents[1] / "lib" / "spatial_ttt_ros" / "spatial_ttt_node"
    if not exe.is_file():
        pytest.skip(f"{exe} not installed (make setup installs it)")
    env = dict(os.environ)
    isolate_ros_domain()
    env.update(ROS_DOMAIN_ID=os.environ["ROS_DOMAIN_ID"], ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    r = subprocess.run(
        [str(exe), "--ros-args", "--params-file", str(REPO / "config" / "spatial_ttt.yaml"),
         "-p", "detector:=onnx", "-p", f"memory_dir:={tmp_path}"],
        cwd="/", env=env, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "model_path is empty" in r.stdout + r.stderr


def test_namespace_and_name_move_the_services(ros_context, tmp_path):
    """What the launch file's namespace/node_name arguments do: ~/ names follow the node."""
    node = SpatialTTTNode(
        "memory", namespace="robot1", context=ros_context,
        parameter_overrides=[Parameter("method", value="object_map"), Parameter("memory_dir", value=str(tmp_path))],
    )
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        names = {n for n, _ in node.get_service_names_and_types_by_node("memory", "/robot1")}
        assert {"/robot1/memory/ask", "/robot1/memory/load_memory"} <= names
        pubs = {n for n, _ in node.get_publisher_names_and_types_by_node("memory", "/robot1")}
        assert {"/robot1/memory/scene_description", "/robot1/memory/answers", "/robot1/memory/markers",
                "/diagnostics"} <= pubs
    finally:
        node.destroy_node()


def test_readme_parameter_table_is_the_code_table():
    """The README's table is ``markdown_table()`` verbatim (regenerate it when a parameter changes)."""
    readme = (REPO / "README.md").read_text()
    missing = [row for row in markdown_table().splitlines() if row not in readme]
    assert not missing, "README parameter table is stale; rows not found:\n" + "\n".join(missing)
