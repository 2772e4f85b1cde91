"""Procedural multi-room indoor scenes with exact ground truth.

A scene is a grid of rectangular rooms (each 3-7 m per side, one ceiling height
per scene, about 2.6 m) joined by doorways, furnished by room type (living room,
kitchen, bedroom, bathroom, office, dining room) with objects of every category
in ``classes.CLASSES``. Each object is a union of axis-aligned boxes in its own
frame (its *parts*) and has an oriented 3D bounding box: ``center`` (world,
metres), ``size`` (extent along its local x, y, z), ``yaw`` (radians about world
z). Local +y is the object's front (a sofa's back is at local -y, against the
wall); local z is world z.

This module lays out the floor plan (rooms on a grid, doorways, walls) and has each
room furnished. The pieces: ``scene_types`` (the data model and its JSON),
``geometry2d`` (plane geometry), ``furniture`` (one box builder per class) and
``furnishing`` (room templates and placement rules).

Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed``, and
iteration is over lists only, so a seed always gives the same scene.

World frame: REP-103 (x, y on the floor, z up), metres; floor at z = 0.
"""

from __future__ import annotations

import math

import numpy as np

from spatial_ttt_ros.sim.furnishing import ROOM_KINDS, Placed, RoomFurnisher
from spatial_ttt_ros.sim.furniture import vary_color
# The data model, re-exported: ``from spatial_ttt_ros.sim.scene import Scene`` keeps working.
from spatial_ttt_ros.sim.scene_types import (  # noqa: F401
    DOOR_HEIGHT,
    WALL_THICKNESS,
    Box,
    Door,
    Scene,
    SceneObject,
    SceneRoom,
)

CORRIDOR_RADIUS = 0.6  # metres of free floor around the camera's walking lines
HUB_RADIUS = 0.75  # metres of free floor around each room's look-around point


def _grid_shape(n_rooms: int) -> tuple[int, int]:
    cols = int(math.ceil(math.sqrt(n_rooms)))
    rows = int(math.ceil(n_rooms / cols))
    return rows, cols


def generate_scene(seed: int, n_rooms: int) -> Scene:
    """A furnished scene of ``n_rooms`` rooms on a grid, all reachable through doorways.

    Deterministic in ``seed``. Raises ValueError for ``n_rooms < 1``.
    """
    if int(n_rooms) < 1:
        raise ValueError(f"a scene needs at least 1 room, got {n_rooms}")
    n_rooms = int(n_rooms)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5CE7E]))
    height = float(rng.uniform(2.5, 2.8))
    rows, cols = _grid_shape(n_rooms)
    col_w = rng.uniform(3.0, 7.0, size=cols)
    row_d = rng.uniform(3.0, 7.0, size=rows)
    xs = np.concatenate([[0.0], np.cumsum(col_w)])
    ys = np.concatenate([[0.0], np.cumsum(row_d)])
    cells = [(i // cols, i % cols) for i in range(n_rooms)]  # (row, col), filled row by row

    # Room kinds: shuffled so every kind appears before any repeats; bathrooms go to small cells.
    kinds: list[str] = []
    while len(kinds) < n_rooms:
        order = list(ROOM_KINDS)
        perm = rng.permutation(len(order))
        kinds.extend(order[int(k)] for k in perm)
    kinds = kinds[:n_rooms]
    if n_rooms == 1:
        kinds = [["living room", "kitchen", "bedroom", "office", "dining room"][int(rng.integers(5))]]

    rooms: list[SceneRoom] = []
    for i, (r, c) in enumerate(cells):
        lo = np.array([xs[c] + WALL_THICKNESS, ys[r] + WALL_THICKNESS])
        hi = np.array([xs[c + 1] - WALL_THICKNESS, ys[r + 1] - WALL_THICKNESS])
        poly = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
        extent = hi - lo
        hub = (lo + hi) / 2 + rng.uniform(-0.15, 0.15, size=2) * np.maximum(extent - 2.5, 0.0)
        rooms.append(SceneRoom(
            name=f"room_{i}", kind=kinds[i], polygon=poly, area_m2=float(extent[0] * extent[1]),
            height=height, hub=hub,
            floor_color=vary_color(rng, [(0.55, 0.4, 0.28), (0.7, 0.68, 0.62), (0.4, 0.38, 0.36)][int(rng.integers(3))], 0.08),
            wall_color=vary_color(rng, (0.86, 0.84, 0.78), 0.1),
        ))

    # Doors: a random spanning tree over grid neighbours, plus one extra door for a loop.
    index_of = {cell: i for i, cell in enumerate(cells)}
    edges = []
    for i, (r, c) in enumerate(cells):
        for dr, dc in ((0, 1), (1, 0)):
            j = index_of.get((r + dr, c + dc))
            if j is not None:
                edges.append((i, j))
    order = [edges[int(k)] for k in rng.permutation(len(edges))] if edges else []
    parent = list(range(n_rooms))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    chosen, spare = [], []
    for a, b in order:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            chosen.append((a, b))
        else:
            spare.append((a, b))
    if spare and n_rooms >= 4:
        chosen.append(spare[0])
    chosen.sort()

    doors: list[Door] = []
    for a, b in chosen:
        (ra, ca), (rb, cb) = cells[a], cells[b]
        width = float(rng.uniform(0.9, 1.1))
        if ra == rb:  # side by side: shared wall along y at x = xs[cb]
            y0, y1 = ys[ra] + 0.4 + width / 2, ys[ra + 1] - 0.4 - width / 2
            doors.append(Door(a, b, np.array([xs[cb], rng.uniform(y0, y1)]), width, axis=1))
        else:  # stacked: shared wall along x at y = ys[rb]
            x0, x1 = xs[ca] + 0.4 + width / 2, xs[ca + 1] - 0.4 - width / 2
            doors.append(Door(a, b, np.array([rng.uniform(x0, x1), ys[rb]]), width, axis=0))

    walls = _build_walls(rooms, cells, xs, ys, doors, height)

    # Corridors the camera walks along: from each doorway to the hubs of both its rooms.
    objects: list[SceneObject] = []
    placed: list[Placed] = []
    next_id = 1
    for i, room in enumerate(rooms):
        corridors = [(room.hub, room.hub, HUB_RADIUS)]
        my_doors = [d for d in doors if i in (d.a, d.b)]
        for d in my_doors:
            corridors.append((d.center, room.hub, CORRIDOR_RADIUS))
        furnisher = RoomFurnisher(rng, i, room, my_doors, corridors, placed, objects, next_id)
        furnisher.furnish(room.kind)
        next_id = furnisher.next_id
    return Scene(seed=int(seed), rooms=rooms, doors=doors, walls=walls, objects=objects, height=height)


def _build_walls(rooms, cells, xs, ys, doors: list[Door], height: float) -> list[Box]:
    """Each room's four walls (inside its cell), split around doorways with a lintel above."""
    walls: list[Box] = []
    t = WALL_THICKNESS
    for i, (r, c) in enumerate(cells):
        color = rooms[i].wall_color
        x0, x1, y0, y1 = xs[c], xs[c + 1], ys[r], ys[r + 1]
        # (axis of the wall line, fixed coordinate of the wall's inner face mid-plane, span lo, span hi)
        sides = [(0, y0 + t / 2, x0, x1, y0), (0, y1 - t / 2, x0, x1, y1),
                 (1, x0 + t / 2, y0, y1, x0), (1, x1 - t / 2, y0, y1, x1)]
        for axis, mid, s0, s1, line in sides:
            gaps = sorted(
                (float(d.center[0] if axis == 0 else d.center[1]), d.width)
                for d in doors
                if i in (d.a, d.b) and d.axis == axis and abs((d.center[1] if axis == 0 else d.center[0]) - line) < 1e-6
            )
            cursor = s0
            pieces: list[tuple[float, float, float, float]] = []  # span lo, span hi, z lo, z hi
            for centre, width in gaps:
                pieces.append((cursor, centre - width / 2, 0.0, height))
                pieces.append((centre - width / 2, centre + width / 2, DOOR_HEIGHT, height))
                cursor = centre + width / 2
            pieces.append((cursor, s1, 0.0, height))
            for a, b, z0, z1 in pieces:
                if b - a <= 1e-6:
                    continue
                if axis == 0:
                    walls.append(Box(np.array([(a + b) / 2, mid, (z0 + z1) / 2]), np.array([b - a, t, z1 - z0]), color))
                else:
                    walls.append(Box(np.array([mid, (a + b) / 2, (z0 + z1) / 2]), np.array([t, b - a, z1 - z0]), color))
    return walls
