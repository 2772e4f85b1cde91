"""Depth lifting: a synthetic fronto-parallel box in front of a wall, NaN / zero depth."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ttt_ros.frames import CameraFrame, Detection
from spatial_ttt_ros.perception.lifting import (
    depth_to_points,
    lift_detections,
    lift_detections_ex,
    project_world_box,
    valid_depth_mask,
)

H, W = 120, 160
FX = FY = 200.0
CX, CY = 79.5, 59.5
K = np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1.0]])
# Optical (x right, y down, z fwd) -> REP-103 world (x fwd, y left, z up), camera at (1, 2, 1.2).
R_WC = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)
T = np.eye(4)
T[:3, :3] = R_WC
T[:3, 3] = [1.0, 2.0, 1.2]

# The object: pixels rows 40..79, cols 60..99 (40 x 40 px) at 1.5 m, wall at 3.5 m.
OBJ_D, WALL_D = 1.5, 3.5
R0, R1, C0, C1 = 40, 80, 60, 100


def scene_depth() -> np.ndarray:
    d = np.full((H, W), WALL_D, dtype=np.float32)
    d[R0:R1, C0:C1] = OBJ_D
    return d


def expected_box() -> tuple[np.ndarray, np.ndarray]:
    """World centre and size of the object's visible face (pixel edges, not centres)."""
    xc0, xc1 = (C0 - 0.5 - CX) / FX * OBJ_D, (C1 - 0.5 - CX) / FX * OBJ_D
    yc0, yc1 = (R0 - 0.5 - CY) / FY * OBJ_D, (R1 - 0.5 - CY) / FY * OBJ_D
    centre_cam = np.array([(xc0 + xc1) / 2, (yc0 + yc1) / 2, OBJ_D])
    centre = R_WC @ centre_cam + T[:3, 3]
    # world x = depth (zero thickness), world y = lateral extent, world z = vertical extent
    size = np.array([0.0, xc1 - xc0, yc1 - yc0])
    return centre, size


def make_frame(depth: np.ndarray) -> CameraFrame:
    return CameraFrame(stamp=3.0, depth=depth, K=K, T_world_cam=T, frame_index=7)


def test_depth_to_points_plane_and_invalid():
    d = np.full((H, W), 2.0, dtype=np.float32)
    d[0, 0], d[0, 1], d[0, 2], d[0, 3] = np.nan, 0.0, np.inf, -1.0
    pts = depth_to_points(d, K)
    assert pts.shape == (H, W, 3)
    assert np.all(np.isnan(pts[0, :4]))
    assert np.allclose(pts[1:, :, 2], 2.0)
    assert pts[60, 120, 0] == pytest.approx((120 - CX) / FX * 2.0, abs=1e-6)
    world = depth_to_points(d, K, T)
    # Optical z -> world x: a plane 2 m ahead of a camera at x=1 lies at x=3.
    assert np.allclose(world[1:, :, 0], 3.0, atol=1e-5)
    assert valid_depth_mask(d).sum() == H * W - 4


@pytest.mark.parametrize("use_mask", [False, True])
def test_lift_known_box_to_centimetres(use_mask):
    depth = scene_depth()
    centre, size = expected_box()
    if use_mask:
        mask = np.zeros((H, W), dtype=bool)
        mask[R0:R1, C0:C1] = True
        det = Detection("chair", 0.9, np.array([C0, R0, C1, R1], dtype=float), mask)
    else:
        # A loose box: 8 px of wall on every side must not bleed into the estimate.
        det = Detection("chair", 0.9, np.array([C0 - 8, R0 - 8, C1 + 8, R1 + 8], dtype=float))
    (obs,) = lift_detections(make_frame(depth), [det])
    assert obs.label == "chair" and obs.score == pytest.approx(0.9)
    assert obs.stamp == 3.0 and obs.frame_index == 7
    np.testing.assert_allclose(obs.center, centre, atol=0.01)
    np.testing.assert_allclose(obs.size, size, atol=0.01)
    assert obs.extras["depth"] == pytest.approx(OBJ_D)
    assert obs.extras["n_points"] == 40 * 40


def test_lift_with_nan_and_zero_holes_stays_finite_and_accurate():
    depth = scene_depth()
    rng = np.random.default_rng(0)
    holes = rng.random((H, W)) < 0.4
    depth[holes & (rng.random((H, W)) < 0.5)] = np.nan
    depth[holes & ~np.isnan(depth)] = 0.0
    det = Detection("table", 0.7, np.array([C0 - 8, R0 - 8, C1 + 8, R1 + 8], dtype=float))
    (obs,) = lift_detections(make_frame(depth), [det])
    assert np.all(np.isfinite(obs.center)) and np.all(np.isfinite(obs.size))
    centre, size = expected_box()
    np.testing.assert_allclose(obs.center, centre, atol=0.02)
    np.testing.assert_allclose(obs.size, size, atol=0.03)


def test_skips_detections_without_depth_and_reports_why():
    depth = scene_depth()
    depth[R0:R1, C0:C1] = np.nan  # object region has no reading at all
    depth[:, :20] = 0.0
    dets = [
        Detection("chair", 0.9, np.array([C0 + 5, R0 + 5, C1 - 5, R1 - 5], dtype=float)),  # all NaN inside
        Detection("sofa", 0.8, np.array([0, 0, 20, 120], dtype=float)),  # all zeros
        Detection("tv", 0.8, np.array([200, 0, 260, 50], dtype=float)),  # outside the image
        Detection("vase", 0.8, np.array([np.nan, 0, 10, 10], dtype=float)),  # broken box
        Detection("lamp", 0.6, np.array([110, 10, 150, 50], dtype=float)),  # fine (wall)
    ]
    res = lift_detections_ex(make_frame(depth), dets)
    assert res.n_lifted == 1 and res.observations[0].label == "lamp"
    assert dict(res.skipped) == {0: "too_few_depth_pixels", 1: "too_few_depth_pixels", 2: "empty_box", 3: "empty_box"}
    assert res.observations[0].center[0] == pytest.approx(1.0 + WALL_D, abs=1e-4)


def test_all_invalid_depth_never_crashes():
    depth = np.full((H, W), np.nan, dtype=np.float32)
    det = Detection("chair", 0.9, np.array([0, 0, W, H], dtype=float))
    assert lift_detections(make_frame(depth), [det]) == []


def test_mask_shape_mismatch_is_a_clear_error():
    det = Detection("chair", 0.9, np.array([0, 0, 10, 10], dtype=float), np.ones((10, 10), dtype=bool))
    with pytest.raises(ValueError, match="mask"):
        lift_detections(make_frame(scene_depth()), [det])


def test_project_world_box_round_trip():
    depth = scene_depth()
    det = Detection("chair", 0.9, np.array([C0, R0, C1, R1], dtype=float))
    (obs,) = lift_detections(make_frame(depth), [det])
    box = project_world_box(obs.center, obs.size, K, T, (H, W))
    np.testing.assert_allclose(box, [C0 - 0.5, R0 - 0.5, C1 - 0.5, R1 - 0.5], atol=1.0)
    behind = project_world_box(np.array([-3.0, 2.0, 1.2]), np.ones(3), K, T, (H, W))
    assert behind is None


def test_box_depth_follows_the_dominant_surface_not_a_small_occluder():
    depth = np.full((H, W), WALL_D, dtype=np.float32)
    depth[30:90, 50:110] = 2.0  # the object: 60x60 px at 2 m
    depth[50:70, 70:85] = 1.2  # a thin occluder (pole) in front of its centre
    det = Detection("cabinet", 0.8, np.array([50, 30, 110, 90], dtype=float))
    f = make_frame(depth)
    (mode,) = lift_detections(f, [det])
    assert mode.extras["depth"] == pytest.approx(2.0, abs=0.05)
    assert mode.center[0] == pytest.approx(1.0 + 2.0, abs=0.05)  # world x = camera x + depth
    # A low percentile of the core depth would lock onto the occluder instead.
    (pct,) = lift_detections(f, [det], box_depth="percentile")
    assert pct.extras["depth"] == pytest.approx(1.2, abs=0.05)
    with pytest.raises(ValueError, match="box_depth"):
        lift_detections(f, [det], box_depth="median")
