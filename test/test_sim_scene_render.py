"""Scene generator, trajectory and renderer against geometry computed here by other means."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from spatial_ttt_ros.classes import CLASS_TO_ID, CLASSES
from spatial_ttt_ros.sim.render import Renderer
from spatial_ttt_ros.sim.scene import Box, Scene, SceneObject, generate_scene
from spatial_ttt_ros.sim.stream import min_visible_pixels, simulate_stream
from spatial_ttt_ros.sim.trajectory import camera_pose, generate_trajectory


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [generate_scene(seed, n) for seed, n in ((0, 1), (1, 3), (2, 4), (3, 6), (4, 6))]


def _local_points(obj, n=9, shrink=1e-3):
    """Grid of points strictly inside the object's footprint, in world xy."""
    g = np.linspace(-0.5, 0.5, n)
    gx, gy = np.meshgrid(g * (obj.size[0] - shrink), g * (obj.size[1] - shrink))
    local = np.stack([gx.ravel(), gy.ravel()], 1)
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    return local @ np.array([[c, s], [-s, c]]) + obj.center[:2]


def _inside_footprint(points, obj, eps=1e-4):
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    local = (points - obj.center[:2]) @ np.array([[c, -s], [s, c]])
    return (np.abs(local[:, 0]) < obj.size[0] / 2 - eps) & (np.abs(local[:, 1]) < obj.size[1] / 2 - eps)


def test_scene_is_deterministic_and_round_trips():
    a, b = generate_scene(11, 4), generate_scene(11, 4)
    assert json.dumps(a.to_json()) == json.dumps(b.to_json())
    assert json.dumps(generate_scene(12, 4).to_json()) != json.dumps(a.to_json())
    back = Scene.from_json(json.loads(json.dumps(a.to_json())))
    assert json.dumps(back.to_json()) == json.dumps(a.to_json())
    with pytest.raises(ValueError):
        generate_scene(0, 0)


def test_rooms_tile_without_overlap_and_have_realistic_sizes(scenes):
    for scene in scenes:
        for r in scene.rooms:
            ext = r.max_xy - r.min_xy
            assert np.all(ext >= 3.0 - 0.11) and np.all(ext <= 7.0), ext
            x, y = r.polygon[:, 0], r.polygon[:, 1]
            shoelace = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
            assert r.area_m2 == pytest.approx(shoelace)
            assert 2.4 <= r.height <= 2.9
        # every room reachable through doors from room 0
        reach, todo = {0}, [0]
        while todo:
            for nb, _ in scene.neighbours(todo.pop()):
                if nb not in reach:
                    reach.add(nb)
                    todo.append(nb)
        assert reach == set(range(len(scene.rooms)))


def test_objects_inside_rooms_and_never_interpenetrate(scenes):
    for scene in scenes:
        objs = scene.objects
        assert [o.instance_id for o in objs] == list(range(1, len(objs) + 1))
        for o in objs:
            room = scene.rooms[o.room]
            corners = o.footprint()
            assert np.all(corners >= room.min_xy - 1e-6) and np.all(corners <= room.max_xy + 1e-6), o.label
            assert o.center[2] - o.size[2] / 2 >= -1e-9 and o.center[2] + o.size[2] / 2 <= room.height
        for i, a in enumerate(objs):
            for b in objs[i + 1:]:
                za = (a.center[2] - a.size[2] / 2, a.center[2] + a.size[2] / 2)
                zb = (b.center[2] - b.size[2] / 2, b.center[2] + b.size[2] / 2)
                if za[1] <= zb[0] + 1e-6 or zb[1] <= za[0] + 1e-6:
                    continue  # stacked (a laptop on a table) or apart in height
                # independent check: dense interior points of each footprint must not fall inside the other
                assert not _inside_footprint(_local_points(a), b).any(), (a.label, b.label)
                assert not _inside_footprint(_local_points(b), a).any(), (a.label, b.label)


def test_categories_sizes_and_layout_are_plausible(scenes):
    labels = [o.label for s in scenes for o in s.objects]
    assert len(set(labels)) >= 15
    assert set(labels) <= set(CLASSES)
    for cls in ("chair", "cabinet", "potted plant"):
        assert labels.count(cls) >= 4
    by_label: dict[str, list[SceneObject]] = {}
    for s in scenes:
        for o in s.objects:
            by_label.setdefault(o.label, []).append(o)
    chairs = by_label["chair"]
    assert all(0.75 <= c.size[2] <= 1.05 for c in chairs)
    assert all(1.6 <= f.size[2] <= 2.0 for f in by_label["refrigerator"])
    assert all(1.1 <= t.size[0] <= 2.0 for t in by_label["table"] if t.size[2] > 0.6)
    # colours vary per instance
    assert len({tuple(np.round(c.color, 3)) for c in chairs}) == len(chairs)
    # laptops and microwaves stand on something; clocks hang on a wall
    for s in scenes:
        for o in s.objects:
            if o.label in ("laptop", "microwave"):
                assert o.support.startswith("on:")
                sup = s.object(int(o.support[3:]))
                assert sup.label in ("table", "cabinet")
                assert o.center[2] - o.size[2] / 2 == pytest.approx(sup.center[2] + sup.size[2] / 2)
    assert all(o.support == "wall" and o.center[2] > 1.5 for o in by_label["clock"])
    # chairs by tables: a dining room's table has chairs within half a metre
    for s in scenes:
        for room_i, room in enumerate(s.rooms):
            if room.kind != "dining room":
                continue
            tables = [o for o in s.objects if o.room == room_i and o.label == "table"]
            room_chairs = [o for o in s.objects if o.room == room_i and o.label == "chair"]
            if tables:
                near = [c for c in room_chairs if np.linalg.norm(c.center[:2] - tables[0].center[:2]) < 1.6]
                assert len(near) >= 1


def test_trajectory_speed_height_smoothness_and_coverage(scenes):
    scene = scenes[3]  # six rooms
    rate = 10.0
    traj = generate_trajectory(scene, 3000, rate, seed=3)
    assert len(traj) == 3000
    stamps = np.array([t for t, _ in traj])
    assert np.allclose(np.diff(stamps), 1 / rate)
    T = np.stack([p for _, p in traj])
    assert np.allclose(np.einsum("nji,njk->nik", T[:, :3, :3], T[:, :3, :3]), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(T[:, :3, :3]), 1.0)
    pos = T[:, :3, 3]
    assert 1.18 <= pos[:, 2].min() and pos[:, 2].max() <= 1.62
    speed = np.linalg.norm(np.diff(pos[:, :2], axis=0), axis=1) * rate
    assert speed.max() <= 0.81
    assert 0.25 <= speed[speed > 0.05].mean() <= 0.8
    heading = np.unwrap(np.arctan2(T[:, 1, 2], T[:, 0, 2]))
    yaw_rate = np.abs(np.diff(heading)) * rate
    assert np.degrees(yaw_rate.max()) < 150  # no jumps
    # the camera's x axis stays level (no roll) and it looks roughly horizontally
    assert np.abs(T[:, 2, 0]).max() < 1e-9
    assert np.degrees(np.arcsin(np.abs(T[:, 2, 2]))).max() < 35
    rooms = [scene.room_of(p[:2]) for p in pos]
    assert set(rooms) == set(range(len(scene.rooms)))
    # comes back: some room is entered again after leaving it
    visits = [r for i, r in enumerate(rooms) if i == 0 or r != rooms[i - 1]]
    assert len(visits) > len(set(visits))
    # never walks into furniture
    for o in scene.objects:
        if o.center[2] - o.size[2] / 2 < 1.7:
            assert not _inside_footprint(pos[:, :2], o, eps=-0.15).any(), o.label


def _empty_room(seed=5):
    scene = generate_scene(seed, 1)
    return replace(scene, objects=[])


def test_depth_of_a_known_wall_and_the_floor():
    scene = _empty_room()
    room = scene.rooms[0]
    w, h = 96, 72
    r = Renderer(scene, w, h)
    cam = np.array([room.hub[0], room.hub[1], 1.4])
    _, depth, labels, inst = r.render(camera_pose(*cam, yaw=0.0, pitch=0.0))  # facing +x, level
    wall_depth = room.max_xy[0] - cam[0]
    # every pixel of the row through the principal point hits the east wall at that depth
    row = depth[h // 2]
    assert np.allclose(row, wall_depth, atol=1e-4)
    # bottom-centre pixel hits the floor: depth = height / (y / f)
    K = r.K
    v = h - 1
    expected_floor = cam[2] / ((v - K[1, 2]) / K[1, 1])
    if expected_floor < wall_depth:
        assert depth[v, w // 2] == pytest.approx(expected_floor, rel=1e-5)
    assert labels.max() == 0 and inst.max() == 0
    # facing -y the south wall
    _, depth_s, _, _ = r.render(camera_pose(*cam, yaw=-math.pi / 2, pitch=0.0))
    assert np.allclose(depth_s[h // 2], cam[1] - room.min_xy[1], atol=1e-4)
    assert r.K[0, 0] == pytest.approx((w / 2) / math.tan(math.radians(65) / 2))


def _block(iid, label, center, size, yaw=0.0, color=(0.8, 0.1, 0.1)):
    size = np.array(size, dtype=float)
    return SceneObject(iid, label, np.array(center, dtype=float), size, yaw, np.array(color),
                       [Box(np.zeros(3), size.copy(), np.array(color))], 0, "floor")


def test_object_pixels_carry_label_instance_and_occlusion():
    base = _empty_room()
    room = base.rooms[0]
    cam = np.array([room.min_xy[0] + 0.3, room.hub[1], 1.0])
    near = _block(7, "cabinet", (cam[0] + 1.5, cam[1], 0.6), (0.6, 0.4, 1.2), yaw=math.pi / 2)
    far = _block(9, "refrigerator", (cam[0] + 2.6, cam[1], 0.9), (0.7, 1.6, 1.8), yaw=0.0, color=(0.1, 0.8, 0.1))
    scene = replace(base, objects=[near, far])
    w, h = 80, 60
    r = Renderer(scene, w, h)
    rgb, depth, labels, inst = r.render(camera_pose(*cam, yaw=0.0, pitch=0.0))
    cy, cx = h // 2, w // 2
    # yaw 90 deg: the cabinet's extent along world x is its size[1] = 0.4
    assert depth[cy, cx] == pytest.approx(near.center[0] - 0.2 - cam[0], abs=1e-4)
    assert labels[cy, cx] == CLASS_TO_ID["cabinet"] and inst[cy, cx] == 7
    # the fridge is wider than the cabinet: visible on both sides of it, at its own depth
    fridge = inst == 9
    assert fridge.any()
    assert np.all(labels[fridge] == CLASS_TO_ID["refrigerator"])
    assert np.allclose(depth[fridge], far.center[0] - 0.35 - cam[0], atol=1e-4)
    # and every pixel whose ray meets the cabinet first shows the cabinet, never the fridge behind it
    K = r.K
    us = (np.arange(w) - K[0, 2]) / K[0, 0]
    vs = (np.arange(h) - K[1, 2]) / K[1, 1]
    d_face = near.center[0] - 0.2 - cam[0]
    lat = cam[1] - us * d_face  # optical x = world -y
    height = cam[2] - vs * d_face
    hits = (np.abs(lat - near.center[1])[None, :] < 0.3 - 1e-3) & (height[:, None] > 1e-3) & (height[:, None] < 1.2 - 1e-3)
    assert np.all(inst[hits] == 7)
    assert rgb[cy, cx, 0] > rgb[cy, cx, 1]  # red cabinet
    assert rgb[fridge][:, 1].mean() > rgb[fridge][:, 0].mean()


def test_stream_frames_and_first_seen():
    stream = simulate_stream(4, 2, 120, 10.0, 64, 48)
    assert stream.min_pixels == min_visible_pixels(64, 48) == 4
    assert min_visible_pixels(160, 120) == 20 and min_visible_pixels(320, 240) == 80
    first = stream.first_seen_frame  # computed without writing anything
    seen_in_pass: dict[int, int] = {}
    n = 0
    for frame, instances in stream.frames():
        assert frame.frame_index == n and frame.stamp == pytest.approx(n / 10.0)
        assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (48, 64, 3)
        assert instances.dtype == np.uint16 and frame.labels.dtype == np.uint16
        ids, counts = np.unique(instances, return_counts=True)
        for i, c in zip(ids, counts):
            if i and c >= stream.min_pixels:
                seen_in_pass.setdefault(int(i), n)
                assert stream.scene.object(int(i)).class_id == np.unique(frame.labels[instances == i]).item()
        n += 1
    assert n == 120
    assert first == seen_in_pass and len(first) > 0
    assert stream.first_seen == {k: v / 10.0 for k, v in first.items()}
