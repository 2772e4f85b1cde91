"""Furnishing one room by its kind: room templates and rejection-sampling placement.

Placement rules: objects stay inside their room, never interpenetrate (oriented
footprint overlap plus height-interval overlap, i.e. exact for upright boxes),
keep doorways and the camera's walking corridors (doorway -> room hub) free,
and follow real layouts: chairs around tables, beds/sofas/cabinets/fridges with
their backs to walls, microwaves/laptops/vases on tables or cabinets, clocks on
walls, TVs on a cabinet or on a wall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spatial_ttt_ros.sim.furniture import build_parts, finish_parts
from spatial_ttt_ros.sim.geometry2d import box_footprint, polygons_overlap, rot2, segment_polygon_distance
from spatial_ttt_ros.sim.scene_types import DOOR_HEIGHT, Door, SceneObject, SceneRoom


ROOM_KINDS = ("living room", "kitchen", "bedroom", "office", "dining room", "bathroom")

# kind -> list of (label, placement, min count, max count, variant). Placements:
#   wall: back to a wall; free: anywhere on the floor; corner-ish: near a wall, any yaw;
#   table_group: a table with chairs around it; wall_mount: hung on a wall at a height;
#   on: stands on a table or cabinet already placed in the room.
ROOM_TEMPLATES: dict[str, list[tuple[str, str, int, int, str]]] = {
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
class Placed:
    """Placement-time record of an object's world geometry."""

    footprint: np.ndarray  # (4, 2)
    z0: float
    z1: float


class RoomFurnisher:
    """Rejection-sampling placement inside one room, against everything placed so far."""

    def __init__(self, rng, room_index, room: SceneRoom, doors: list[Door], obstacles_xy, placed, objects, next_id):
        self.rng = rng
        self.room_index = room_index
        self.room = room
        self.lo = room.min_xy
        self.hi = room.max_xy
        self.doors = doors
        self.corridors = obstacles_xy  # list of (a, b, radius) walking lines that must stay free
        self.placed: list[Placed] = placed
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
        size, centred, _ = finish_parts(parts)
        center = np.array([center_xy[0], center_xy[1], z_bottom + size[2] / 2])
        fp = box_footprint(center[:2], size[:2], yaw)
        if not self._free(fp, z_bottom, z_bottom + size[2], ignore_zone=support.startswith("on:")):
            return None
        obj = SceneObject(self.next_id, label, center, size, float(_wrap(yaw)), color, centred, self.room_index, support)
        self.next_id += 1
        self.objects.append(obj)
        self.placed.append(Placed(fp, z_bottom, z_bottom + size[2]))
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
        size, _, _ = finish_parts(parts)
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
        size, _, _ = finish_parts(parts)
        for _ in range(tries):
            xy, yaw = self._wall_pose(size[1], size[0], self.rng.uniform(0.05, 0.3))
            yaw += self.rng.uniform(-0.4, 0.4)
            obj = self._add(label, parts, color, xy, 0.0, yaw, "floor")
            if obj is not None:
                return obj
        return None

    def place_free(self, label, variant="", tries=60):
        parts, color = build_parts(label, self.rng, variant)
        size, _, _ = finish_parts(parts)
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
        size, _, _ = finish_parts(parts)
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
        size, _, _ = finish_parts(parts)
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
        for label, placement, lo, hi, variant in ROOM_TEMPLATES[kind]:
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
