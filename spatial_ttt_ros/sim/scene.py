"""Procedural multi-room indoor scenes with exact ground truth.

A scene is a grid of rectangular rooms (each 3-7 m per side, one ceiling height
per scene, about 2.6 m) joined by doorways, furnished by room type (living room,
kitchen, bedroom, bathroom, office, dining room) with objects of every category
in ``classes.CLASSES``. Each object is a union of axis-aligned boxes in its own
frame (its *parts*) and has an oriented 3D bounding box: ``center`` (world,
metres), ``size`` (extent along its local x, y, z), ``yaw`` (radians about world
z). Local +y is the object's front (a sofa's back is at local -y, against the
wall); local z is world z.

Placement rules: objects stay inside their room, never interpenetrate (oriented
footprint overlap plus height-interval overlap, i.e. exact for upright boxes),
keep doorways and the camera's walking corridors (doorway -> room hub) free,
and follow real layouts: chairs around tables, beds/sofas/cabinets/fridges with
their backs to walls, microwaves/laptops/vases on tables or cabinets, clocks on
walls, TVs on a cabinet or on a wall.

Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed``, and
iteration is over lists only, so a seed always gives the same scene.

World frame: REP-103 (x, y on the floor, z up), metres; floor at z = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spatial_ttt_ros.classes import CLASS_TO_ID

WALL_THICKNESS = 0.05  # metres: each room owns a 5 cm wall on each side of its grid cell
DOOR_HEIGHT = 2.1  # metres
CORRIDOR_RADIUS = 0.6  # metres of free floor around the camera's walking lines
HUB_RADIUS = 0.75  # metres of free floor around each room's look-around point


@dataclass(eq=False)  # numpy fields: compare by identity
class Box:
    """An axis-aligned box in some frame: ``center`` (3,) and ``size`` (3,) metres, RGB colour 0..1."""

    center: np.ndarray
    size: np.ndarray
    color: np.ndarray

    def to_json(self) -> dict:
        return {
            "center": [round(float(v), 6) for v in self.center],
            "size": [round(float(v), 6) for v in self.size],
            "color": [round(float(v), 4) for v in self.color],
        }

    @staticmethod
    def from_json(d: dict) -> "Box":
        return Box(
            np.array(d["center"], dtype=np.float64),
            np.array(d["size"], dtype=np.float64),
            np.array(d["color"], dtype=np.float64),
        )


@dataclass(eq=False)  # numpy fields: compare by identity
class SceneObject:
    """One object instance.

    ``size`` is (l, w, h): extent along the object's local x, y and z in metres;
    ``parts`` are boxes in the object's local frame (origin at ``center``).
    ``support`` is "floor", "wall" or "on:<instance_id>".
    """

    instance_id: int
    label: str
    center: np.ndarray  # (3,) world metres (centre of the oriented bounding box)
    size: np.ndarray  # (3,) l, w, h metres along local x, y, z
    yaw: float  # radians about world z (local x axis = (cos yaw, sin yaw, 0))
    color: np.ndarray  # (3,) RGB 0..1, the instance's main colour
    parts: list[Box] = field(default_factory=list)
    room: int = 0  # index into Scene.rooms
    support: str = "floor"

    @property
    def class_id(self) -> int:
        return CLASS_TO_ID[self.label]

    def footprint(self) -> np.ndarray:
        """(4, 2) world xy corners of the oriented footprint, counter-clockwise."""
        return box_footprint(self.center[:2], self.size[:2], self.yaw)

    def corners(self) -> np.ndarray:
        """(8, 3) world corners of the oriented bounding box."""
        fp = self.footprint()
        z0 = self.center[2] - self.size[2] / 2
        z1 = self.center[2] + self.size[2] / 2
        return np.concatenate([np.c_[fp, np.full(4, z0)], np.c_[fp, np.full(4, z1)]])

    def to_json(self) -> dict:
        return {
            "instance_id": int(self.instance_id),
            "label": self.label,
            "class_id": self.class_id,
            "center": [round(float(v), 6) for v in self.center],
            "size": [round(float(v), 6) for v in self.size],
            "yaw": round(float(self.yaw), 6),
            "color": [round(float(v), 4) for v in self.color],
            "room": int(self.room),
            "support": self.support,
            "parts": [p.to_json() for p in self.parts],
        }

    @staticmethod
    def from_json(d: dict) -> "SceneObject":
        return SceneObject(
            instance_id=int(d["instance_id"]),
            label=d["label"],
            center=np.array(d["center"], dtype=np.float64),
            size=np.array(d["size"], dtype=np.float64),
            yaw=float(d["yaw"]),
            color=np.array(d["color"], dtype=np.float64),
            parts=[Box.from_json(p) for p in d.get("parts", [])],
            room=int(d.get("room", 0)),
            support=d.get("support", "floor"),
        )


@dataclass(eq=False)  # numpy fields: compare by identity
class SceneRoom:
    """A rectangular room. ``polygon`` (4, 2) is the inner floor outline (inside the walls)."""

    name: str
    kind: str  # living room, kitchen, ...
    polygon: np.ndarray  # (4, 2) world xy, counter-clockwise
    area_m2: float
    height: float  # floor to ceiling, metres
    hub: np.ndarray  # (2,) where the camera stands to look around
    floor_color: np.ndarray  # (3,) 0..1
    wall_color: np.ndarray  # (3,) 0..1

    @property
    def min_xy(self) -> np.ndarray:
        return self.polygon.min(axis=0)

    @property
    def max_xy(self) -> np.ndarray:
        return self.polygon.max(axis=0)

    def contains(self, xy: np.ndarray, margin: float = 0.0) -> bool:
        xy = np.asarray(xy, dtype=np.float64)
        return bool(np.all(xy >= self.min_xy + margin) and np.all(xy <= self.max_xy - margin))

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "polygon": [[round(float(v), 6) for v in p] for p in self.polygon],
            "area_m2": round(float(self.area_m2), 6),
            "height": round(float(self.height), 6),
            "hub": [round(float(v), 6) for v in self.hub],
            "floor_color": [round(float(v), 4) for v in self.floor_color],
            "wall_color": [round(float(v), 4) for v in self.wall_color],
        }

    @staticmethod
    def from_json(d: dict) -> "SceneRoom":
        return SceneRoom(
            name=d["name"],
            kind=d.get("kind", "room"),
            polygon=np.array(d["polygon"], dtype=np.float64),
            area_m2=float(d["area_m2"]),
            height=float(d["height"]),
            hub=np.array(d["hub"], dtype=np.float64),
            floor_color=np.array(d.get("floor_color", [0.6, 0.5, 0.4]), dtype=np.float64),
            wall_color=np.array(d.get("wall_color", [0.85, 0.85, 0.8]), dtype=np.float64),
        )


@dataclass(eq=False)  # numpy fields: compare by identity
class Door:
    """A doorway between rooms ``a`` and ``b``: centre (2,) on the shared wall line.

    ``axis`` is 0 when the wall runs along x (rooms stacked in y), 1 when it runs along y.
    """

    a: int
    b: int
    center: np.ndarray
    width: float
    axis: int

    def to_json(self) -> dict:
        return {
            "rooms": [int(self.a), int(self.b)],
            "center": [round(float(v), 6) for v in self.center],
            "width": round(float(self.width), 6),
            "axis": int(self.axis),
        }

    @staticmethod
    def from_json(d: dict) -> "Door":
        return Door(int(d["rooms"][0]), int(d["rooms"][1]), np.array(d["center"], dtype=np.float64),
                    float(d["width"]), int(d["axis"]))


@dataclass
class Scene:
    """Rooms, doors, walls (boxes in world axes, no label) and labelled objects."""

    seed: int
    rooms: list[SceneRoom]
    doors: list[Door]
    walls: list[Box]
    objects: list[SceneObject]
    height: float  # ceiling height of every room, metres

    def object(self, instance_id: int) -> SceneObject:
        for o in self.objects:
            if o.instance_id == instance_id:
                return o
        raise KeyError(f"no object with instance_id {instance_id}")

    def room_of(self, xy: np.ndarray) -> int:
        """Index of the room whose cell (interior plus its walls) contains ``xy``, or -1."""
        for i, r in enumerate(self.rooms):
            if r.contains(xy, margin=-WALL_THICKNESS - 1e-9):
                return i
        return -1

    def neighbours(self, room: int) -> list[tuple[int, Door]]:
        out = []
        for d in self.doors:
            if d.a == room:
                out.append((d.b, d))
            elif d.b == room:
                out.append((d.a, d))
        return out

    def to_json(self) -> dict:
        return {
            "seed": int(self.seed),
            "height": round(float(self.height), 6),
            "rooms": [r.to_json() for r in self.rooms],
            "doors": [d.to_json() for d in self.doors],
            "walls": [w.to_json() for w in self.walls],
            "objects": [o.to_json() for o in self.objects],
        }

    @staticmethod
    def from_json(d: dict) -> "Scene":
        return Scene(
            seed=int(d["seed"]),
            rooms=[SceneRoom.from_json(r) for r in d["rooms"]],
            doors=[Door.from_json(x) for x in d["doors"]],
            walls=[Box.from_json(w) for w in d["walls"]],
            objects=[SceneObject.from_json(o) for o in d["objects"]],
            height=float(d["height"]),
        )


# ----------------------------------------------------------------------------- geometry helpers


def rot2(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s], [s, c]])


def box_footprint(center_xy: np.ndarray, size_xy: np.ndarray, yaw: float) -> np.ndarray:
    """(4, 2) corners of a rectangle of ``size_xy`` rotated by ``yaw`` about ``center_xy``."""
    hx, hy = size_xy[0] / 2, size_xy[1] / 2
    local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    return local @ rot2(yaw).T + np.asarray(center_xy)[:2]


def polygons_overlap(p: np.ndarray, q: np.ndarray, eps: float = 1e-6) -> bool:
    """Separating-axis test for two convex polygons (N,2), (M,2); touching is not overlap."""
    for poly in (p, q):
        n = len(poly)
        for i in range(n):
            edge = poly[(i + 1) % n] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            pa, qa = p @ axis, q @ axis
            if pa.max() <= qa.min() + eps * np.linalg.norm(axis) or qa.max() <= pa.min() + eps * np.linalg.norm(axis):
                return False
    return True


def _point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    denom = float(ab @ ab)
    t = 0.0 if denom == 0 else float(np.clip((p - a) @ ab / denom, 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def _segments_intersect(a, b, c, d) -> bool:
    def cross(o, p, q):
        return (p[0] - o[0]) * (q[1] - o[1]) - (p[1] - o[1]) * (q[0] - o[0])

    d1, d2 = cross(c, d, a), cross(c, d, b)
    d3, d4 = cross(a, b, c), cross(a, b, d)
    return (d1 * d2 < 0) and (d3 * d4 < 0)


def _point_in_convex(p: np.ndarray, poly: np.ndarray) -> bool:
    n = len(poly)
    signs = []
    for i in range(n):
        e = poly[(i + 1) % n] - poly[i]
        w = p - poly[i]
        signs.append(e[0] * w[1] - e[1] * w[0])
    signs = np.array(signs)
    return bool(np.all(signs >= 0) or np.all(signs <= 0))


def segment_polygon_distance(a: np.ndarray, b: np.ndarray, poly: np.ndarray) -> float:
    """Distance in the plane between segment ab and a convex polygon (0 when they meet)."""
    if _point_in_convex(a, poly) or _point_in_convex(b, poly):
        return 0.0
    n = len(poly)
    best = math.inf
    for i in range(n):
        c, d = poly[i], poly[(i + 1) % n]
        if _segments_intersect(a, b, c, d):
            return 0.0
        best = min(best, _point_segment_distance(c, a, b), _point_segment_distance(a, c, d),
                   _point_segment_distance(b, c, d))
    return best


# ----------------------------------------------------------------------------- object builders
# Each builder returns parts in a frame with origin at the footprint centre on the
# object's bottom (z = 0 at the bottom), local +y = front. Sizes are metres.


def _jitter(rng: np.random.Generator, value: float, rel: float = 0.1) -> float:
    return float(value * (1.0 + rng.uniform(-rel, rel)))


def _vary_color(rng: np.random.Generator, base: tuple[float, float, float], amount: float = 0.18) -> np.ndarray:
    c = np.asarray(base, dtype=np.float64) + rng.uniform(-amount, amount, size=3)
    return np.clip(c, 0.03, 0.97)


_PALETTE: dict[str, list[tuple[float, float, float]]] = {
    "chair": [(0.55, 0.35, 0.2), (0.2, 0.2, 0.22), (0.75, 0.7, 0.6), (0.3, 0.45, 0.6)],
    "table": [(0.6, 0.42, 0.25), (0.85, 0.82, 0.75), (0.35, 0.25, 0.18)],
    "sofa": [(0.35, 0.4, 0.55), (0.55, 0.2, 0.2), (0.5, 0.5, 0.45), (0.25, 0.45, 0.3)],
    "bed": [(0.85, 0.85, 0.9), (0.7, 0.75, 0.85), (0.9, 0.8, 0.7)],
    "tv": [(0.08, 0.08, 0.1)],
    "toilet": [(0.93, 0.93, 0.93)],
    "sink": [(0.9, 0.9, 0.92)],
    "refrigerator": [(0.88, 0.88, 0.9), (0.6, 0.62, 0.65)],
    "microwave": [(0.85, 0.85, 0.85), (0.2, 0.2, 0.2)],
    "oven": [(0.75, 0.75, 0.78), (0.25, 0.25, 0.27)],
    "potted plant": [(0.2, 0.55, 0.2)],
    "cabinet": [(0.55, 0.38, 0.22), (0.9, 0.9, 0.88), (0.4, 0.3, 0.25)],
    "lamp": [(0.95, 0.9, 0.7), (0.9, 0.85, 0.85)],
    "laptop": [(0.7, 0.72, 0.75), (0.15, 0.15, 0.17)],
    "clock": [(0.95, 0.95, 0.9), (0.2, 0.2, 0.2)],
    "vase": [(0.3, 0.45, 0.75), (0.8, 0.3, 0.2), (0.9, 0.85, 0.7)],
}


def _part(center, size, color) -> Box:
    return Box(np.array(center, dtype=np.float64), np.array(size, dtype=np.float64), np.asarray(color, dtype=np.float64))


def _legs(l, w, h, t, color) -> list[Box]:
    """Four square legs of side ``t`` and height ``h`` at the corners of an l x w footprint."""
    out = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            out.append(_part((sx * (l - t) / 2, sy * (w - t) / 2, h / 2), (t, t, h), color))
    return out


def build_parts(label: str, rng: np.random.Generator, variant: str = "") -> tuple[list[Box], np.ndarray]:
    """Parts (bottom-origin local frame) and main colour for one instance of ``label``."""
    palette = _PALETTE[label]
    main = _vary_color(rng, palette[int(rng.integers(len(palette)))])
    dark = np.clip(main * 0.45, 0.02, 1)
    parts: list[Box]
    if label == "chair":
        l, w, h = _jitter(rng, 0.46), _jitter(rng, 0.48), _jitter(rng, 0.9, 0.08)
        seat_h = _jitter(rng, 0.45, 0.05)
        parts = _legs(l, w, seat_h - 0.05, 0.04, dark)
        parts.append(_part((0, 0, seat_h - 0.025), (l, w, 0.05), main))
        parts.append(_part((0, -w / 2 + 0.03, (seat_h + h) / 2), (l, 0.06, h - seat_h), main))
    elif label == "table":
        if variant == "coffee":
            l, w, h = _jitter(rng, 1.0), _jitter(rng, 0.55), _jitter(rng, 0.45, 0.05)
        elif variant == "desk":
            l, w, h = rng.uniform(1.1, 1.5), _jitter(rng, 0.7, 0.05), _jitter(rng, 0.74, 0.03)
        else:
            l, w, h = rng.uniform(1.2, 1.8), _jitter(rng, 0.85, 0.06), _jitter(rng, 0.75, 0.03)
        parts = _legs(l, w, h - 0.04, 0.06, dark)
        parts.append(_part((0, 0, h - 0.02), (l, w, 0.04), main))
    elif label == "sofa":
        l, w, h = _jitter(rng, 2.0), _jitter(rng, 0.9, 0.06), _jitter(rng, 0.85, 0.05)
        parts = [
            _part((0, 0.1, 0.22), (l - 0.3, w - 0.2, 0.44), main),  # seat block
            _part((0, -w / 2 + 0.1, h / 2), (l, 0.2, h), main * 0.9),  # back
            _part((-l / 2 + 0.075, 0.1, 0.3), (0.15, w - 0.2, 0.6), main * 0.9),  # arms
            _part((l / 2 - 0.075, 0.1, 0.3), (0.15, w - 0.2, 0.6), main * 0.9),
        ]
    elif label == "bed":
        l, w = _jitter(rng, 1.6, 0.12), _jitter(rng, 2.05, 0.04)  # width across, length away from the wall
        h = _jitter(rng, 0.95, 0.08)  # headboard top
        frame = _vary_color(rng, (0.45, 0.3, 0.2))
        parts = [
            _part((0, 0.03, 0.15), (l, w - 0.06, 0.3), frame),
            _part((0, 0.03, 0.41), (l - 0.04, w - 0.1, 0.22), main),  # mattress
            _part((0, -w / 2 + 0.03, h / 2), (l, 0.06, h), frame),  # headboard
            _part((0, -w / 2 + 0.3, 0.57), (l * 0.8, 0.35, 0.1), np.clip(main * 1.1, 0, 1)),  # pillows
        ]
    elif label == "tv":
        l, h = rng.uniform(0.8, 1.3), 0.0
        h = l * 0.58
        parts = [_part((0, 0, h / 2), (l, 0.07, h), main)]
        parts.append(_part((0, 0.036, h / 2), (l - 0.04, 0.002, h - 0.04), (0.05, 0.06, 0.12)))  # screen
        if variant == "stand":
            parts = [Box(p.center + np.array([0, 0, 0.08]), p.size, p.color) for p in parts]
            parts.append(_part((0, 0, 0.04), (0.3, 0.2, 0.02), main))
            parts.append(_part((0, -0.01, 0.05), (0.05, 0.03, 0.08), main))
    elif label == "toilet":
        l, w, h = _jitter(rng, 0.4, 0.05), _jitter(rng, 0.68, 0.05), _jitter(rng, 0.78, 0.05)
        parts = [
            _part((0, 0.08, 0.2), (l, w - 0.16, 0.4), main),  # bowl
            _part((0, -w / 2 + 0.09, h / 2), (l + 0.04, 0.18, h), main),  # tank
        ]
        l += 0.04
    elif label == "sink":
        l, w, h = rng.uniform(0.55, 0.9), _jitter(rng, 0.5, 0.06), _jitter(rng, 0.86, 0.03)
        body = _vary_color(rng, (0.55, 0.45, 0.35))
        parts = [
            _part((0, 0, (h - 0.06) / 2), (l, w, h - 0.06), body),
            _part((0, 0, h - 0.03), (l, w, 0.06), main),  # basin top
            _part((0, -w / 2 + 0.06, h + 0.1), (0.04, 0.04, 0.2), (0.7, 0.7, 0.72)),  # faucet
        ]
        h += 0.2
    elif label == "refrigerator":
        l, w, h = _jitter(rng, 0.7, 0.08), _jitter(rng, 0.7, 0.06), _jitter(rng, 1.8, 0.06)
        parts = [
            _part((0, -0.02, h / 2), (l, w - 0.04, h), main),
            _part((0, w / 2 - 0.02, h * 0.33), (l - 0.02, 0.04, h * 0.64), main * 0.97),  # lower door
            _part((0, w / 2 - 0.02, h * 0.83), (l - 0.02, 0.04, h * 0.32), main * 0.97),  # upper door
        ]
    elif label == "microwave":
        l, w, h = _jitter(rng, 0.5, 0.08), _jitter(rng, 0.37, 0.06), _jitter(rng, 0.3, 0.06)
        parts = [
            _part((0, -0.01, h / 2), (l, w - 0.02, h), main),
            _part((-0.06, w / 2 - 0.01, h / 2), (l - 0.2, 0.02, h - 0.08), (0.08, 0.08, 0.08)),  # window
        ]
    elif label == "oven":
        l, w, h = _jitter(rng, 0.6, 0.05), _jitter(rng, 0.62, 0.04), _jitter(rng, 0.9, 0.03)
        parts = [
            _part((0, -0.01, h / 2), (l, w - 0.02, h), main),
            _part((0, w / 2 - 0.01, h * 0.42), (l - 0.12, 0.02, h * 0.4), (0.06, 0.06, 0.06)),  # door glass
            _part((0, -0.02, h - 0.005), (l - 0.04, w - 0.08, 0.01), (0.1, 0.1, 0.1)),  # hob
        ]
    elif label == "potted plant":
        pot_w, pot_h = _jitter(rng, 0.3, 0.2), _jitter(rng, 0.3, 0.2)
        leaf_w, leaf_h = pot_w * rng.uniform(1.4, 2.0), rng.uniform(0.4, 1.0)
        pot = _vary_color(rng, (0.7, 0.4, 0.25))
        parts = [
            _part((0, 0, pot_h / 2), (pot_w, pot_w, pot_h), pot),
            _part((0, 0, pot_h + leaf_h / 2), (leaf_w, leaf_w, leaf_h), main),
            _part((0, 0, pot_h + leaf_h * 0.3), (leaf_w * 1.2, leaf_w * 0.5, leaf_h * 0.35), main * 0.85),
        ]
        l = w = leaf_w * 1.2
        h = pot_h + leaf_h
    elif label == "cabinet":
        tall = variant == "tall"
        l = rng.uniform(0.6, 1.4)
        w = _jitter(rng, 0.45, 0.1)
        h = rng.uniform(1.6, 2.0) if tall else rng.uniform(0.7, 0.95)
        parts = [
            _part((0, -0.01, h / 2), (l, w - 0.02, h), main),
            _part((-l / 4, w / 2 - 0.01, h / 2), (l / 2 - 0.02, 0.02, h - 0.06), main * 0.92),  # doors
            _part((l / 4, w / 2 - 0.01, h / 2), (l / 2 - 0.02, 0.02, h - 0.06), main * 0.92),
        ]
    elif label == "lamp":
        shade_w = _jitter(rng, 0.38, 0.1)
        h = rng.uniform(1.4, 1.75)
        pole = _vary_color(rng, (0.25, 0.25, 0.25), 0.1)
        parts = [
            _part((0, 0, 0.015), (0.3, 0.3, 0.03), pole),
            _part((0, 0, (h - 0.3) / 2), (0.04, 0.04, h - 0.3), pole),
            _part((0, 0, h - 0.16), (shade_w, shade_w, 0.32), main),
        ]
        l = w = shade_w
    elif label == "laptop":
        l, w = _jitter(rng, 0.34, 0.06), _jitter(rng, 0.24, 0.05)
        screen_h = w * 0.95
        parts = [
            _part((0, 0.01, 0.01), (l, w - 0.02, 0.02), main),
            _part((0, -w / 2 + 0.01, 0.02 + screen_h / 2), (l, 0.02, screen_h), main),
            _part((0, -w / 2 + 0.021, 0.02 + screen_h / 2), (l - 0.02, 0.002, screen_h - 0.02), (0.1, 0.15, 0.3)),
        ]
        h = 0.02 + screen_h
    elif label == "clock":
        d = _jitter(rng, 0.3, 0.15)
        face = _vary_color(rng, (0.95, 0.95, 0.9), 0.04)
        parts = [
            _part((0, 0, d / 2), (d, 0.05, d), main),
            _part((0, 0.026, d / 2), (d * 0.8, 0.002, d * 0.8), face),
            _part((0, 0.028, d * 0.6), (0.015, 0.002, d * 0.3), (0.05, 0.05, 0.05)),  # hand
        ]
        l, w, h = d, 0.05, d
    elif label == "vase":
        wv, h = _jitter(rng, 0.14, 0.2), _jitter(rng, 0.3, 0.25)
        parts = [
            _part((0, 0, h * 0.35), (wv, wv, h * 0.7), main),
            _part((0, 0, h * 0.85), (wv * 0.55, wv * 0.55, h * 0.3), main * 0.95),
        ]
        l = w = wv
    else:  # pragma: no cover - every class has a builder
        raise ValueError(f"no builder for class {label!r}")
    return parts, main


def _finish_parts(parts: list[Box]) -> tuple[np.ndarray, list[Box], np.ndarray]:
    """Bounding-box size of bottom-origin parts, the parts re-centred on it, and its centre offset."""
    lo = np.min([p.center - p.size / 2 for p in parts], axis=0)
    hi = np.max([p.center + p.size / 2 for p in parts], axis=0)
    mid = (lo + hi) / 2
    size = hi - lo
    centred = [Box(p.center - mid, p.size.copy(), np.clip(p.color, 0, 1)) for p in parts]
    return size, centred, mid


# ----------------------------------------------------------------------------- room furnishing

ROOM_KINDS = ("living room", "kitchen", "bedroom", "office", "dining room", "bathroom")

# kind -> list of (label, placement, min count, max count, variant). Placements:
#   wall: back to a wall; free: anywhere on the floor; corner-ish: near a wall, any yaw;
#   table_group: a table with chairs around it; wall_mount: hung on a wall at a height;
#   on: stands on a table or cabinet already placed in the room.
_ROOM_TEMPLATES: dict[str, list[tuple[str, str, int, int, str]]] = {
    "living room": [
        ("sofa", "wall", 1, 1, ""), ("cabinet", "wall", 1, 2, ""), ("table", "free", 1, 1, "coffee"),
        ("tv", "tv", 1, 1, ""), ("lamp", "near_wall", 0, 2, ""), ("potted plant", "near_wall", 1, 2, ""),
        ("chair", "wall", 0, 2, ""), ("clock", "wall_mount", 0, 1, ""), ("vase", "on", 0, 1, ""),
        ("laptop", "on", 0, 1, ""),
    ],
    "kitchen": [
        ("refrigerator", "wall", 1, 1, ""), ("oven", "wall", 1, 1, ""), ("sink", "wall", 1, 1, ""),
        ("cabinet", "wall", 1, 3, ""), ("table_group", "table_group", 0, 1, ""), ("microwave", "on", 1, 1, ""),
        ("clock", "wall_mount", 0, 1, ""), ("potted plant", "near_wall", 0, 1, ""), ("vase", "on", 0, 1, ""),
    ],
    "bedroom": [
        ("bed", "wall", 1, 1, ""), ("cabinet", "wall", 1, 2, "tall"), ("lamp", "near_wall", 1, 1, ""),
        ("chair", "wall", 0, 1, ""), ("tv", "tv", 0, 1, ""), ("clock", "wall_mount", 0, 1, ""),
        ("potted plant", "near_wall", 0, 1, ""), ("vase", "on", 0, 1, ""),
    ],
    "office": [
        ("desk_group", "desk_group", 1, 2, ""), ("cabinet", "wall", 1, 2, ""), ("laptop", "on", 1, 2, ""),
        ("lamp", "near_wall", 0, 1, ""), ("potted plant", "near_wall", 0, 2, ""), ("clock", "wall_mount", 0, 1, ""),
        ("tv", "wall_tv", 0, 1, ""),
    ],
    "dining room": [
        ("table_group", "table_group", 1, 1, ""), ("cabinet", "wall", 1, 2, ""), ("vase", "on", 0, 1, ""),
        ("lamp", "near_wall", 0, 1, ""), ("clock", "wall_mount", 0, 1, ""), ("potted plant", "near_wall", 0, 2, ""),
    ],
    "bathroom": [
        ("toilet", "wall", 1, 1, ""), ("sink", "wall", 1, 1, ""), ("cabinet", "wall", 0, 1, ""),
        ("potted plant", "near_wall", 0, 1, ""),
    ],
}


# Categories that a home usually has once: a second instance in the scene is placed only
# with probability 1 - SINGLETON_SKIP, so many categories stay unique (questions that name
# one object need a category with exactly one instance).
SINGLETON_PRONE = frozenset({"sofa", "bed", "tv", "toilet", "sink", "refrigerator", "microwave", "oven", "lamp",
                             "laptop", "clock", "vase"})
SINGLETON_SKIP = 0.75


@dataclass
class _Placed:
    """Placement-time record of an object's world geometry."""

    footprint: np.ndarray  # (4, 2)
    z0: float
    z1: float


class _RoomFurnisher:
    """Rejection-sampling placement inside one room, against everything placed so far."""

    def __init__(self, rng, room_index, room: SceneRoom, doors: list[Door], obstacles_xy, placed, objects, next_id):
        self.rng = rng
        self.room_index = room_index
        self.room = room
        self.lo = room.min_xy
        self.hi = room.max_xy
        self.doors = doors
        self.corridors = obstacles_xy  # list of (a, b, radius) walking lines that must stay free
        self.placed: list[_Placed] = placed
        self.objects: list[SceneObject] = objects
        self.next_id = next_id

    # -- validity --------------------------------------------------------------------------
    def _free(self, fp: np.ndarray, z0: float, z1: float, ignore_zone: bool = False) -> bool:
        if np.any(fp < self.lo - 1e-9) or np.any(fp > self.hi + 1e-9):
            return False
        if not ignore_zone and z0 < 2.0:
            for a, b, r in self.corridors:
                if segment_polygon_distance(a, b, fp) < r:
                    return False
        for d in self.doors:  # nothing in front of or inside a doorway, at any height below the lintel
            half = d.width / 2 + 0.15
            if d.axis == 0:
                zone = np.array([[d.center[0] - half, d.center[1] - 0.7], [d.center[0] + half, d.center[1] - 0.7],
                                 [d.center[0] + half, d.center[1] + 0.7], [d.center[0] - half, d.center[1] + 0.7]])
            else:
                zone = np.array([[d.center[0] - 0.7, d.center[1] - half], [d.center[0] + 0.7, d.center[1] - half],
                                 [d.center[0] + 0.7, d.center[1] + half], [d.center[0] - 0.7, d.center[1] + half]])
            if z0 < DOOR_HEIGHT + 0.05 and polygons_overlap(fp, zone):
                return False
        for p in self.placed:
            if z0 < p.z1 - 1e-6 and p.z0 < z1 - 1e-6 and polygons_overlap(fp, p.footprint):
                return False
        return True

    def _add(self, label, parts, color, center_xy, z_bottom, yaw, support) -> SceneObject | None:
        # ``center_xy`` is the centre of the parts' bounding box (the oriented box of the object).
        size, centred, _ = _finish_parts(parts)
        center = np.array([center_xy[0], center_xy[1], z_bottom + size[2] / 2])
        fp = box_footprint(center[:2], size[:2], yaw)
        if not self._free(fp, z_bottom, z_bottom + size[2], ignore_zone=support.startswith("on:")):
            return None
        obj = SceneObject(self.next_id, label, center, size, float(_wrap(yaw)), color, centred, self.room_index, support)
        self.next_id += 1
        self.objects.append(obj)
        self.placed.append(_Placed(fp, z_bottom, z_bottom + size[2]))
        return obj

    # -- strategies ------------------------------------------------------------------------
    def _wall_pose(self, depth: float, length: float, gap: float) -> tuple[np.ndarray, float]:
        """A point ``gap`` off a random wall with the object's back (local -y) to it."""
        side = int(self.rng.integers(4))
        lo, hi = self.lo, self.hi
        if side == 0:  # south wall, facing +y
            x = self.rng.uniform(lo[0] + length / 2, hi[0] - length / 2)
            return np.array([x, lo[1] + gap + depth / 2]), 0.0
        if side == 1:  # north wall, facing -y
            x = self.rng.uniform(lo[0] + length / 2, hi[0] - length / 2)
            return np.array([x, hi[1] - gap - depth / 2]), math.pi
        if side == 2:  # west wall, facing +x
            y = self.rng.uniform(lo[1] + length / 2, hi[1] - length / 2)
            return np.array([lo[0] + gap + depth / 2, y]), -math.pi / 2
        y = self.rng.uniform(lo[1] + length / 2, hi[1] - length / 2)  # east wall, facing -x
        return np.array([hi[0] - gap - depth / 2, y]), math.pi / 2

    def place_wall(self, label, variant="", tries=40, gap=None, z_bottom=0.0, support="floor"):
        parts, color = build_parts(label, self.rng, variant)
        size, _, _ = _finish_parts(parts)
        if size[0] > (self.hi - self.lo).min() - 0.1:
            return None
        for _ in range(tries):
            g = self.rng.uniform(0.01, 0.06) if gap is None else gap
            xy, yaw = self._wall_pose(size[1], size[0], g)
            obj = self._add(label, parts, color, xy, z_bottom, yaw, support)
            if obj is not None:
                return obj
        return None

    def place_near_wall(self, label, variant="", tries=40):
        parts, color = build_parts(label, self.rng, variant)
        size, _, _ = _finish_parts(parts)
        for _ in range(tries):
            xy, yaw = self._wall_pose(size[1], size[0], self.rng.uniform(0.05, 0.3))
            yaw += self.rng.uniform(-0.4, 0.4)
            obj = self._add(label, parts, color, xy, 0.0, yaw, "floor")
            if obj is not None:
                return obj
        return None

    def place_free(self, label, variant="", tries=60):
        parts, color = build_parts(label, self.rng, variant)
        size, _, _ = _finish_parts(parts)
        margin = max(size[0], size[1]) / 2 + 0.4
        if np.any(self.hi - self.lo < 2 * margin):
            return None
        for _ in range(tries):
            xy = self.rng.uniform(self.lo + margin, self.hi - margin)
            yaw = float(self.rng.integers(4)) * math.pi / 2 + self.rng.uniform(-0.15, 0.15)
            obj = self._add(label, parts, color, xy, 0.0, yaw, "floor")
            if obj is not None:
                return obj
        return None

    def place_on(self, label, supports: list[SceneObject], variant="", tries=30):
        if not supports:
            return None
        parts, color = build_parts(label, self.rng, variant)
        size, _, _ = _finish_parts(parts)
        for _ in range(tries):
            sup = supports[int(self.rng.integers(len(supports)))]
            room_x = sup.size[0] - size[0]
            room_y = sup.size[1] - size[1]
            if room_x < 0 or room_y < 0:
                continue
            local = np.array([self.rng.uniform(-room_x / 2, room_x / 2), self.rng.uniform(-room_y / 2, room_y / 2)])
            xy = sup.center[:2] + rot2(sup.yaw) @ local
            yaw = sup.yaw + (self.rng.uniform(-0.3, 0.3) if label in ("laptop", "vase") else 0.0)
            top = sup.center[2] + sup.size[2] / 2
            # Small objects on a support do not block the floor corridors, but still must not collide.
            obj = self._add(label, parts, color, xy, top, yaw, f"on:{sup.instance_id}")
            if obj is not None:
                return obj
        return None

    def place_wall_mount(self, label, variant="", z_range=(1.6, 2.0), tries=40):
        parts, color = build_parts(label, self.rng, variant)
        size, _, _ = _finish_parts(parts)
        for _ in range(tries):
            z_bottom = self.rng.uniform(*z_range)
            if z_bottom + size[2] > self.room.height - 0.05:
                continue
            xy, yaw = self._wall_pose(size[1], size[0], 0.005)
            obj = self._add(label, parts, color, xy, z_bottom, yaw, "wall")
            if obj is not None:
                return obj
        return None

    def place_table_group(self, n_chairs: int, variant: str = "", desk: bool = False) -> list[SceneObject]:
        """A table (free-standing, or a desk against a wall) with chairs facing it."""
        table = self.place_wall("table", "desk", gap=0.02) if desk else self.place_free("table", variant)
        if table is None:
            return []
        out = [table]
        c, s = math.cos(table.yaw), math.sin(table.yaw)
        ax, ay = np.array([c, s]), np.array([-s, c])  # table's local x and y in the world
        l, w = table.size[0], table.size[1]
        # Chair seats: along the long sides first, then the ends; a desk only has its front (+y).
        slots: list[tuple[np.ndarray, np.ndarray]] = []  # (offset from table centre, direction to face)
        sides = [1] if desk else [1, -1]
        for k in (0, -1, 1):
            for sy in sides:
                if k == 0 or l > 1.3:
                    slots.append((ax * k * l * 0.28 + ay * sy * (w / 2 + 0.36), -ay * sy))
        if not desk:
            for sx in (1, -1):
                slots.append((ax * sx * (l / 2 + 0.36), -ax * sx))
        for offset, facing in slots[:n_chairs] if desk else slots:
            if len(out) - 1 >= n_chairs:
                break
            parts, color = build_parts("chair", self.rng)
            # Chair front is local +y: yaw such that R(yaw) @ (0, 1) = facing.
            yaw = math.atan2(-facing[0], facing[1]) + self.rng.uniform(-0.15, 0.15)
            xy = table.center[:2] + offset + self.rng.uniform(-0.05, 0.05, size=2)
            chair = self._add("chair", parts, color, xy, 0.0, yaw, "floor")
            if chair is not None:
                out.append(chair)
        return out

    def furnish(self, kind: str) -> None:
        tables_and_cabinets: list[SceneObject] = []
        for label, placement, lo, hi, variant in _ROOM_TEMPLATES[kind]:
            count = int(self.rng.integers(lo, hi + 1))
            for _ in range(count):
                if label in SINGLETON_PRONE and any(o.label == label for o in self.objects):
                    if self.rng.random() < SINGLETON_SKIP:
                        continue
                made: list[SceneObject] = []
                if placement == "wall":
                    o = self.place_wall(label, variant)
                    made = [o] if o else []
                elif placement == "near_wall":
                    o = self.place_near_wall(label, variant)
                    made = [o] if o else []
                elif placement == "free":
                    o = self.place_free(label, variant)
                    made = [o] if o else []
                elif placement == "table_group":
                    made = self.place_table_group(int(self.rng.integers(2, 7)))
                elif placement == "desk_group":
                    made = self.place_table_group(1, desk=True)
                elif placement == "wall_mount":
                    o = self.place_wall_mount(label, variant)
                    made = [o] if o else []
                elif placement == "wall_tv":
                    o = self.place_wall_mount("tv", "", z_range=(1.0, 1.4))
                    made = [o] if o else []
                elif placement == "tv":
                    # On a low cabinet (with a stand) or hung on the wall.
                    lows = [s for s in tables_and_cabinets if s.label == "cabinet" and s.size[2] < 1.2]
                    o = self.place_on("tv", lows, "stand") if lows and self.rng.random() < 0.6 else None
                    if o is None:
                        o = self.place_wall_mount("tv", "", z_range=(1.0, 1.4))
                    made = [o] if o else []
                elif placement == "on":
                    sups = [s for s in tables_and_cabinets if s.size[2] < 1.2 and s.size[0] > 0.45]
                    o = self.place_on(label, sups, variant)
                    made = [o] if o else []
                for m in made:
                    if m.label in ("table", "cabinet"):
                        tables_and_cabinets.append(m)


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


# ----------------------------------------------------------------------------- scene layout


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
            floor_color=_vary_color(rng, [(0.55, 0.4, 0.28), (0.7, 0.68, 0.62), (0.4, 0.38, 0.36)][int(rng.integers(3))], 0.08),
            wall_color=_vary_color(rng, (0.86, 0.84, 0.78), 0.1),
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
    placed: list[_Placed] = []
    next_id = 1
    for i, room in enumerate(rooms):
        corridors = [(room.hub, room.hub, HUB_RADIUS)]
        my_doors = [d for d in doors if i in (d.a, d.b)]
        for d in my_doors:
            corridors.append((d.center, room.hub, CORRIDOR_RADIUS))
        furnisher = _RoomFurnisher(rng, i, room, my_doors, corridors, placed, objects, next_id)
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
