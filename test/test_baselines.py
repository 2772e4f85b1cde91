"""ObjectMapMemory on hand-made observation streams, its persistence, and make_memory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spatial_ttt_ros.frames import ObjectObservation
from spatial_ttt_ros.memory.object_map import ObjectMapMemory
from spatial_ttt_ros.memory.factory import METHODS, make_memory
from spatial_ttt_ros.memory.protocol import SpatialMemory
from spatial_ttt_ros.perception.tokens import EGO_DIM, EGO_FIELDS, GEO_DIM, GEO_FIELDS, OBJ_DIM, FrameTokens

T0 = 100.0  # stream start stamp: first_seen must come out relative to it


def frame(i: int, observations, cam=(0.0, 0.0, 1.4), cells=()) -> FrameTokens:
    """FrameTokens at 10 Hz with the given world observations and geometry cell points."""
    stamp = T0 + 0.1 * i
    ego = np.zeros(EGO_DIM, np.float32)
    ego[EGO_FIELDS["position"]] = cam
    geo = np.zeros((2, 2, GEO_DIM), np.float32)
    for k, p in enumerate(cells):
        r, c = divmod(k, 2)
        geo[r, c, GEO_FIELDS["mean_xyz"]] = p
        geo[r, c, GEO_FIELDS["valid_fraction"]] = 1.0
    obs = [
        ObjectObservation(label=lab, score=0.9, center=np.asarray(c, float), size=np.asarray(s, float), stamp=stamp, frame_index=i)
        for lab, c, s in observations
    ]
    return FrameTokens(
        stamp=stamp,
        frame_index=i,
        ego=ego,
        geometry=geo,
        objects=np.zeros((4, OBJ_DIM), np.float32),
        object_valid=np.zeros(4, bool),
        observations=obs,
        time=stamp - T0,
    )


CHAIR_A = np.array([1.0, 2.0, 0.45])
CHAIR_B = np.array([1.7, 2.0, 0.45])  # 70 cm from A: neighbours at one table
CHAIR_SIZE = np.array([0.46, 0.48, 0.9])


def chair_stream(n: int = 40, seed: int = 0) -> list[FrameTokens]:
    """Two chairs side by side seen with 5 cm noise; chair B only from frame 10; one
    false-positive sofa at frame 5; a fragment (top half) of chair A in frame 20."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        obs = [("chair", CHAIR_A + rng.normal(0, 0.05, 3), CHAIR_SIZE * rng.uniform(0.8, 1.1, 3))]
        if i >= 10:
            obs.append(("chair", CHAIR_B + rng.normal(0, 0.05, 3), CHAIR_SIZE * rng.uniform(0.8, 1.1, 3)))
        if i == 5:
            obs.append(("sofa", np.array([4.0, -1.0, 0.4]), np.array([2.0, 0.9, 0.8])))
        if i == 20:
            obs.append(("chair", CHAIR_A + np.array([0.0, 0.0, 0.25]), np.array([0.4, 0.4, 0.35])))
        frames.append(frame(i, obs, cells=[(3.0, 0.0, 1.0), (3.0, 3.0, 1.0), (-1.0, 3.0, 0.0)]))
    return frames


def test_object_map_clusters_two_chairs_and_drops_false_positive():
    mem = ObjectMapMemory()
    assert isinstance(mem, SpatialMemory)
    for f in chair_stream():
        mem.observe(f)
    inv = mem.inventory()
    labels = sorted(o.label for o in inv.objects)
    assert labels == ["chair", "chair"], labels  # the sofa was seen once: dropped
    a, b = sorted(inv.objects, key=lambda o: o.center[0])
    assert np.linalg.norm(a.center - CHAIR_A) < 0.12
    assert np.linalg.norm(b.center - CHAIR_B) < 0.12
    # first_seen is seconds since the stream's first frame, not the absolute stamp.
    assert a.first_seen == pytest.approx(0.0)
    assert b.first_seen == pytest.approx(1.0)
    # The robust union of views is close to the true size, not the fragment's.
    assert np.all(np.abs(a.size - CHAIR_SIZE) < 0.2)
    assert inv.start_stamp == pytest.approx(T0)
    assert inv.stamp == pytest.approx(T0 + 3.9)


def test_object_map_false_positive_kept_once_seen_enough():
    mem = ObjectMapMemory(min_count=1)
    for f in chair_stream():
        mem.observe(f)
    assert sorted(o.label for o in mem.inventory().objects) == ["chair", "chair", "sofa"]


def test_object_map_room_from_free_space():
    # A 4 m x 3 m room: the camera turns in its middle and the geometry cells hit the walls.
    mem = ObjectMapMemory(floor_resolution=0.1)
    cam = np.array([2.0, 1.5, 1.4])
    walls = []
    for ang in np.linspace(0, 2 * np.pi, 180, endpoint=False):
        d = np.array([np.cos(ang), np.sin(ang)])
        # Distance to the box [0,4]x[0,3] boundary along d.
        ts = [t for t in ((4 - 2) / d[0] if d[0] > 0 else -2 / d[0] if d[0] < 0 else np.inf,
                          (3 - 1.5) / d[1] if d[1] > 0 else -1.5 / d[1] if d[1] < 0 else np.inf)]
        p = cam[:2] + min(ts) * d
        walls.append((p[0], p[1], 1.0))
    for i in range(0, 180, 4):
        mem.observe(frame(i, [], cam=cam, cells=walls[i : i + 4]))
    room = mem.inventory().room
    assert room is not None
    assert room.area_m2 == pytest.approx(12.0, rel=0.12)
    assert np.allclose(room.min_xy, [0.0, 0.0], atol=0.25)
    assert np.allclose(room.max_xy, [4.0, 3.0], atol=0.25)


def test_object_map_state_grows_with_objects():
    mem = ObjectMapMemory()
    mem.observe(frame(0, [("chair", CHAIR_A, CHAIR_SIZE)]))
    one = mem.state_bytes()
    for i in range(1, 6):
        mem.observe(frame(i, [("chair", CHAIR_A + [3.0 * i, 0, 0], CHAIR_SIZE)]))
    assert mem.state_bytes() > 3 * one
    mem.reset()
    assert mem.inventory().objects == [] and mem.inventory().room is None


def test_object_map_save_load_round_trip(tmp_path):
    mem = ObjectMapMemory()
    stream = chair_stream(60)
    for f in stream[:30]:
        mem.observe(f)
    path = tmp_path / "map.json"
    mem.save(path)
    before = mem.inventory()

    other = ObjectMapMemory(min_count=7)  # the saved settings win
    other.load(path)
    assert other.min_count == mem.min_count
    after = other.inventory()
    assert after.to_json() == before.to_json()
    # Continuing the stream after loading gives what continuing without saving gives.
    for f in stream[30:]:
        mem.observe(f)
        other.observe(f)
    assert other.inventory().to_json() == mem.inventory().to_json()


def test_object_map_refuses_foreign_files(tmp_path):
    mem = ObjectMapMemory()
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"format": "something.else", "objects": []}))
    with pytest.raises(ValueError, match="not an object-map memory state"):
        mem.load(foreign)
    binary = tmp_path / "weights.safetensors"
    binary.write_bytes(b"\x00\x01\xffnot json")
    with pytest.raises(ValueError, match="not an object-map memory state"):
        mem.load(binary)
    with pytest.raises(FileNotFoundError):
        mem.load(tmp_path / "missing.json")
    newer = tmp_path / "newer.json"
    mem.save(newer)
    doc = json.loads(newer.read_text())
    doc["format_version"] = 99
    newer.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="version 99"):
        mem.load(newer)


def test_make_memory_object_map_and_unknown_method():
    mem = make_memory("object_map", min_count=2)
    assert isinstance(mem, ObjectMapMemory) and mem.min_count == 2 and mem.name == "object_map"
    with pytest.raises(ValueError, match="unknown memory method 'lstm'.*object_map.*ttt"):
        make_memory("lstm")
    with pytest.raises(ValueError, match="no checkpoint"):
        make_memory("object_map", checkpoint="x.safetensors")
    assert {"ttt", "object_map", "full_context", "sliding_window", "ttt_additive", "ttt_no_align", "ttt_chunk_step"} <= set(METHODS)


def test_object_map_folds_a_drifted_resighting_but_not_a_neighbour():
    """A chair seen, left for 10 s, then seen 0.8 m off (odometry drift) is one chair;
    a second chair 0.8 m from the first, seen in the same frames, stays a second chair."""
    mem = ObjectMapMemory()
    rng = np.random.default_rng(3)
    i = 0
    for _ in range(30):  # first visit
        mem.observe(frame(i, [("chair", CHAIR_A + rng.normal(0, 0.03, 3), CHAIR_SIZE)]))
        i += 1
    i += 100  # 10 s looking elsewhere
    drift = np.array([0.8, 0.0, 0.0])
    for _ in range(10):  # revisit: the same chair, displaced by drift
        mem.observe(frame(i, [("chair", CHAIR_A + drift + rng.normal(0, 0.03, 3), CHAIR_SIZE)]))
        i += 1
    inv = mem.inventory()
    assert len(inv.objects) == 1
    assert np.linalg.norm(inv.objects[0].center - CHAIR_A) < 0.1  # the map keeps the first geometry
    assert inv.objects[0].first_seen == pytest.approx(0.0)

    mem.reset()
    i = 0
    for _ in range(30):
        mem.observe(frame(i, [("chair", CHAIR_A + rng.normal(0, 0.03, 3), CHAIR_SIZE)]))
        i += 1
    i += 100
    for _ in range(10):  # back: the old chair and, beside it, one not seen before
        obs = [("chair", CHAIR_A + rng.normal(0, 0.03, 3), CHAIR_SIZE),
               ("chair", CHAIR_A + drift + rng.normal(0, 0.03, 3), CHAIR_SIZE)]
        mem.observe(frame(i, obs))
        i += 1
    assert len(mem.inventory().objects) == 2


def test_object_map_tracks_slow_drift():
    """Observations of a well-known object sliding away (drift) move the map's offset."""
    mem = ObjectMapMemory(track_deadband=0.0, track_rate=0.2)
    for i in range(40):
        mem.observe(frame(i, [("table", np.array([2.0, 0.0, 0.4]), np.array([1.2, 0.8, 0.75]))]))
    for i in range(40, 120):
        mem.observe(frame(i, [("table", np.array([2.0 + 0.003 * (i - 40), 0.0, 0.4]), np.array([1.2, 0.8, 0.75]))]))
    assert 0.1 < mem.offset[0] < 0.3 and abs(mem.offset[1]) < 1e-6
    assert len(mem.inventory().objects) == 1
