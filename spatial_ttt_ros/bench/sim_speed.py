"""``spatial-ttt bench sim``: simulator speed in frames per second.

For each image size: render-only speed (colour, depth, labels, instances) and the
full generation speed (render + serialise + write an mcap bag), single process.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from spatial_ttt_ros.bench.results import write_json
from spatial_ttt_ros.sim.bag_writer import write_stream
from spatial_ttt_ros.sim.cli import parse_size
from spatial_ttt_ros.sim.stream import simulate_stream


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=200, help="frames per measurement (default 200)")
    parser.add_argument("--rooms", type=int, default=4, help="rooms in the scene (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--sizes", nargs="+", default=["160x120", "320x240"], help="image sizes WxH")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")


def measure(seed: int, rooms: int, frames: int, rate: float, width: int, height: int) -> dict:
    t0 = time.perf_counter()
    stream = simulate_stream(seed, rooms, frames, rate, width, height)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in stream.frames():
        pass
    render = time.perf_counter() - t0
    stream = simulate_stream(seed, rooms, frames, rate, width, height)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_stream(stream, Path(tmp) / "bag", "mcap")
        bag = time.perf_counter() - t0
    return {
        "size": f"{width}x{height}", "frames": frames, "rooms": rooms, "boxes": stream.renderer.n_boxes,
        "setup_s": round(setup, 3), "render_fps": round(frames / render, 1), "bag_fps": round(frames / bag, 1),
        "minutes_per_10k_frames": round(10_000 / (frames / bag) / 60, 2),
    }


def run(args: argparse.Namespace) -> int:
    if args.frames < 1:
        raise ValueError(f"--frames must be at least 1, got {args.frames}")
    results = []
    for size in args.sizes:
        w, h = parse_size(size)
        r = measure(args.seed, args.rooms, args.frames, args.rate, w, h)
        results.append(r)
        print(f"{r['size']:>9}: render {r['render_fps']:7.1f} fps, render+bag {r['bag_fps']:7.1f} fps "
              f"({r['minutes_per_10k_frames']} min per 10,000 frames; {r['boxes']} boxes, setup {r['setup_s']} s)")
    if args.json:
        doc = {"benchmark": "sim_speed", "machine": platform.processor() or platform.machine(),
               "python": platform.python_version(), "results": results}
        write_json(args.json, doc)
    return 0
