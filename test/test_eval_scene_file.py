"""scene.json keys (issue 14f): the image size apart from the room height, and old files
(a top-level ``height`` that was the room's) still read."""

from __future__ import annotations

import json

from spatial_ttt_ros.cli import main
from spatial_ttt_ros.sim.scene_file import find_scene_file, normalise_scene_doc, read_scene_file, scene_from_doc


def test_scene_json_keys_and_old_format(tmp_path):
    out = tmp_path / "sim"
    assert main(["sim", "--seed", "2", "--rooms", "1", "--frames", "4", "--size", "64x48",
                 "--out", str(out)]) == 0
    scene = json.loads((out / "scene.json").read_text())
    assert scene["format"] == 2 and "height" not in scene and "width" not in scene
    assert (scene["image_width"], scene["image_height"]) == (64, 48) and 2.0 < scene["room_height_m"] < 4.0
    assert scene_from_doc(scene).height == scene["room_height_m"]
    assert find_scene_file(out / "bag") == out / "scene.json"
    assert read_scene_file(out / "scene.json") == scene

    old = {k: v for k, v in scene.items() if k not in ("format", "image_width", "image_height", "room_height_m")}
    old.update(width=64, height=scene["room_height_m"])  # what format 1 wrote
    back = normalise_scene_doc(old)
    assert (back["image_width"], back["image_height"], back["room_height_m"]) == (64, 48, scene["room_height_m"])
    assert scene_from_doc(old).height == scene["room_height_m"]
