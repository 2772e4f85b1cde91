"""Training / evaluation data: simulated token streams with ground truth, cached on disk.

A *token stream* is what the memory sees (per-frame ego, geometry grid and object
tokens, exactly as ``perception.tokens.Tokenizer`` makes them, after the detector
noise model for ``noise="noisy"``) plus what it should decode (the scene's objects
with their first-seen times and the floor area seen so far). Rendering is the slow
part, so each (seed, rooms, frames, noise) stream is rendered once and cached as an
``.npz`` (plain arrays, loaded with ``allow_pickle=False``; never pickle).

Seeds: training uses ``TRAIN_SEED_BASE + i``; ``HELD_OUT_SEEDS`` are reserved for
benchmarks and quick evals and are refused by ``build_stream(..., split="train")``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spatial_ttt_ros.classes import CLASS_TO_ID, CLASSES

HELD_OUT_SEEDS = range(9000, 9010)  # never used for training (bench/quality.py evaluates on these)
VAL_SEEDS = range(8000, 8010)  # for tuning inference settings (threshold); never trained on, not the benchmark's
TRAIN_SEED_BASE = 0

# Low-resolution rendering is enough for the geometry grid and visibility.
RENDER_WIDTH = 160
RENDER_HEIGHT = 120
RATE_HZ = 2.0  # training streams are rendered at the model's keyframe rate (MemoryConfig.keyframe_hz)
MIN_PIXELS = 20  # an instance with fewer visible pixels is neither detected nor "seen"


@dataclass
class TokenStream:
    """One stream's model inputs (numpy, frame-major) and ground truth."""

    ego: np.ndarray  # [F, E] float32
    geometry: np.ndarray  # [F, GH, GW, G] float32
    objects: np.ndarray  # [F, M, O] float32
    object_valid: np.ndarray  # [F, M] bool
    stamps: np.ndarray  # [F] float64 seconds
    cam_pos: np.ndarray  # [F, 3] float64 camera position (world), for normalisation
    # ground truth, one row per scene object (instance)
    gt_label: np.ndarray  # [N] int64 class index (0..C-1)
    gt_center: np.ndarray  # [N, 3] float64 world
    gt_size: np.ndarray  # [N, 3] float64 axis-aligned world extent
    gt_first_seen: np.ndarray  # [N] float64 seconds since stream start; inf = never seen
    visible: np.ndarray  # [F, N] bool: object visible in the frame (>= MIN_PIXELS instance pixels)
    cam_room: np.ndarray  # [F] int64 room index of the camera (-1 = in a wall / doorway)
    room_min_xy: np.ndarray  # [R, 2] float64 floor bbox per room
    room_max_xy: np.ndarray  # [R, 2]
    room_area: np.ndarray  # [R] float64 m^2
    meta: dict

    def __len__(self) -> int:
        return int(self.stamps.shape[0])

    def save(self, path: str | Path) -> None:
        arrays = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "meta"}
        arrays["meta_json"] = np.frombuffer(json.dumps(self.meta).encode(), dtype=np.uint8)
        np.savez_compressed(path, **arrays)

    @staticmethod
    def load(path: str | Path) -> "TokenStream":
        with np.load(path, allow_pickle=False) as z:
            kw = {k: z[k] for k in z.files if k != "meta_json"}
            meta = json.loads(bytes(z["meta_json"]).decode())
        return TokenStream(meta=meta, **kw)



def aabb_extent(size: np.ndarray, yaw: float) -> np.ndarray:
    """World axis-aligned extent (x, y, z) of a box of local size (l, w, h) yawed about z."""
    c, s = abs(np.cos(yaw)), abs(np.sin(yaw))
    return np.array([c * size[0] + s * size[1], s * size[0] + c * size[1], size[2]])


def build_stream(
    seed: int,
    n_rooms: int,
    n_frames: int,
    noise: str = "noisy",
    rate_hz: float = RATE_HZ,
    width: int = RENDER_WIDTH,
    height: int = RENDER_HEIGHT,
    grid: tuple[int, int] = (4, 4),
    max_objects: int = 16,
    split: str = "train",
) -> TokenStream:
    """Render a simulator stream and turn it into tokens + ground truth.

    Tokens come from ``perception.front_end.FrontEnd(source="labels", noise=noise)`` (label
    image -> connected components -> lifting -> detector noise -> tokenizer); "seen"
    (for first-seen targets) uses the simulator's instance image with
    ``sim.stream.min_visible_pixels``.
    """
    from spatial_ttt_ros.frames import CameraFrame
    from spatial_ttt_ros.perception.front_end import FrontEnd
    from spatial_ttt_ros.perception.label_image import instance_ids_of
    from spatial_ttt_ros.sim.render import Renderer
    from spatial_ttt_ros.sim.scene import generate_scene
    from spatial_ttt_ros.sim.stream import min_visible_pixels
    from spatial_ttt_ros.sim.trajectory import generate_trajectory

    if split == "train" and (seed in HELD_OUT_SEEDS or seed in VAL_SEEDS):
        raise ValueError(f"seed {seed} is held out for evaluation (HELD_OUT_SEEDS/VAL_SEEDS) and must not be trained on")
    scene = generate_scene(seed, n_rooms)
    traj = generate_trajectory(scene, n_frames, rate_hz, seed)
    renderer = Renderer(scene, width, height)
    # The same front-end as the pipeline and the benchmarks (label image -> detections ->
    # lifting -> noise -> tokens), so training tokens are distributed like test tokens.
    front = FrontEnd(source="labels", grid=grid, max_objects=max_objects, noise=noise, noise_seed=seed + 7919)
    min_px = min_visible_pixels(width, height)
    ids = [o.instance_id for o in scene.objects]
    col = {iid: j for j, iid in enumerate(ids)}
    n = len(traj)
    visible = np.zeros((n, len(ids)), dtype=bool)
    ego, geo, obj, val, stamps, cam = [], [], [], [], [], []
    t0 = float(traj[0][0])
    for i, (stamp, T) in enumerate(traj):
        _, depth, labels, inst = renderer.render(T, shade=False)
        frame = CameraFrame(stamp=float(stamp), depth=depth, K=renderer.K, T_world_cam=T, labels=labels, frame_index=i)
        for iid in instance_ids_of(inst, labels, min_px):
            visible[i, col[iid]] = True
        _, tok = front.process(frame)
        ego.append(tok.ego), geo.append(tok.geometry), obj.append(tok.objects), val.append(tok.object_valid)
        stamps.append(float(stamp))
        cam.append(np.asarray(T)[:3, 3])
    first = np.where(visible.any(0), np.asarray(stamps)[visible.argmax(0)] - t0, np.inf)
    return TokenStream(
        ego=np.stack(ego).astype(np.float32),
        geometry=np.stack(geo).astype(np.float32),
        objects=np.stack(obj).astype(np.float32),
        object_valid=np.stack(val),
        stamps=np.asarray(stamps, dtype=np.float64),
        cam_pos=np.stack(cam).astype(np.float64),
        gt_label=np.array([CLASS_TO_ID[o.label] - 1 for o in scene.objects], dtype=np.int64),
        gt_center=np.array([o.center for o in scene.objects], dtype=np.float64).reshape(-1, 3),
        gt_size=np.array([aabb_extent(o.size, o.yaw) for o in scene.objects], dtype=np.float64).reshape(-1, 3),
        gt_first_seen=first.astype(np.float64),
        visible=visible,
        cam_room=np.array([scene.room_of(c[:2]) for c in cam], dtype=np.int64),
        room_min_xy=np.array([r.min_xy for r in scene.rooms], dtype=np.float64),
        room_max_xy=np.array([r.max_xy for r in scene.rooms], dtype=np.float64),
        room_area=np.array([r.area_m2 for r in scene.rooms], dtype=np.float64),
        meta={"seed": seed, "n_rooms": n_rooms, "n_frames": n_frames, "noise": noise, "rate_hz": rate_hz,
              "width": width, "height": height, "grid": list(grid), "max_objects": max_objects},
    )


DATA_VERSION = 2  # bump when the token recipe changes (invalidates cached streams)


def stream_key(**kw) -> str:
    return f"v{DATA_VERSION}_" + "_".join(f"{k}{kw[k]}" for k in sorted(kw)).replace(" ", "").replace(",", "x").replace("(", "").replace(")", "")


def get_stream(cache_dir: str | Path | None = None, **kw) -> TokenStream:
    """``build_stream(**kw)``, cached as ``cache_dir/<key>.npz`` (no pickle)."""
    if cache_dir is None:
        return build_stream(**kw)
    path = Path(cache_dir) / f"stream_{stream_key(**kw)}.npz"
    if path.is_file():
        return TokenStream.load(path)
    s = build_stream(**kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    s.save(tmp)
    tmp.replace(path)
    return s


def training_recipe(n_streams: int, max_rooms: int, n_frames: int, noise: str) -> list[dict]:
    """The training streams: seeds TRAIN_SEED_BASE.., rooms cycling 1..max_rooms, noise preset(s)."""
    out = []
    for i in range(n_streams):
        nz = noise if noise != "mixed" else ("noisy" if i % 2 == 0 else "exact")
        out.append({"seed": TRAIN_SEED_BASE + i, "n_rooms": 1 + i % max_rooms, "n_frames": n_frames, "noise": nz})
    return out


def synthetic_tokens(n_frames: int = 24, seed: int = 0, grid: tuple[int, int] = (4, 4), max_objects: int = 16,
                     rate_hz: float = 2.0):
    """A small deterministic FrameTokens stream built only from numpy (no simulator/renderer).

    A camera turns in place at (1, 2, 1.4) in a 5 x 4 m room with four objects; each
    frame observes the objects in front of it. Used by tests to pin the shipped
    model's output independently of other modules' rendering code.
    """
    from spatial_ttt_ros.perception.tokens import (
        EGO_DIM, EGO_FIELDS, GEO_DIM, GEO_FIELDS, OBJ_DIM, OBJ_FIELDS, TIME_SCALE, FrameTokens,
    )

    rng = np.random.default_rng(seed)
    objs = [("sofa", (3.0, 3.2, 0.45), (2.0, 0.9, 0.9)), ("tv", (3.0, 0.3, 1.0), (1.0, 0.1, 0.6)),
            ("chair", (0.5, 0.8, 0.45), (0.5, 0.5, 0.9)), ("table", (2.0, 1.8, 0.37), (1.2, 0.8, 0.75))]
    cam = np.array([1.0, 2.0, 1.4])
    gh, gw = grid
    out = []
    for i in range(n_frames):
        t = i / rate_hz
        yaw = 2 * np.pi * i / max(n_frames, 1)
        fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        ego = np.zeros(EGO_DIM, np.float32)
        ego[EGO_FIELDS["position"]] = cam
        ego[EGO_FIELDS["forward"]] = fwd
        ego[EGO_FIELDS["up"]] = (0, 0, 1)
        ego[EGO_FIELDS["time"]] = t * TIME_SCALE
        ego[EGO_FIELDS["valid_fraction"]] = 1.0
        ego[EGO_FIELDS["mean_depth"]] = 2.5
        geo = np.zeros((gh, gw, GEO_DIM), np.float32)
        for r in range(gh):
            for c in range(gw):
                ang = yaw + (0.5 - (c + 0.5) / gw) * 1.0
                d = 2.0 + 0.5 * rng.random()
                p = cam + d * np.array([np.cos(ang), np.sin(ang), -0.3 * (r - gh / 2)])
                geo[r, c, GEO_FIELDS["mean_xyz"]] = p
                geo[r, c, GEO_FIELDS["valid_fraction"]] = 1.0
                geo[r, c, GEO_FIELDS["mean_depth"]] = d
                geo[r, c, GEO_FIELDS["free_range"]] = d - 0.2
                geo[r, c, GEO_FIELDS["z_min"]] = max(0.0, p[2] - 0.3)
                geo[r, c, GEO_FIELDS["z_max"]] = p[2] + 0.3
                geo[r, c, GEO_FIELDS["ray_dir"]] = [np.cos(ang), np.sin(ang), 0.0]
                geo[r, c, GEO_FIELDS["class_hist"].start] = 1.0
        ob = np.zeros((max_objects, OBJ_DIM), np.float32)
        valid = np.zeros(max_objects, bool)
        j = 0
        for k, (label, centre, size) in enumerate(objs):
            v = np.asarray(centre) - cam
            if np.dot(v[:2], fwd[:2]) / np.linalg.norm(v[:2]) < 0.5 or j >= max_objects:
                continue
            ob[j, OBJ_FIELDS["class_onehot"].start + CLASS_TO_ID[label] - 1] = 1.0
            ob[j, OBJ_FIELDS["score"]] = 0.9
            ob[j, OBJ_FIELDS["center"]] = np.asarray(centre) + 0.02 * rng.standard_normal(3)
            ob[j, OBJ_FIELDS["size"]] = size
            ob[j, OBJ_FIELDS["log_size"]] = np.log(size)
            ob[j, OBJ_FIELDS["time"]] = t * TIME_SCALE
            valid[j] = True
            j += 1
        out.append(FrameTokens(stamp=100.0 + t, frame_index=i, ego=ego, geometry=geo, objects=ob,
                               object_valid=valid, observations=[], time=t))
    return out
