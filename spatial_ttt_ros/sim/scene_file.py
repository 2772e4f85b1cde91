"""Reading the simulator's ground-truth file, ``scene.json`` (written by ``spatial-ttt sim``).

Format 2 (today) keeps the image size apart from the room: ``image_width`` and
``image_height`` are the camera image in pixels, ``room_height_m`` the rooms' ceiling
height in metres, beside ``scene_name, rate_hz, n_frames, K, rooms, doors, walls,
objects, visited_rooms``. Format 1 files (no ``format`` key) had a top-level ``height``
that was the room height (the scene's own ``height`` overwrote the image height) beside
``width``, the image width; ``read_scene_file`` accepts them and returns format 2 keys
(``image_height`` then comes from the principal point, 2 cy + 1 as the simulator sets it, or None).
"""

from __future__ import annotations

import json
from pathlib import Path

SCENE_FILE = "scene.json"
SCENE_FILE_FORMAT = 2


def normalise_scene_doc(doc: dict) -> dict:
    """The document with format 2 keys, whichever format it was written in."""
    doc = dict(doc)
    if int(doc.get("format", 1)) >= 2:
        return doc
    # Format 1: "height" is the room height (metres), "width" the image width (pixels).
    doc["room_height_m"] = doc.pop("height", None)
    doc["image_width"] = doc.pop("width", None)
    K = doc.get("K")
    doc["image_height"] = int(round(2 * K[1][2] + 1)) if K else None  # the simulator puts cy at (h - 1) / 2
    doc["format"] = SCENE_FILE_FORMAT
    return doc


def read_scene_file(path: str | Path) -> dict:
    """scene.json as a dict with format 2 keys (module doc); ValueError naming the file when unreadable."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable scene file ({exc})") from None
    if not isinstance(doc, dict) or "objects" not in doc:
        raise ValueError(f"{path}: not a scene file (no 'objects')")
    return normalise_scene_doc(doc)


def scene_from_doc(doc: dict):
    """The ``Scene`` of a scene.json document (either format)."""
    from spatial_ttt_ros.sim.scene import Scene

    doc = normalise_scene_doc(doc)
    return Scene.from_json({**doc, "height": doc["room_height_m"]})


def find_scene_file(bag: str | Path) -> Path | None:
    """The scene.json that ``spatial-ttt sim`` wrote beside a bag (DIR/bag -> DIR/scene.json), if any."""
    bag = Path(bag)
    folder = bag if bag.is_dir() else bag.parent
    for d in (folder, folder.parent):
        if (d / SCENE_FILE).is_file():
            return d / SCENE_FILE
    return None
