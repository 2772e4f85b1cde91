"""Lift 2D detections into the world frame with the depth image.

Conventions (see ``frames.py``): depth is (H, W) float32 metres, where NaN, inf and
values <= 0 mean "no reading"; ``K`` is the 3x3 pinhole matrix of the depth image;
``T_world_cam`` maps optical-frame points (x right, y down, z forward) into the
world (REP-103, z up). Everything here is NumPy only and never produces NaN in its
outputs: pixels without a valid reading are dropped, and a detection without
enough valid pixels is skipped (and counted) instead of lifted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spatial_ttt_ros.frames import CameraFrame, Detection, ObjectObservation

# Points closer than this to the optical centre are treated as invalid: sensors report
# tiny positive values for "too close", and they would explode the back-projection.
MIN_VALID_DEPTH = 0.05  # m
# Percentile trim used for centres and extents (5..95): robust to stray pixels.
EXTENT_PERCENTILE = 5.0


def valid_depth_mask(depth: np.ndarray) -> np.ndarray:
    """(H, W) bool: True where ``depth`` holds a usable reading (finite, > 5 cm)."""
    depth = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth > MIN_VALID_DEPTH)


def pixel_rays(shape: tuple[int, int], K: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32 normalised image coordinates ((u-cx)/fx, (v-cy)/fy) of pixel centres.

    Multiplying by depth gives the optical-frame x and y of each pixel (z = depth).
    """
    h, w = shape
    K = np.asarray(K, dtype=np.float64)
    xs = ((np.arange(w, dtype=np.float64) - K[0, 2]) / K[0, 0]).astype(np.float32)
    ys = ((np.arange(h, dtype=np.float64) - K[1, 2]) / K[1, 1]).astype(np.float32)
    out = np.empty((h, w, 2), dtype=np.float32)
    out[..., 0] = xs[None, :]
    out[..., 1] = ys[:, None]
    return out


def depth_to_points(
    depth: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray | None = None
) -> np.ndarray:
    """Back-project a depth image.

    Args:
        depth: (H, W) metres; NaN / inf / <= 5 cm = no reading.
        K: (3, 3) pinhole intrinsics.
        T_world_cam: optional (4, 4) optical->world transform; without it the points
            stay in the optical camera frame.

    Returns:
        (H, W, 3) float32 points in metres (world frame when ``T_world_cam`` is
        given), NaN where the pixel has no valid depth.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    rays = pixel_rays(depth.shape, K)
    valid = valid_depth_mask(depth)
    d = np.where(valid, depth, np.nan).astype(np.float32)
    pts = np.empty(depth.shape + (3,), dtype=np.float32)
    pts[..., 0] = rays[..., 0] * d
    pts[..., 1] = rays[..., 1] * d
    pts[..., 2] = d
    if T_world_cam is not None:
        T = np.asarray(T_world_cam, dtype=np.float64).reshape(4, 4)
        pts = (pts @ T[:3, :3].T.astype(np.float32)) + T[:3, 3].astype(np.float32)
    return pts


def transform_points(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (4, 4) transform to (N, 3) points."""
    T = np.asarray(T, dtype=np.float64)
    return np.asarray(pts, dtype=np.float64) @ T[:3, :3].T + T[:3, 3]


def project_world_box(
    center: np.ndarray,
    size: np.ndarray,
    K: np.ndarray,
    T_world_cam: np.ndarray,
    image_shape: tuple[int, int],
    min_depth: float = 0.1,
) -> np.ndarray | None:
    """Image box (4,) x0, y0, x1, y1 (pixels, clipped) of a world axis-aligned box.

    Returns None when the box is behind the camera (any corner closer than
    ``min_depth`` along the optical axis, which would make the projection unbounded)
    or falls entirely outside the image.
    """
    c = np.asarray(center, dtype=np.float64)
    half = 0.5 * np.asarray(size, dtype=np.float64)
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    corners = c + signs * half
    T_cam_world = np.linalg.inv(np.asarray(T_world_cam, dtype=np.float64))
    pc = transform_points(T_cam_world, corners)
    if np.any(pc[:, 2] < min_depth):
        return None
    K = np.asarray(K, dtype=np.float64)
    u = K[0, 0] * pc[:, 0] / pc[:, 2] + K[0, 2]
    v = K[1, 1] * pc[:, 1] / pc[:, 2] + K[1, 2]
    h, w = image_shape
    box = np.array([u.min(), v.min(), u.max(), v.max()])
    box[[0, 2]] = np.clip(box[[0, 2]], 0, w)
    box[[1, 3]] = np.clip(box[[1, 3]], 0, h)
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        return None
    return box


def _box_slices(box_xyxy: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Integer pixel bounds (x0, y0, x1, y1), exclusive end, of a float box clipped to the image."""
    h, w = shape
    b = np.asarray(box_xyxy, dtype=np.float64)
    if not np.all(np.isfinite(b)):
        return None
    x0 = int(np.clip(np.floor(b[0]), 0, w))
    y0 = int(np.clip(np.floor(b[1]), 0, h))
    x1 = int(np.clip(np.ceil(b[2]), 0, w))
    y1 = int(np.clip(np.ceil(b[3]), 0, h))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def robust_extent(points: np.ndarray, percentile: float = EXTENT_PERCENTILE) -> tuple[np.ndarray, np.ndarray]:
    """Centre (3,) and size (3,) of (N, 3) points from trimmed extents.

    The centre is the midpoint of the ``percentile``..``100 - percentile`` range on each
    axis; the size is that range divided by (1 - 2 percentile / 100), which makes it
    unbiased for points spread uniformly along the axis (a surface seen head-on),
    while a few stray pixels cannot stretch it.
    """
    lo, hi = np.percentile(points, [percentile, 100.0 - percentile], axis=0)
    centre = 0.5 * (lo + hi)
    size = (hi - lo) / (1.0 - 2.0 * percentile / 100.0)
    return centre, size


def _depth_mode(values: np.ndarray, near_percentile: float, bin_m: float = 0.1) -> float:
    """Depth of the most populated surface among ``values`` (m).

    A histogram with ``bin_m`` bins, smoothed over 3 bins; its peak bin's values give
    the median. Ties go to the nearer surface (the object is in front of its
    background).
    """
    lo = float(values.min())
    idx = ((values - lo) / bin_m).astype(np.int64)
    counts = np.bincount(idx).astype(np.float64)
    smooth = np.convolve(counts, [1.0, 1.0, 1.0], mode="same")
    peak = int(np.argmax(smooth))  # argmax returns the first (nearest) maximum
    sel = values[np.abs(idx - peak) <= 1]
    return float(np.median(sel))


@dataclass
class LiftResult:
    """Output of :func:`lift_detections_ex`.

    ``observations`` are the lifted detections (stream order kept); ``skipped`` lists
    ``(detection index, reason)`` for detections that could not be lifted, reasons
    being ``"empty_box"`` or ``"too_few_depth_pixels"``.
    """

    observations: list[ObjectObservation] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    @property
    def n_lifted(self) -> int:
        return len(self.observations)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)


def lift_detections_ex(
    frame: CameraFrame,
    detections: list[Detection],
    min_valid_pixels: int = 12,
    box_core: float = 0.5,
    box_depth: str = "mode",
    box_depth_percentile: float = 30.0,
    mask_band: tuple[float, float, float] = (1.0, 0.25, 2.0),
    box_band: tuple[float, float, float] = (0.7, 0.15, 1.5),
    keep_mask: bool = True,
) -> LiftResult:
    """Lift detections to world-frame observations, reporting the ones skipped.

    Per detection:
    1. Support pixels: the mask inside the (clipped) box when a mask is given, else the
       whole box.
    2. Robust depth d*: with a mask, the median valid depth over the mask; without one,
       from the valid depths in the central ``box_core`` fraction of the box: with
       ``box_depth="mode"`` the depth of the most populated surface there (10 cm
       histogram, ties to the nearer one), with ``"percentile"`` the
       ``box_depth_percentile`` (low: the background is behind the object).
    3. Inliers: support pixels with valid depth within a band of d*. The band's half
       width is the object's larger image extent converted to metres at d* (a proxy
       for its depth extent) times a scale, clipped: ``mask_band`` / ``box_band`` =
       (scale, min m, max m). Boxes get a tighter band because everything behind or
       under the object (floor, wall, table) is inside the box too.
    4. The inliers are back-projected to the world; the centre and size come from
       their trimmed (5..95 percentile) extents on world x, y, z (plus one pixel's
       footprint at d*, since samples sit at pixel centres).

    Fewer than ``min_valid_pixels`` valid pixels (in the core or among the inliers)
    skips the detection. Sizes describe the visible surface: along the viewing
    direction an object looks thinner than it is until seen from other sides.

    Returns:
        LiftResult with ``observations`` (extras: ``box_xyxy`` (4,), ``depth`` d* in m,
        ``n_points``, ``mask`` when given and ``keep_mask``) and ``skipped``.
    """
    if box_depth not in ("mode", "percentile"):
        raise ValueError(f"box_depth must be 'mode' or 'percentile', got {box_depth!r}")
    depth = frame.depth
    shape = depth.shape
    valid = valid_depth_mask(depth)
    K = frame.K
    T = frame.T_world_cam
    R = T[:3, :3]
    t = T[:3, 3]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    result = LiftResult()
    for i, det in enumerate(detections):
        bounds = _box_slices(det.box_xyxy, shape)
        if bounds is None:
            result.skipped.append((i, "empty_box"))
            continue
        x0, y0, x1, y1 = bounds
        d_box = depth[y0:y1, x0:x1]
        v_box = valid[y0:y1, x0:x1]
        if det.mask is not None:
            m = np.asarray(det.mask, dtype=bool)
            if m.shape != shape:
                raise ValueError(f"detection mask is {m.shape}, depth is {shape}")
            support = m[y0:y1, x0:x1] & v_box
            if support.sum() < min_valid_pixels:
                result.skipped.append((i, "too_few_depth_pixels"))
                continue
            d_star = float(np.median(d_box[support]))
        else:
            support = v_box
            bh, bw = y1 - y0, x1 - x0
            my = int(round(bh * (1.0 - box_core) / 2.0))
            mx = int(round(bw * (1.0 - box_core) / 2.0))
            core_d = d_box[my : bh - my, mx : bw - mx]
            core_v = v_box[my : bh - my, mx : bw - mx]
            core_vals = core_d[core_v]
            if core_vals.size < min_valid_pixels:
                # A small core can be all holes: fall back to the whole box.
                core_vals = d_box[v_box]
            if core_vals.size < min_valid_pixels:
                result.skipped.append((i, "too_few_depth_pixels"))
                continue
            if box_depth == "mode":
                d_star = _depth_mode(core_vals, box_depth_percentile)
            else:
                d_star = float(np.percentile(core_vals, box_depth_percentile))
        extent_m = max((x1 - x0) / fx, (y1 - y0) / fy) * d_star
        scale, band_lo, band_hi = mask_band if det.mask is not None else box_band
        band = float(np.clip(scale * extent_m, band_lo, band_hi))
        with np.errstate(invalid="ignore"):
            inlier = support & (np.abs(d_box - d_star) <= band)
        ys, xs = np.nonzero(inlier)
        if ys.size < min_valid_pixels:
            result.skipped.append((i, "too_few_depth_pixels"))
            continue
        d = d_box[ys, xs].astype(np.float64)
        pc = np.stack([(xs + x0 - cx) / fx * d, (ys + y0 - cy) / fy * d, d], axis=1)
        pw = pc @ R.T + t
        centre, size = robust_extent(pw)
        # Points sit at pixel centres; each pixel covers d/f metres, so the surface
        # reaches half a pixel beyond the outermost samples on each side.
        size = size + np.abs(R) @ np.array([d_star / fx, d_star / fy, 0.0])
        extras: dict = {
            "box_xyxy": np.asarray(det.box_xyxy, dtype=np.float64).copy(),
            "depth": d_star,
            "n_points": int(ys.size),
        }
        if det.mask is not None and keep_mask:
            extras["mask"] = det.mask
        result.observations.append(
            ObjectObservation(
                label=det.label,
                score=float(det.score),
                center=centre,
                size=size,
                stamp=float(frame.stamp),
                frame_index=int(frame.frame_index),
                extras=extras,
            )
        )
    return result


def lift_detections(frame: CameraFrame, detections: list[Detection], **kwargs) -> list[ObjectObservation]:
    """Lift detections into world observations (see :func:`lift_detections_ex`).

    Detections without enough valid depth are dropped; use ``lift_detections_ex`` to
    learn how many and why (the node reports those counts).
    """
    return lift_detections_ex(frame, detections, **kwargs).observations
