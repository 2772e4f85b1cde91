"""The scene's data model: boxes, objects, rooms, doors and the scene, with their JSON round trip.

Each object is a union of axis-aligned boxes in its own frame (its *parts*) and has an
oriented 3D bounding box: ``center`` (world, metres), ``size`` (extent along its local
x, y, z), ``yaw`` (radians about world z). Local +y is the object's front; local z is
world z. World frame: REP-103 (x, y on the floor, z up), metres; floor at z = 0.
The scenes themselves are made by ``sim.scene.generate_scene``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spatial_ttt_ros.classes import CLASS_TO_ID
from spatial_ttt_ros.sim.geometry2d import box_footprint

WALL_THICKNESS = 0.05  # metres: each room owns a 5 cm wall on each side of its grid cell
DOOR_HEIGHT = 2.1  # metres


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

