"""Every question type's ground truth against an independent computation from scene.json (and the bag's poses)."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from spatial_ttt_ros.sim import cli as sim_cli
from spatial_ttt_ros.sim.questions import (
    closest_box_distance,
    direction_easy,
    direction_hard,
    direction_medium,
    relative_angle,
    turn_between,
)
from spatial_ttt_ros.sim.scene import Box, SceneObject

TYPES = {
    "object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation",
    "object_rel_distance", "object_rel_direction_easy", "object_rel_direction_medium",
    "object_rel_direction_hard", "route_planning", "obj_appearance_order",
}


def _sim(out: Path, seed: int, rooms: int, frames: int, size: str = "80x60", storage: str = "mcap") -> Path:
    parser = argparse.ArgumentParser()
    sim_cli.configure_parser(parser)
    args = parser.parse_args(["--seed", str(seed), "--rooms", str(rooms), "--frames", str(frames), "--rate", "10",
                              "--size", size, "--out", str(out), "--storage", storage])
    assert sim_cli.run(args) == 0
    return out


@pytest.fixture(scope="module", params=[(0, 2, 400), (4, 3, 500)], ids=["2rooms", "3rooms"])
def generated(request, tmp_path_factory):
    seed, rooms, frames = request.param
    out = _sim(tmp_path_factory.mktemp(f"sim{seed}") / "out", seed, rooms, frames)
    scene = json.loads((out / "scene.json").read_text())
    qa = json.loads((out / "qa.json").read_text())
    return out, scene, qa


# ------------------------------------------------------------------ independent geometry


def _project_box(p, obj):
    """Closest point of the oriented box ``obj`` (dict from scene.json) to point ``p`` (3,)."""
    c, s = math.cos(obj["yaw"]), math.sin(obj["yaw"])
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    half = np.array(obj["size"]) / 2
    local = R.T @ (p - np.array(obj["center"]))
    return np.array(obj["center"]) + R @ np.clip(local, -half, half)


def _box_distance(a, b, iters=3000):
    """Alternating projections between two convex boxes converge to a closest pair (3D, iterative)."""
    pa = np.array(a["center"], dtype=float)
    pb = _project_box(pa, b)
    for _ in range(iters):
        pa_new = _project_box(pb, a)
        pb_new = _project_box(pa_new, b)
        if np.allclose(pa_new, pa, atol=1e-12) and np.allclose(pb_new, pb, atol=1e-12):
            break
        pa, pb = pa_new, pb_new
    return float(np.linalg.norm(pa - pb))


def _direction(p, o, q):
    """Position of q in the frame 'standing at p, facing o along +y': (x right, y forward)."""
    f = np.array(o["center"][:2]) - np.array(p["center"][:2])
    f /= np.linalg.norm(f)
    right = np.array([f[1], -f[0]])
    t = np.array(q["center"][:2]) - np.array(p["center"][:2])
    return float(t @ right), float(t @ f), float(np.degrees(np.arccos(np.clip(t @ f / np.linalg.norm(t), -1, 1))))


def _option_text(record):
    letter = record["ground_truth"]
    for opt in record["options"]:
        if opt.startswith(f"{letter}. "):
            return opt[3:]
    raise AssertionError(f"no option {letter} in {record['options']}")


def _unique(scene, label):
    objs = [o for o in scene["objects"] if o["label"] == label]
    assert len(objs) == 1, f"question about {label}, which has {len(objs)} instances"
    assert objs[0]["first_seen"] is not None, f"{label} was never seen"
    return objs[0]


# ------------------------------------------------------------------ tests


def test_records_are_well_formed(generated):
    _, scene, qa = generated
    assert {r["question_type"] for r in qa} == TYPES
    assert [r["id"] for r in qa] == [f"{scene['scene_name']}-{i:04d}" for i in range(len(qa))]
    for r in qa:
        assert set(r) == {"id", "scene_name", "question_type", "question", "options", "ground_truth"}
        if r["options"]:
            assert isinstance(r["ground_truth"], str) and re.fullmatch(r"[A-D]", r["ground_truth"])
            assert [o[:3] for o in r["options"]] == [f"{c}. " for c in "ABCD"[: len(r["options"])]]
            assert len(set(r["options"])) == len(r["options"])
        else:
            assert isinstance(r["ground_truth"], (int, float))


def test_counting(generated):
    _, scene, qa = generated
    for r in (r for r in qa if r["question_type"] == "object_counting"):
        label = re.fullmatch(r"How many (.+)\(s\) are in this room\?", r["question"]).group(1)
        instances = [o for o in scene["objects"] if o["label"] == label]
        assert all(o["first_seen"] is not None for o in instances)
        assert r["ground_truth"] == len(instances) >= 1


def test_abs_distance_and_size(generated):
    _, scene, qa = generated
    n = 0
    for r in qa:
        if r["question_type"] == "object_abs_distance":
            a, b = re.search(r"between the (.+) and the (.+) \(in meters\)", r["question"]).groups()
            expected = _box_distance(_unique(scene, a), _unique(scene, b))
            assert r["ground_truth"] == pytest.approx(expected, abs=0.006)
            n += 1
        elif r["question_type"] == "object_size_estimation":
            a = re.search(r"dimension \(length, width, or height\) of the (.+), measured", r["question"]).group(1)
            assert r["ground_truth"] == round(max(_unique(scene, a)["size"]) * 100)
            n += 1
    assert n >= 2


def test_room_size_from_bag_poses(generated):
    out, scene, qa = generated
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    positions = []
    with AnyReader([out / "bag"], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        conns = [c for c in reader.connections if c.topic == "/camera/pose"]
        for c, _, raw in reader.messages(connections=conns):
            p = reader.deserialize(raw, c.msgtype).pose.position
            positions.append((p.x, p.y))
    positions = np.array(positions)
    area = 0.0
    for room in scene["rooms"]:
        poly = np.array(room["polygon"])
        lo, hi = poly.min(0) - 0.06, poly.max(0) + 0.06  # the camera may stand in a doorway
        if np.any(np.all((positions >= lo) & (positions <= hi), axis=1)):
            x, y = poly[:, 0], poly[:, 1]
            area += 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    [r] = [r for r in qa if r["question_type"] == "room_size_estimation"]
    assert r["ground_truth"] == pytest.approx(area, abs=0.006)


def test_rel_distance(generated):
    _, scene, qa = generated
    records = [r for r in qa if r["question_type"] == "object_rel_distance"]
    assert records
    for r in records:
        target = _unique(scene, re.search(r"is the closest to the (.+)\?$", r["question"]).group(1))
        dists = {}
        for opt in r["options"]:
            label = opt[3:]
            seen = [o for o in scene["objects"] if o["label"] == label and o["first_seen"] is not None]
            dists[opt[0]] = min(_box_distance(target, o) for o in seen)
        assert min(dists, key=dists.get) == r["ground_truth"]


def test_rel_direction(generated):
    _, scene, qa = generated
    n = 0
    for r in qa:
        if not r["question_type"].startswith("object_rel_direction"):
            continue
        p, o, q = re.search(r"standing by the (.+) and facing the (.+), is the (.+?) to ", r["question"]).groups()
        x, y, angle = _direction(_unique(scene, p), _unique(scene, o), _unique(scene, q))
        level = r["question_type"].rsplit("_", 1)[1]
        if level == "easy":
            expected = "left" if x < 0 else "right"
        elif level == "medium":
            expected = "back" if angle >= 135 else ("left" if x < 0 else "right")
        else:
            expected = f"{'front' if y > 0 else 'back'}-{'left' if x < 0 else 'right'}"
        assert _option_text(r) == expected, r["question"]
        n += 1
    assert n >= 3


def test_route_planning(generated):
    _, scene, qa = generated
    records = [r for r in qa if r["question_type"] == "route_planning"]
    assert records
    for r in records:
        start = re.search(r"beginning at the (.+?) facing", r["question"]).group(1)
        waypoints = re.findall(r"Go forward until the (.+?)(?= \d+\.|\. You have)", r["question"])
        pts = [np.array(_unique(scene, name)["center"][:2]) for name in [start] + waypoints]
        turns = []
        for a, b, c in zip(pts, pts[1:], pts[2:]):
            d_in, d_out = (b - a) / np.linalg.norm(b - a), (c - b) / np.linalg.norm(c - b)
            angle = np.degrees(np.arccos(np.clip(d_in @ d_out, -1, 1)))
            cross = d_in[0] * d_out[1] - d_in[1] * d_out[0]
            assert angle > 45
            turns.append("Turn Back" if angle >= 135 else ("Turn Left" if cross > 0 else "Turn Right"))
        # one "[please fill in]" is in the note, one per turn in the numbered steps
        assert r["question"].count("[please fill in]") == 1 + len(turns)
        assert _option_text(r) == ", ".join(turns)


def test_appearance_order(generated):
    _, scene, qa = generated
    records = [r for r in qa if r["question_type"] == "obj_appearance_order"]
    assert records
    for r in records:
        names = re.search(r"in the video: (.+)\?$", r["question"]).group(1).split(", ")
        first = {n: min(o["first_seen"] for o in scene["objects"] if o["label"] == n and o["first_seen"] is not None)
                 for n in names}
        assert _option_text(r) == ", ".join(sorted(names, key=first.get))
        assert sorted(r["options"][i][3:] for i in range(4)) == sorted(set(o[3:] for o in r["options"]))


def test_only_seen_and_unambiguous_objects_are_named(generated):
    _, scene, qa = generated
    seen = {o["label"] for o in scene["objects"] if o["first_seen"] is not None}
    for r in qa:
        text = r["question"] + " " + " ".join(r["options"])
        for o in scene["objects"]:
            if o["label"] not in seen and re.search(rf"\b{re.escape(o['label'])}\b", text):
                raise AssertionError(f"{r['id']} names {o['label']}, which was never seen")


# ------------------------------------------------------------------ answer functions on their own


def _obj(center, size, yaw=0.0):
    size = np.array(size, float)
    return SceneObject(1, "cabinet", np.array(center, float), size, yaw, np.zeros(3), [Box(np.zeros(3), size, np.zeros(3))])


def test_closest_box_distance_cases():
    a = _obj((0, 0, 0.5), (1, 1, 1))
    assert closest_box_distance(a, _obj((3, 0, 0.5), (1, 1, 1))) == pytest.approx(2.0)
    assert closest_box_distance(a, _obj((3, 4, 0.5), (1, 1, 1))) == pytest.approx(math.hypot(2, 3))
    # stacked: vertical gap only
    assert closest_box_distance(a, _obj((0.2, 0, 2.0), (0.5, 0.5, 1))) == pytest.approx(0.5)
    # rotated 45 deg: the corner points at a
    b = _obj((2, 0, 0.5), (1, 1, 1), yaw=math.pi / 4)
    assert closest_box_distance(a, b) == pytest.approx(1.5 - math.sqrt(0.5))
    assert closest_box_distance(a, _obj((0.5, 0.5, 0.5), (1, 1, 1))) == 0.0
    assert closest_box_distance(a, b) == pytest.approx(_box_distance(
        {"center": a.center, "size": a.size, "yaw": 0.0}, {"center": b.center, "size": b.size, "yaw": b.yaw}), abs=1e-6)


def test_direction_functions():
    p, o = np.array([0.0, 0.0]), np.array([0.0, 1.0])  # facing +y
    assert relative_angle(p, o, np.array([-1.0, 1.0])) == pytest.approx(45.0)  # left is positive
    assert direction_easy(relative_angle(p, o, np.array([-1.0, 1.0]))) == "left"
    assert direction_easy(relative_angle(p, o, np.array([1.0, -1.0]))) == "right"
    assert direction_easy(relative_angle(p, o, np.array([0.01, 3.0]))) is None  # straight ahead: ambiguous
    assert direction_medium(relative_angle(p, o, np.array([0.3, -2.0]))) == "back"
    assert direction_medium(relative_angle(p, o, np.array([-2.0, -0.5]))) == "left"
    assert direction_medium(relative_angle(p, o, np.array([-1.0, -1.0]))) is None  # exactly 135 deg
    assert direction_hard(relative_angle(p, o, np.array([1.0, 1.0]))) == "front-right"
    assert direction_hard(relative_angle(p, o, np.array([-1.0, -1.0]))) == "back-left"
    assert direction_hard(relative_angle(p, o, np.array([-1.0, 0.0]))) is None
    assert turn_between(np.array([0, 0]), np.array([0, 2]), np.array([-2, 2])) == "Turn Left"
    assert turn_between(np.array([0, 0]), np.array([0, 2]), np.array([2, 2.2])) == "Turn Right"
    assert turn_between(np.array([0, 0]), np.array([0, 2]), np.array([0.2, 0])) == "Turn Back"
    assert turn_between(np.array([0, 0]), np.array([0, 2]), np.array([0, 4])) is None
