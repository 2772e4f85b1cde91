"""``spatial-ttt convert``: an RGB-D folder (rgb/, depth/, K.txt, poses.txt) -> rosbag2.

Folder layout (as ../shared/data/hololens_office):

- ``rgb/NAME.jpg|png``   colour, 8-bit BGR as OpenCV reads it
- ``depth/NAME.png``     uint16 millimetres, 0 = no reading, same size as colour
- ``K.txt``              3x3 pinhole intrinsics
- ``poses.txt``          one row per frame in sorted-name order: the 4x4 camera-to-world
                         matrix, row-major (16 numbers); camera axes optical; world +y up

The world is rotated by +90 deg about x so that its +y (up) becomes REP-103's +z;
frames get a steady rate (the folder has no stamps). The bag has the simulator's
topics except labels and instances.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from spatial_ttt_ros.sim.bag_writer import STORAGES, BagWriter, stamp_ns

# world (y up) -> REP-103 world (z up): x' = x, y' = -z, z' = y
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rgbd", required=True, help="folder with rgb/, depth/, K.txt, poses.txt")
    parser.add_argument("--out", required=True, help="bag folder to write")
    parser.add_argument("--rate", type=float, default=5.0, help="frame rate to stamp the frames with, Hz (default 5)")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="rosbag2 storage (default mcap)")
    parser.add_argument("--max-frames", type=int, default=None, help="convert only the first N frames")
    parser.add_argument("--force", action="store_true", help="replace an existing bag at --out")


def read_rgbd_folder(folder: str | Path) -> tuple[np.ndarray, np.ndarray, list[Path], list[Path]]:
    """(K (3, 3), poses (N, 4, 4) in REP-103 world, colour paths, depth paths); ValueError on a bad layout."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"RGB-D folder {root} does not exist")
    for needed in ("rgb", "depth", "K.txt", "poses.txt"):
        if not (root / needed).exists():
            raise ValueError(f"{root} is not an RGB-D folder: {needed} is missing (need rgb/, depth/, K.txt, poses.txt)")
    try:
        K = np.loadtxt(root / "K.txt", dtype=np.float64).reshape(3, 3)
    except ValueError as exc:
        raise ValueError(f"{root / 'K.txt'} is not a 3x3 matrix: {exc}") from None
    try:
        rows = np.loadtxt(root / "poses.txt", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{root / 'poses.txt'} is not readable as numbers: {exc}") from None
    if rows.shape[1] != 16:
        raise ValueError(f"{root / 'poses.txt'} must have 16 numbers per line, found {rows.shape[1]}")
    colours = sorted(p for p in (root / "rgb").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    depths = sorted(p for p in (root / "depth").iterdir() if p.suffix.lower() == ".png")
    if [p.stem for p in colours] != [p.stem for p in depths]:
        raise ValueError(f"{root}: rgb/ and depth/ do not hold the same frame names")
    if len(colours) != len(rows):
        raise ValueError(f"{root}: {len(colours)} frames but {len(rows)} poses in poses.txt")
    poses = Y_UP_TO_Z_UP[None] @ rows.reshape(-1, 4, 4)
    return K, poses, colours, depths


def run(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.rate) and args.rate > 0):
        raise ValueError(f"--rate must be a positive number of Hz, got {args.rate}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1, got {args.max_frames}")
    K, poses, colours, depths = read_rgbd_folder(args.rgbd)
    out = Path(args.out)
    if out.exists():
        if not args.force:
            raise FileExistsError(f"{out} already exists; pass --force to replace it")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    n = len(colours) if args.max_frames is None else min(args.max_frames, len(colours))
    with BagWriter(out, args.storage, with_labels=False, with_instances=False) as bag:
        for i in range(n):
            bgr = cv2.imread(str(colours[i]), cv2.IMREAD_COLOR)
            depth_mm = cv2.imread(str(depths[i]), cv2.IMREAD_UNCHANGED)
            if bgr is None or depth_mm is None:
                raise ValueError(f"cannot read frame {colours[i].stem} of {args.rgbd}")
            if depth_mm.dtype != np.uint16 or depth_mm.ndim != 2:
                raise ValueError(f"{depths[i]} must be a single-channel uint16 PNG (millimetres)")
            if depth_mm.shape != bgr.shape[:2]:
                raise ValueError(f"frame {colours[i].stem}: depth {depth_mm.shape} and colour {bgr.shape[:2]} differ in size")
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            bag.write_frame(stamp_ns(i, args.rate), rgb, depth_mm.astype(np.float64) / 1000.0, K, poses[i])
    print(f"wrote {n} frames from {args.rgbd} to {out} at {args.rate:g} Hz", file=sys.stderr)
    return 0
