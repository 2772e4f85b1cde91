"""Bags: read back with rosbags, byte-for-byte reproducible; CLI errors; RGB-D folder conversion."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from spatial_ttt_ros import topics
from spatial_ttt_ros.cli import main
from spatial_ttt_ros.poses import quaternion_to_matrix
from spatial_ttt_ros.sim import cli as sim_cli
from spatial_ttt_ros.sim.bag_writer import BAG_EPOCH_NS
from spatial_ttt_ros.sim.stream import simulate_stream

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
SEED, ROOMS, FRAMES, RATE, W, H = 6, 2, 60, 8.0, 64, 48


def _run_sim(out: Path, seed=SEED, storage="mcap", extra=()) -> Path:
    parser = argparse.ArgumentParser()
    sim_cli.configure_parser(parser)
    args = parser.parse_args(["--seed", str(seed), "--rooms", str(ROOMS), "--frames", str(FRAMES), "--rate", str(RATE),
                              "--size", f"{W}x{H}", "--out", str(out), "--storage", storage, *extra])
    assert sim_cli.run(args) == 0
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _read(bag: Path) -> dict[str, list]:
    msgs: dict[str, list] = {}
    with AnyReader([bag], default_typestore=TYPESTORE) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        for conn, t, raw in reader.messages():
            msgs.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    msgs["_types"] = types
    return msgs


@pytest.fixture(scope="module")
def sim_out(tmp_path_factory) -> Path:
    return _run_sim(tmp_path_factory.mktemp("a") / "out")


def _pose_matrix(position, orientation) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(orientation.x, orientation.y, orientation.z, orientation.w)
    T[:3, 3] = [position.x, position.y, position.z]
    return T


def test_bag_reads_back_with_types_counts_and_content(sim_out):
    msgs = _read(sim_out / "bag")
    assert msgs["_types"] == {
        topics.COLOR: "sensor_msgs/msg/Image", topics.DEPTH: "sensor_msgs/msg/Image",
        topics.CAMERA_INFO: "sensor_msgs/msg/CameraInfo", topics.POSE: "geometry_msgs/msg/PoseStamped",
        topics.ODOM: "nav_msgs/msg/Odometry", topics.TF: "tf2_msgs/msg/TFMessage",
        topics.LABELS: "sensor_msgs/msg/Image", topics.GT_INSTANCES: "sensor_msgs/msg/Image",
    }
    for topic in msgs["_types"]:
        assert len(msgs[topic]) == FRAMES, topic
    # stamps: a steady rate from the fixed epoch, header == log time
    stamps = [t for t, _ in msgs[topics.COLOR]]
    assert stamps[0] == BAG_EPOCH_NS and np.allclose(np.diff(stamps), 1e9 / RATE, atol=1)
    for t, m in msgs[topics.DEPTH]:
        assert m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == t
    # the bag's images equal a fresh render of the same stream
    stream = simulate_stream(SEED, ROOMS, FRAMES, RATE, W, H)
    scene = json.loads((sim_out / "scene.json").read_text())
    ids = {o["instance_id"]: o["class_id"] for o in scene["objects"]}
    for i in (0, FRAMES // 2, FRAMES - 1):
        frame, instances = stream.render(i)
        rgb = msgs[topics.COLOR][i][1]
        assert (rgb.encoding, rgb.width, rgb.height, rgb.step) == ("rgb8", W, H, 3 * W)
        assert np.array_equal(rgb.data.reshape(H, W, 3), frame.rgb)
        depth = msgs[topics.DEPTH][i][1]
        assert depth.encoding == "16UC1" and depth.step == 2 * W
        mm = depth.data.view(np.uint16).reshape(H, W)
        assert np.abs(mm / 1000.0 - frame.depth).max() <= 0.0005 + 1e-6
        labels = msgs[topics.LABELS][i][1].data.view(np.uint16).reshape(H, W)
        inst = msgs[topics.GT_INSTANCES][i][1].data.view(np.uint16).reshape(H, W)
        assert np.array_equal(labels, frame.labels) and np.array_equal(inst, instances)
        for iid in np.unique(inst[inst > 0]):  # instance -> class consistent with scene.json
            assert set(np.unique(labels[inst == iid])) == {ids[int(iid)]}
        info = msgs[topics.CAMERA_INFO][i][1]
        assert np.allclose(np.array(info.k).reshape(3, 3), frame.K) and (info.width, info.height) == (W, H)
        # pose, odometry and the tf chain map -> base_link -> optical all give the camera pose
        pose = msgs[topics.POSE][i][1]
        assert pose.header.frame_id == topics.WORLD_FRAME
        assert np.allclose(_pose_matrix(pose.pose.position, pose.pose.orientation), frame.T_world_cam, atol=1e-9)
        odom = msgs[topics.ODOM][i][1]
        assert odom.child_frame_id == topics.CAMERA_FRAME
        assert np.allclose(_pose_matrix(odom.pose.pose.position, odom.pose.pose.orientation), frame.T_world_cam, atol=1e-9)
        tf = msgs[topics.TF][i][1].transforms
        assert [(x.header.frame_id, x.child_frame_id) for x in tf] == [
            (topics.WORLD_FRAME, topics.BASE_FRAME), (topics.BASE_FRAME, topics.CAMERA_FRAME)]
        chain = _pose_matrix(tf[0].transform.translation, tf[0].transform.rotation) @ _pose_matrix(
            tf[1].transform.translation, tf[1].transform.rotation)
        assert np.allclose(chain, frame.T_world_cam, atol=1e-9)
        assert tf[0].transform.translation.z == 0.0  # base_link on the floor


def test_scene_json_has_ground_truth(sim_out):
    scene = json.loads((sim_out / "scene.json").read_text())
    assert len(scene["rooms"]) == ROOMS and all(r["area_m2"] > 9 and len(r["polygon"]) == 4 for r in scene["rooms"])
    for o in scene["objects"]:
        assert {"label", "center", "size", "yaw", "first_seen_frame", "first_seen"} <= set(o)
        if o["first_seen_frame"] is not None:
            assert o["first_seen"] == pytest.approx(o["first_seen_frame"] / RATE)
    assert any(o["first_seen"] is not None for o in scene["objects"])


def test_same_seed_same_bytes_different_seed_differs(sim_out, tmp_path):
    again = _files(_run_sim(tmp_path / "again"))
    first = _files(sim_out)
    assert set(first) == {"bag/bag.mcap", "bag/metadata.yaml", "qa.json", "scene.json"}
    assert again == first
    other = _files(_run_sim(tmp_path / "other", seed=SEED + 1))
    for name in first:
        if name != "bag/metadata.yaml":  # same topics and stamps
            assert other[name] != first[name], name


def test_sqlite3_storage_is_reproducible_too(tmp_path):
    a = _files(_run_sim(tmp_path / "a", storage="sqlite3"))
    b = _files(_run_sim(tmp_path / "b", storage="sqlite3"))
    assert "bag/bag.db3" in a and a == b
    assert len(_read(tmp_path / "a" / "bag")[topics.COLOR]) == FRAMES


def test_force_replaces_outputs(sim_out, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    _run_sim(out, extra=("--force",))
    assert (out / "notes.txt").read_text() == "keep me"
    _run_sim(out, extra=("--force",))  # a second time over its own outputs
    assert _files(out)["qa.json"] == _files(sim_out)["qa.json"]


@pytest.mark.parametrize("argv, message", [
    (["--rooms", "0"], "--rooms must be at least 1"),
    (["--frames", "-5"], "--frames must be at least 1"),
    (["--frames", "0"], "--frames must be at least 1"),
    (["--size", "16x12"], "too small"),
    (["--size", "big"], "WIDTHxHEIGHT"),
    (["--rate", "0"], "--rate must be a positive"),
])
def test_bad_arguments_give_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert main(["sim", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and err.startswith("spatial-ttt sim: error:")
    assert not (tmp_path / "x").exists()


def test_existing_output_folder_needs_force(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert main(["sim", "--frames", "5", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "--force" in err and err.count("\n") == 0
    assert list((tmp_path / "x").iterdir()) == []


def test_convert_hololens_folder(hololens_dir, tmp_path):
    out = tmp_path / "holo"
    argv = ["convert", "--rgbd", str(hololens_dir), "--out", str(out), "--rate", "5", "--max-frames", "20"]
    assert main(argv) == 0
    msgs = _read(out)
    assert topics.LABELS not in msgs["_types"] and topics.GT_INSTANCES not in msgs["_types"]
    for topic in (topics.COLOR, topics.DEPTH, topics.CAMERA_INFO, topics.POSE, topics.ODOM, topics.TF):
        assert len(msgs[topic]) == 20, topic
    stamps = [t for t, _ in msgs[topics.COLOR]]
    assert np.allclose(np.diff(stamps), 2e8)
    names = sorted((hololens_dir / "rgb").iterdir())
    rgb = msgs[topics.COLOR][3][1]
    assert rgb.encoding == "rgb8"
    bgr = cv2.imread(str(names[3]))
    assert np.array_equal(rgb.data.reshape(rgb.height, rgb.width, 3), bgr[..., ::-1])
    depth_png = cv2.imread(str(sorted((hololens_dir / "depth").iterdir())[3]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(msgs[topics.DEPTH][3][1].data.view(np.uint16).reshape(depth_png.shape), depth_png)
    K = np.loadtxt(hololens_dir / "K.txt")
    assert np.allclose(np.array(msgs[topics.CAMERA_INFO][0][1].k).reshape(3, 3), K)
    raw = np.loadtxt(hololens_dir / "poses.txt")[:20].reshape(-1, 4, 4)
    for i in range(20):
        p = msgs[topics.POSE][i][1].pose
        T = _pose_matrix(p.position, p.orientation)
        # world +y up became +z up: heights and the camera's 'down' axis agree
        assert T[2, 3] == pytest.approx(raw[i, 1, 3], abs=1e-9)
        assert T[:3, 1] @ np.array([0, 0, 1.0]) == pytest.approx(raw[i, :3, 1] @ np.array([0, 1.0, 0]), abs=1e-4)  # poses.txt has 6 digits
        assert T[:3, 1][2] < -0.5  # a walking person holds the camera upright: image down is world down
        assert np.allclose(T[:3, :3].T @ T[:3, :3], np.eye(3), atol=1e-5)
    # no overwrite without --force
    assert main(argv) == 2
    assert main(argv + ["--force"]) == 0


def test_convert_rejects_a_folder_without_the_layout(tmp_path, capsys):
    (tmp_path / "rgb").mkdir()
    assert main(["convert", "--rgbd", str(tmp_path), "--out", str(tmp_path / "bag")]) == 2
    assert "depth is missing" in capsys.readouterr().err
