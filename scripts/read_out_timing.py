"""How long the object map's read-out takes (``pipeline.read_out()``, what the node's worker
makes after every frame while no frame waits): one simulated 2-room walk, a read-out after
every frame, p50/p95/max in ms.

    nice -n 10 .venv/bin/python scripts/read_out_timing.py [--frames 300] [--noise noisy]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spatial_ttt_ros.memory.object_map import ObjectMapMemory  # noqa: E402
from spatial_ttt_ros.perception.front_end import FrontEnd  # noqa: E402
from spatial_ttt_ros.pipeline import SpatialMemoryPipeline  # noqa: E402
from spatial_ttt_ros.sim.stream import simulate_stream  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--noise", default=None, help="detector noise preset (e.g. noisy: drift, more instances)")
    args = ap.parse_args()
    s = simulate_stream(seed=7, n_rooms=2, n_frames=args.frames, rate_hz=10.0, width=320, height=240)
    frames = [f for f, _ in s.frames()]
    pipe = SpatialMemoryPipeline(FrontEnd("labels", noise=args.noise, noise_seed=3), ObjectMapMemory())
    times = []
    for f in frames:
        pipe.process(f)
        t0 = time.perf_counter()
        pipe.read_out()
        times.append(time.perf_counter() - t0)
    a = np.asarray(times) * 1e3
    print(f"{len(a)} read-outs ({len(pipe.memory.instances)} instances at the end, noise {args.noise}): "
          f"p50 {np.percentile(a, 50):.2f} ms, p95 {np.percentile(a, 95):.2f} ms, max {a.max():.2f} ms")


if __name__ == "__main__":
    main()
