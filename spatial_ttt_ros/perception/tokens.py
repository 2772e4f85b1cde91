"""Frame tokens: what the spatial memory sees of one camera frame.

Per frame the memory gets a fixed layout ``[ego, geometry grid GH*GW, object slots M]``
(see ARCHITECTURE.md, ``ttt/backbone.py``). The three token kinds have different
feature sizes; the memory model embeds each with its own linear layer.

Units and scaling: world coordinates are raw metres in the world frame (REP-103,
z up) and depths raw metres; time is seconds since the stream's first frame times
``TIME_SCALE`` (1/100, so 1,000 s of stream -> 10). The model normalises further.
Every value is finite; cells or slots without data hold zeros.

Ego token (``EGO_DIM`` = 12), fields in ``EGO_FIELDS``:
    position (3)       camera optical centre in the world, m
    forward (3)        optical +z axis (viewing direction) in the world, unit
    up (3)             optical -y axis (image up) in the world, unit
    time (1)           (stamp - t0) * TIME_SCALE
    valid_fraction (1) fraction of depth pixels with a valid reading
    mean_depth (1)     mean valid depth over the image, m (0 if none)

Geometry token per grid cell (``GEO_DIM`` = 28), fields in ``GEO_FIELDS``; the grid
splits the depth image into GH rows x GW columns of (nearly) equal cells:
    mean_xyz (3)       mean world position of the cell's valid pixels, m
    valid_fraction (1) fraction of the cell's pixels with valid depth
    mean_depth (1)     mean valid depth, m
    free_range (1)     free-space proxy: nearest valid depth in the cell, m, i.e. how
                       far the space along the cell's rays is known to be empty
    z_min, z_max (2)   lowest / highest world z of valid pixels, m
    ray_dir (3)        world direction of the ray through the cell centre (unit); set
                       even without depth, so the model knows where the cell looks
    class_hist (17)    fraction of the cell's pixels per class id (0 = none, id =
                       CLASSES index + 1), from the label image when the frame has one,
                       else rasterised from the observations (masks, boxes, or the
                       world box projected into the image)

Object token per slot (``OBJ_DIM`` = 27), fields in ``OBJ_FIELDS``; observations are
sorted by score (descending, stable) and truncated to M; ``object_valid`` marks the
filled slots:
    class_onehot (16)  one-hot over CLASSES
    score (1)          detector score 0..1
    center (3)         world centre, m
    size (3)           world axis-aligned extent x, y, z, m
    log_size (3)       ln(max(size, 1 cm))
    time (1)           (observation stamp - t0) * TIME_SCALE
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spatial_ttt_ros.classes import CLASS_TO_ID, CLASSES
from spatial_ttt_ros.frames import CameraFrame, ObjectObservation
from spatial_ttt_ros.perception.lifting import pixel_rays, valid_depth_mask

N_CLASSES = len(CLASSES)
N_LABELS = N_CLASSES + 1  # label ids 0..N_CLASSES (0 = none)
TIME_SCALE = 0.01  # token time = seconds since stream start * TIME_SCALE
MIN_LOG_SIZE = 0.01  # m, floor before the log
_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


def _fields(spec: list[tuple[str, int]]) -> tuple[dict[str, slice], int]:
    out: dict[str, slice] = {}
    i = 0
    for name, n in spec:
        out[name] = slice(i, i + n)
        i += n
    return out, i


EGO_FIELDS, EGO_DIM = _fields(
    [("position", 3), ("forward", 3), ("up", 3), ("time", 1), ("valid_fraction", 1), ("mean_depth", 1)]
)
GEO_FIELDS, GEO_DIM = _fields(
    [
        ("mean_xyz", 3),
        ("valid_fraction", 1),
        ("mean_depth", 1),
        ("free_range", 1),
        ("z_min", 1),
        ("z_max", 1),
        ("ray_dir", 3),
        ("class_hist", N_LABELS),
    ]
)
OBJ_FIELDS, OBJ_DIM = _fields(
    [("class_onehot", N_CLASSES), ("score", 1), ("center", 3), ("size", 3), ("log_size", 3), ("time", 1)]
)


@dataclass
class FrameTokens:
    """One frame's tokens.

    Attributes:
        stamp: seconds (the frame's stamp).
        frame_index: position in the stream (-1 when unknown).
        ego: (EGO_DIM,) float32.
        geometry: (GH, GW, GEO_DIM) float32.
        objects: (M, OBJ_DIM) float32, zero rows where ``object_valid`` is False.
        object_valid: (M,) bool.
        observations: the world observations behind the object slots, in slot order
            (at most M; the ones that did not fit are dropped).
        time: seconds since the stream's first frame.
    """

    stamp: float
    frame_index: int
    ego: np.ndarray
    geometry: np.ndarray
    objects: np.ndarray
    object_valid: np.ndarray
    observations: list[ObjectObservation] = field(default_factory=list)
    time: float = 0.0

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.geometry.shape[0]), int(self.geometry.shape[1])

    @property
    def max_objects(self) -> int:
        return int(self.objects.shape[0])


def _edges(n: int, parts: int) -> np.ndarray:
    """Start indices of ``parts`` nearly equal chunks of ``range(n)``."""
    return np.linspace(0, n, parts + 1).astype(np.int64)


class Tokenizer:
    """Turns a ``CameraFrame`` plus its world observations into ``FrameTokens``.

    Args:
        grid: (GH, GW) geometry cells over the depth image; each must not exceed the
            image size.
        max_objects: M, object slots per frame.
        histogram_source: "auto" (label image when the frame has one, else the
            observations), "labels" or "observations".
        max_pixels: larger depth images are subsampled by an integer step to at most
            about this many pixels for the geometry tokens (320x240 is not).

    The tokenizer remembers the first stamp it sees (``t0``) to express time since the
    stream start; call ``reset()`` at a new stream (or pass ``t0`` explicitly).
    """

    def __init__(
        self,
        grid: tuple[int, int] = (4, 4),
        max_objects: int = 16,
        histogram_source: str = "auto",
        max_pixels: int = 80_000,
    ):
        gh, gw = int(grid[0]), int(grid[1])
        if gh < 1 or gw < 1:
            raise ValueError(f"grid must be positive, got {grid}")
        if max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {max_objects}")
        if histogram_source not in ("auto", "labels", "observations"):
            raise ValueError(f"histogram_source must be auto, labels or observations, got {histogram_source!r}")
        self.grid = (gh, gw)
        self.max_objects = int(max_objects)
        self.histogram_source = histogram_source
        self.max_pixels = int(max_pixels)
        self.t0: float | None = None
        self._cache_key: tuple | None = None
        self._cache: dict = {}

    def reset(self) -> None:
        """Forget the stream start time (next frame becomes t0)."""
        self.t0 = None

    # -- cached per (image size, K): pixel rays, cell layout ---------------------------
    def _layout(self, shape: tuple[int, int], K: np.ndarray) -> dict:
        key = (shape, K.tobytes())
        if key != self._cache_key:
            h, w = shape
            gh, gw = self.grid
            if h < gh or w < gw:
                raise ValueError(f"depth image {w}x{h} is smaller than the {gw}x{gh} token grid")
            re, ce = _edges(h, gh), _edges(w, gw)
            row_cell = np.repeat(np.arange(gh), np.diff(re))
            col_cell = np.repeat(np.arange(gw), np.diff(ce))
            cell_id = (row_cell[:, None] * gw + col_cell[None, :]).astype(np.int64)
            counts = np.outer(np.diff(re), np.diff(ce)).astype(np.float32)
            # Ray through each cell's centre pixel, in the optical frame (unnormalised).
            uc = 0.5 * (ce[:-1] + ce[1:]) - 0.5
            vc = 0.5 * (re[:-1] + re[1:]) - 0.5
            rays = np.zeros((gh, gw, 3), dtype=np.float64)
            rays[..., 0] = ((uc - K[0, 2]) / K[0, 0])[None, :]
            rays[..., 1] = ((vc - K[1, 2]) / K[1, 1])[:, None]
            rays[..., 2] = 1.0
            rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
            self._cache = {
                "rays": pixel_rays(shape, K),
                "row_starts": re[:-1],
                "col_starts": ce[:-1],
                "cell_id": cell_id,
                "counts": counts,
                "cell_rays": rays,
                "buf": np.empty((h, w, 5), dtype=np.float32),
            }
            self._cache_key = key
        return self._cache

    def _cell_reduce(self, ufunc, a: np.ndarray, lay: dict) -> np.ndarray:
        # Separable block reduction: reduce rows within each row band, then columns.
        return ufunc.reduceat(ufunc.reduceat(a, lay["row_starts"], axis=0), lay["col_starts"], axis=1)

    def _label_image(
        self,
        frame: CameraFrame,
        observations: list[ObjectObservation],
        R: np.ndarray,
        tw: np.ndarray,
        step: int,
        K: np.ndarray,
    ) -> np.ndarray | None:
        """Class ids (int) for the class histogram at the sampled resolution, or None.

        ``step`` is the pixel subsampling of the depth image and ``K`` its intrinsics.
        """
        use_labels = self.histogram_source == "labels" or (
            self.histogram_source == "auto" and frame.labels is not None
        )
        if use_labels:
            if frame.labels is None:
                return None
            lab = np.asarray(frame.labels)[::step, ::step].astype(np.int64, copy=False)
            # Ids outside the vocabulary count as "none".
            return np.where((lab >= 0) & (lab <= N_CLASSES), lab, 0)
        full_shape = frame.depth.shape
        lab = np.zeros(frame.depth[::step, ::step].shape, dtype=np.int64)
        h, w = lab.shape
        # Paint low scores first so that higher-scoring objects win overlaps.
        ranked = [o for o in sorted(observations, key=lambda o: o.score) if o.label in CLASS_TO_ID]
        boxes: list[np.ndarray | None] = []
        to_project: list[int] = []
        for i, o in enumerate(ranked):
            box = o.extras.get("box_xyxy") if o.extras else None
            boxes.append(None if box is None else np.asarray(box, dtype=np.float64) / step)
            mask = o.extras.get("mask") if o.extras else None
            if box is None and (mask is None or np.shape(mask) != full_shape):
                to_project.append(i)
        if to_project:
            # World axis-aligned boxes -> image boxes, all at once (the noise model's
            # output and false positives carry no 2D box).
            c = np.array([ranked[i].center for i in to_project], dtype=np.float64)
            half = 0.5 * np.array([ranked[i].size for i in to_project], dtype=np.float64)
            corners = c[:, None, :] + _CORNER_SIGNS[None] * half[:, None, :]
            pc = (corners - tw.astype(np.float64)) @ R.astype(np.float64)  # R^T (p - t)
            in_front = np.all(pc[..., 2] > 0.1, axis=1)
            z = np.where(pc[..., 2] > 0.1, pc[..., 2], 1.0)
            u = K[0, 0] * pc[..., 0] / z + K[0, 2]
            v = K[1, 1] * pc[..., 1] / z + K[1, 2]
            proj = np.stack([u.min(1), v.min(1), u.max(1), v.max(1)], axis=1)
            for j, i in enumerate(to_project):
                boxes[i] = proj[j] if in_front[j] else None
        for o, box in zip(ranked, boxes):
            cid = CLASS_TO_ID[o.label]
            mask = o.extras.get("mask") if o.extras else None
            if mask is not None and np.shape(mask) == full_shape:
                lab[np.asarray(mask, dtype=bool)[::step, ::step]] = cid
                continue
            if box is None or not np.all(np.isfinite(box)):
                continue
            x0, y0 = int(np.clip(np.floor(box[0]), 0, w)), int(np.clip(np.floor(box[1]), 0, h))
            x1, y1 = int(np.clip(np.ceil(box[2]), 0, w)), int(np.clip(np.ceil(box[3]), 0, h))
            if x1 > x0 and y1 > y0:
                lab[y0:y1, x0:x1] = cid
        return lab

    def tokenize(
        self,
        frame: CameraFrame,
        observations: list[ObjectObservation],
        t0: float | None = None,
    ) -> FrameTokens:
        """Tokens for one frame.

        Args:
            frame: the camera frame (depth, K, T_world_cam, optional labels).
            observations: world observations of this frame (from ``lift_detections``,
                possibly perturbed by ``noise.py``).
            t0: stream start time in seconds; default: the first stamp this tokenizer
                saw since ``reset()``.
        """
        if t0 is None:
            if self.t0 is None:
                self.t0 = float(frame.stamp)
            t0 = self.t0
        t_rel = float(frame.stamp) - float(t0)
        gh, gw = self.grid
        depth = frame.depth
        K = frame.K
        # Large images are subsampled (every step-th pixel): a 4x4 grid of averages needs
        # no more, and it keeps tokenize a few ms at 640x480. Pixel (step*u, step*v) is
        # pixel (u, v) of a camera with K / step (exact, no resampling).
        step = max(1, int(np.ceil(np.sqrt(depth.size / self.max_pixels))))
        while step > 1 and (depth.shape[0] // step < gh or depth.shape[1] // step < gw):
            step -= 1
        if step > 1:
            depth = depth[::step, ::step]
            K = K.copy()
            K[:2] /= step
        lay = self._layout(depth.shape, K)
        T = frame.T_world_cam
        R = T[:3, :3].astype(np.float32)
        tw = T[:3, 3].astype(np.float32)

        valid = valid_depth_mask(depth)
        # Per-pixel channels written into a cached (H, W, 5) buffer: world offset from
        # the camera (x, y, z), depth, valid. Invalid pixels are all-zero, so plain sums
        # over a cell are sums over its valid pixels.
        buf = lay["buf"]
        d = buf[..., 3]
        np.copyto(d, depth)
        d[~valid] = 0.0
        buf[..., 4] = valid
        rays = lay["rays"]
        xc = rays[..., 0] * d
        yc = rays[..., 1] * d
        for i in range(3):
            np.multiply(xc, R[i, 0], out=buf[..., i])
            buf[..., i] += R[i, 1] * yc
            buf[..., i] += R[i, 2] * d
        wz = buf[..., 2]
        sums = self._cell_reduce(np.add, buf, lay)  # (gh, gw, 5)
        n_valid = sums[..., 4]
        safe_n = np.maximum(n_valid, 1.0)
        has = n_valid > 0

        geo = np.zeros((gh, gw, GEO_DIM), dtype=np.float32)
        geo[..., GEO_FIELDS["mean_xyz"]] = np.where(has[..., None], sums[..., :3] / safe_n[..., None] + tw, 0.0)
        geo[..., GEO_FIELDS["valid_fraction"]] = (n_valid / lay["counts"])[..., None]
        geo[..., GEO_FIELDS["mean_depth"]] = (sums[..., 3] / safe_n)[..., None]

        inf = np.float32(np.inf)
        dmin = self._cell_reduce(np.minimum, np.where(valid, d, inf), lay)
        zw = wz + tw[2]
        zmin = self._cell_reduce(np.minimum, np.where(valid, zw, inf), lay)
        zmax = self._cell_reduce(np.maximum, np.where(valid, zw, -inf), lay)
        geo[..., GEO_FIELDS["free_range"]] = np.where(has, dmin, 0.0)[..., None]
        geo[..., GEO_FIELDS["z_min"]] = np.where(has, zmin, 0.0)[..., None]
        geo[..., GEO_FIELDS["z_max"]] = np.where(has, zmax, 0.0)[..., None]
        geo[..., GEO_FIELDS["ray_dir"]] = lay["cell_rays"] @ T[:3, :3].T

        lab = self._label_image(frame, observations, R, tw, step, K)
        if lab is not None:
            hist = np.bincount(
                (lay["cell_id"] * N_LABELS + lab).ravel(), minlength=gh * gw * N_LABELS
            ).reshape(gh, gw, N_LABELS)
            geo[..., GEO_FIELDS["class_hist"]] = hist / lay["counts"][..., None]

        ego = np.zeros(EGO_DIM, dtype=np.float32)
        ego[EGO_FIELDS["position"]] = T[:3, 3]
        ego[EGO_FIELDS["forward"]] = T[:3, 2]
        ego[EGO_FIELDS["up"]] = -T[:3, 1]
        ego[EGO_FIELDS["time"]] = t_rel * TIME_SCALE
        total_valid = float(n_valid.sum())
        ego[EGO_FIELDS["valid_fraction"]] = total_valid / depth.size
        ego[EGO_FIELDS["mean_depth"]] = float(sums[..., 3].sum()) / total_valid if total_valid > 0 else 0.0

        kept = [
            o
            for o in observations
            if o.label in CLASS_TO_ID
            and np.all(np.isfinite(o.center))
            and np.all(np.isfinite(o.size))
            and np.isfinite(o.score)
        ]
        # Stable sort: equal scores keep their input order (deterministic tokens).
        order = sorted(range(len(kept)), key=lambda i: -float(kept[i].score))[: self.max_objects]
        slots = [kept[i] for i in order]
        objs = np.zeros((self.max_objects, OBJ_DIM), dtype=np.float32)
        valid_slots = np.zeros(self.max_objects, dtype=bool)
        c0 = OBJ_FIELDS["class_onehot"].start
        for j, o in enumerate(slots):
            size = np.asarray(o.size, dtype=np.float64)
            objs[j, c0 + CLASS_TO_ID[o.label] - 1] = 1.0
            objs[j, OBJ_FIELDS["score"]] = float(o.score)
            objs[j, OBJ_FIELDS["center"]] = o.center
            objs[j, OBJ_FIELDS["size"]] = size
            objs[j, OBJ_FIELDS["log_size"]] = np.log(np.maximum(size, MIN_LOG_SIZE))
            objs[j, OBJ_FIELDS["time"]] = (float(o.stamp) - float(t0)) * TIME_SCALE
            valid_slots[j] = True

        return FrameTokens(
            stamp=float(frame.stamp),
            frame_index=int(frame.frame_index),
            ego=ego,
            geometry=geo,
            objects=objs,
            object_valid=valid_slots,
            observations=slots,
            time=t_rel,
        )
