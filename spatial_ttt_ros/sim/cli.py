"""``spatial-ttt sim``: a simulated multi-room stream as a rosbag2, with questions and ground truth.

Writes into ``--out DIR``:

- ``DIR/bag``        rosbag2 (mcap or sqlite3) with the topics of ``spatial_ttt_ros.topics``
- ``DIR/qa.json``    VSI-Bench records (id, scene_name, question_type, question, options, ground_truth)
- ``DIR/scene.json`` ground truth: rooms (floor polygon, area), doors, walls, every object
  (label, class_id, centre, size l/w/h, yaw, parts, first_seen_frame, first_seen seconds or null),
  the intrinsics, the image size (``image_width``, ``image_height``), the room height
  (``room_height_m``), the rate and the rooms the camera visited; read it with
  ``sim/scene_file.py`` (which also accepts the older format).

Same arguments, same bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import time
from pathlib import Path

from spatial_ttt_ros.sim.bag_writer import STORAGES, write_stream
from spatial_ttt_ros.sim.questions import generate_questions
from spatial_ttt_ros.sim.scene_file import SCENE_FILE_FORMAT
from spatial_ttt_ros.sim.stream import MIN_SIZE, SimStream, simulate_stream

MAX_ROOMS = 64
MAX_SIDE = 4096


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H); ValueError with a clear message otherwise, or when smaller than MIN_SIZE."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"--size must look like WIDTHxHEIGHT (e.g. 160x120), got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if w < MIN_SIZE or h < MIN_SIZE:
        raise ValueError(f"--size {w}x{h} is too small: width and height must be at least {MIN_SIZE}")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise ValueError(f"--size {w}x{h} is too large: width and height must be at most {MAX_SIDE}")
    return w, h


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="scene, walk and question seed (default 0)")
    parser.add_argument("--rooms", type=int, default=3, help="number of rooms (default 3)")
    parser.add_argument("--frames", type=int, default=600, help="number of frames (default 600)")
    parser.add_argument("--rate", type=float, default=10.0, help="frame rate in Hz (default 10)")
    parser.add_argument("--size", default="160x120", help="image size WIDTHxHEIGHT (default 160x120)")
    parser.add_argument("--out", required=True, help="output folder (gets bag/, qa.json, scene.json)")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="rosbag2 storage (default mcap)")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder's outputs")
    parser.add_argument("--questions-per-type", type=int, default=8,
                        help="at most this many questions per task type (default 8)")


def scene_name(seed: int, rooms: int) -> str:
    return f"sim_s{seed}_r{rooms}"


def validate(args: argparse.Namespace) -> tuple[int, int]:
    """Check arguments; returns (width, height). Raises ValueError / FileExistsError with one-line messages."""
    if args.rooms < 1:
        raise ValueError(f"--rooms must be at least 1, got {args.rooms}")
    if args.rooms > MAX_ROOMS:
        raise ValueError(f"--rooms must be at most {MAX_ROOMS}, got {args.rooms}")
    if args.frames < 1:
        raise ValueError(f"--frames must be at least 1, got {args.frames}")
    if not (math.isfinite(args.rate) and args.rate > 0):
        raise ValueError(f"--rate must be a positive number of Hz, got {args.rate}")
    if args.questions_per_type < 0:
        raise ValueError(f"--questions-per-type must be >= 0, got {args.questions_per_type}")
    size = parse_size(args.size)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a folder")
    if out.exists() and not args.force:
        raise FileExistsError(f"output folder {out} already exists; pass --force to replace its outputs")
    return size


def scene_json(stream: SimStream, name: str) -> dict:
    """The ground-truth document written to scene.json."""
    doc = stream.scene.to_json()
    first_frame = stream.first_seen_frame
    first_time = stream.first_seen
    for obj in doc["objects"]:
        iid = obj["instance_id"]
        obj["first_seen_frame"] = first_frame.get(iid)
        obj["first_seen"] = None if iid not in first_time else round(first_time[iid], 6)
    visited = stream.visited_rooms
    # The scene's own "height" is the room height: say so, apart from the image size
    # (format 1 wrote both as top-level width/height and the room height won).
    room_height = doc.pop("height")
    return {
        "format": SCENE_FILE_FORMAT,
        "scene_name": name,
        "rate_hz": stream.rate_hz,
        "n_frames": stream.n_frames,
        "image_width": stream.width,
        "image_height": stream.height,
        "room_height_m": room_height,
        "K": [[round(float(v), 9) for v in row] for row in stream.K],
        "min_visible_pixels": stream.min_pixels,
        "visited_rooms": visited,
        "visited_area_m2": round(sum(stream.scene.rooms[r].area_m2 for r in visited), 6),
        **doc,
    }


def run(args: argparse.Namespace) -> int:
    width, height = validate(args)
    out = Path(args.out)
    bag_path = out / "bag"
    if args.force:
        # Only our own outputs are removed, never anything else the folder may hold.
        if bag_path.exists():
            shutil.rmtree(bag_path)
        for f in ("qa.json", "scene.json"):
            (out / f).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    name = scene_name(args.seed, args.rooms)

    t0 = time.perf_counter()
    stream = simulate_stream(args.seed, args.rooms, args.frames, args.rate, width, height)
    step = max(1, args.frames // 10)

    def progress(i: int) -> None:
        if (i + 1) % step == 0 or i + 1 == args.frames:
            print(f"\rrendered {i + 1}/{args.frames} frames", end="", file=sys.stderr, flush=True)

    write_stream(stream, bag_path, args.storage, progress=progress)
    print(file=sys.stderr)
    elapsed = time.perf_counter() - t0

    records = generate_questions(stream.scene, stream.first_seen, args.seed, name,
                                 visited_rooms=stream.visited_rooms, per_type=args.questions_per_type)
    (out / "qa.json").write_text(json.dumps(records, indent=1) + "\n")
    (out / "scene.json").write_text(json.dumps(scene_json(stream, name), indent=1) + "\n")
    print(f"{name}: {len(stream.scene.rooms)} rooms, {len(stream.scene.objects)} objects "
          f"({len(stream.first_seen)} seen), {args.frames} frames at {width}x{height} "
          f"in {elapsed:.1f} s ({args.frames / max(elapsed, 1e-9):.0f} fps), {len(records)} questions -> {out}")
    return 0
