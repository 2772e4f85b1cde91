"""The scene inventory: what the memory decodes and what every answer is computed from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class InventoryObject:
    label: str  # canonical class name (classes.py)
    center: np.ndarray  # (3,) world metres, REP-103 (z up)
    size: np.ndarray  # (3,) metres: extent along world x, y, z (axis-aligned box)
    first_seen: float  # seconds since the stream started (stamp of first sighting)
    confidence: float = 1.0  # 0..1
    yaw: float = 0.0  # radians about world z; size is along the yawed axes when non-zero

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, dtype=np.float64).reshape(3)
        self.size = np.asarray(self.size, dtype=np.float64).reshape(3)


@dataclass
class Room:
    """The extent of the space seen so far (one room or several joined)."""

    area_m2: float  # floor area in square metres
    min_xy: np.ndarray  # (2,) world metres, bounding box of the floor
    max_xy: np.ndarray  # (2,)
    polygons: list[np.ndarray] = field(default_factory=list)  # each (N, 2) floor outline, optional


@dataclass
class Inventory:
    objects: list[InventoryObject]
    room: Room | None
    stamp: float = 0.0  # seconds: the memory state this inventory was decoded from
    start_stamp: float = 0.0  # seconds: stamp of the first frame of the stream

    def of_class(self, label: str) -> list[InventoryObject]:
        return [o for o in self.objects if o.label == label]

    def to_json(self) -> dict:
        return {
            "stamp": self.stamp,
            "start_stamp": self.start_stamp,
            "objects": [
                {
                    "label": o.label,
                    "center": [float(v) for v in o.center],
                    "size": [float(v) for v in o.size],
                    "first_seen": float(o.first_seen),
                    "confidence": float(o.confidence),
                    "yaw": float(o.yaw),
                }
                for o in self.objects
            ],
            "room": None
            if self.room is None
            else {
                "area_m2": float(self.room.area_m2),
                "min_xy": [float(v) for v in self.room.min_xy],
                "max_xy": [float(v) for v in self.room.max_xy],
                "polygons": [np.asarray(p).tolist() for p in self.room.polygons],
            },
        }

    @staticmethod
    def from_json(d: dict) -> "Inventory":
        room = d.get("room")
        return Inventory(
            objects=[
                InventoryObject(
                    label=o["label"],
                    center=np.array(o["center"], dtype=np.float64),
                    size=np.array(o["size"], dtype=np.float64),
                    first_seen=float(o["first_seen"]),
                    confidence=float(o.get("confidence", 1.0)),
                    yaw=float(o.get("yaw", 0.0)),
                )
                for o in d["objects"]
            ],
            room=None
            if room is None
            else Room(
                area_m2=float(room["area_m2"]),
                min_xy=np.array(room["min_xy"], dtype=np.float64),
                max_xy=np.array(room["max_xy"], dtype=np.float64),
                polygons=[np.array(p, dtype=np.float64) for p in room.get("polygons", [])],
            ),
            stamp=float(d.get("stamp", 0.0)),
            start_stamp=float(d.get("start_stamp", 0.0)),
        )
