"""Frame tokenizer: shapes, finite values, geometry on a known plane, object ordering, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from spatial_ttt_ros.classes import CLASS_TO_ID, CLASSES
from spatial_ttt_ros.frames import CameraFrame, Detection, ObjectObservation
from spatial_ttt_ros.perception.label_image import detections_from_labels
from spatial_ttt_ros.perception.lifting import lift_detections
from spatial_ttt_ros.perception.tokens import (
    EGO_DIM,
    EGO_FIELDS,
    GEO_DIM,
    GEO_FIELDS,
    OBJ_DIM,
    OBJ_FIELDS,
    TIME_SCALE,
    FrameTokens,
    Tokenizer,
)

H, W = 120, 160
K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
R_WC = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)  # optical -> REP-103


def pose(x=1.0, y=2.0, z=1.5) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R_WC
    T[:3, 3] = [x, y, z]
    return T


def frame(stamp=10.0, depth=None, labels=None, T=None) -> CameraFrame:
    if depth is None:
        depth = np.full((H, W), 3.0, dtype=np.float32)
    return CameraFrame(stamp=stamp, depth=depth, K=K, T_world_cam=pose() if T is None else T, labels=labels, frame_index=4)


def obs(label, score, centre=(4.0, 2.0, 1.0), size=(0.5, 0.6, 0.9), stamp=10.0) -> ObjectObservation:
    return ObjectObservation(label, score, np.array(centre, float), np.array(size, float), stamp)


def test_dims_and_field_layout_are_consistent():
    for fields, dim in ((EGO_FIELDS, EGO_DIM), (GEO_FIELDS, GEO_DIM), (OBJ_FIELDS, OBJ_DIM)):
        covered = np.zeros(dim, dtype=int)
        for sl in fields.values():
            covered[sl] += 1
        assert np.all(covered == 1)  # fields tile the vector exactly once
    assert GEO_FIELDS["class_hist"].stop - GEO_FIELDS["class_hist"].start == len(CLASSES) + 1
    assert OBJ_FIELDS["class_onehot"].stop - OBJ_FIELDS["class_onehot"].start == len(CLASSES)
    assert (EGO_DIM, GEO_DIM, OBJ_DIM) == (12, 28, 27)


def test_shapes_ego_and_plane_geometry():
    tok = Tokenizer(grid=(3, 5), max_objects=6).tokenize(frame(), [obs("chair", 0.8)])
    assert isinstance(tok, FrameTokens)
    assert tok.ego.shape == (EGO_DIM,) and tok.geometry.shape == (3, 5, GEO_DIM)
    assert tok.objects.shape == (6, OBJ_DIM) and tok.object_valid.shape == (6,)
    assert tok.grid == (3, 5) and tok.max_objects == 6
    for a in (tok.ego, tok.geometry, tok.objects):
        assert a.dtype == np.float32 and np.all(np.isfinite(a))
    np.testing.assert_allclose(tok.ego[EGO_FIELDS["position"]], [1, 2, 1.5])
    np.testing.assert_allclose(tok.ego[EGO_FIELDS["forward"]], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(tok.ego[EGO_FIELDS["up"]], [0, 0, 1], atol=1e-6)
    assert tok.ego[EGO_FIELDS["valid_fraction"]] == pytest.approx(1.0)
    assert tok.ego[EGO_FIELDS["mean_depth"]] == pytest.approx(3.0)
    g = tok.geometry
    # A wall 3 m ahead: every cell's mean point is at world x = 4.
    np.testing.assert_allclose(g[..., GEO_FIELDS["mean_xyz"]][..., 0], 4.0, atol=1e-5)
    np.testing.assert_allclose(g[..., GEO_FIELDS["free_range"]], 3.0)
    # Left columns see larger world y (REP-103 y points left), top rows higher z.
    y = g[..., GEO_FIELDS["mean_xyz"]][..., 1]
    z = g[..., GEO_FIELDS["mean_xyz"]][..., 2]
    assert np.all(np.diff(y, axis=1) < 0) and np.all(np.diff(z, axis=0) < 0)
    assert np.all(g[..., GEO_FIELDS["z_max"]] > g[..., GEO_FIELDS["z_min"]])
    np.testing.assert_allclose(np.linalg.norm(g[..., GEO_FIELDS["ray_dir"]], axis=-1), 1.0, atol=1e-6)


def test_invalid_depth_gives_zeros_not_nan():
    depth = np.full((H, W), 2.0, dtype=np.float32)
    depth[:, : W // 2] = np.nan  # left half: no reading
    depth[: H // 2, W // 2 :] = 0.0  # top right: zeros
    tok = Tokenizer(grid=(2, 2)).tokenize(frame(depth=depth), [])
    g = tok.geometry
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(tok.ego))
    assert g[0, 0, GEO_FIELDS["valid_fraction"]][0] == 0.0
    assert np.all(g[0, 0, GEO_FIELDS["mean_xyz"]] == 0.0) and g[0, 0, GEO_FIELDS["z_min"]][0] == 0.0
    assert g[1, 1, GEO_FIELDS["valid_fraction"]][0] == pytest.approx(1.0)
    assert g[1, 1, GEO_FIELDS["mean_depth"]][0] == pytest.approx(2.0)
    assert tok.ego[EGO_FIELDS["valid_fraction"]] == pytest.approx(0.25)
    # no depth at all
    tok = Tokenizer().tokenize(frame(depth=np.zeros((H, W), np.float32)), [])
    assert np.all(np.isfinite(tok.geometry)) and tok.ego[EGO_FIELDS["mean_depth"]] == 0.0


def test_objects_sorted_by_score_truncated_and_encoded():
    observations = [obs(CLASSES[i % len(CLASSES)], s) for i, s in enumerate([0.5, 0.9, 0.7, 0.95, 0.6])]
    observations.append(obs("not a class", 0.99))  # ignored
    observations.append(obs("chair", 0.97, centre=(np.nan, 0, 0)))  # ignored: NaN
    tok = Tokenizer(max_objects=3).tokenize(frame(), observations)
    assert tok.object_valid.tolist() == [True, True, True]
    assert [o.score for o in tok.observations] == [0.95, 0.9, 0.7]
    sc = tok.objects[:, OBJ_FIELDS["score"]][:, 0]
    np.testing.assert_allclose(sc, [0.95, 0.9, 0.7], rtol=1e-6)
    onehot = tok.objects[:, OBJ_FIELDS["class_onehot"]]
    assert onehot.sum(axis=1).tolist() == [1, 1, 1]
    assert CLASSES[int(onehot[0].argmax())] == CLASSES[3]
    np.testing.assert_allclose(tok.objects[0, OBJ_FIELDS["center"]], [4, 2, 1])
    np.testing.assert_allclose(tok.objects[0, OBJ_FIELDS["log_size"]], np.log([0.5, 0.6, 0.9]), rtol=1e-6)
    # fewer observations than slots: zero rows, invalid
    tok = Tokenizer(max_objects=4).tokenize(frame(), observations[:2])
    assert tok.object_valid.tolist() == [True, True, False, False]
    assert np.all(tok.objects[2:] == 0)


def test_time_is_relative_to_stream_start_and_reset():
    tk = Tokenizer()
    t0 = tk.tokenize(frame(stamp=100.0), [])
    t1 = tk.tokenize(frame(stamp=125.0), [obs("chair", 0.9, stamp=125.0)])
    assert t0.ego[EGO_FIELDS["time"]][0] == 0.0 and t0.time == 0.0
    assert t1.ego[EGO_FIELDS["time"]][0] == pytest.approx(25.0 * TIME_SCALE)
    assert t1.objects[0, OBJ_FIELDS["time"]][0] == pytest.approx(25.0 * TIME_SCALE)
    tk.reset()
    assert tk.tokenize(frame(stamp=125.0), []).time == 0.0
    assert tk.tokenize(frame(stamp=130.0), [], t0=100.0).time == pytest.approx(30.0)


def test_class_histogram_from_labels_and_from_detections_agree():
    labels = np.zeros((H, W), dtype=np.int64)
    labels[0:60, 0:40] = CLASS_TO_ID["sofa"]  # exactly grid cell (0, 0) of a 2x4 grid
    labels[60:120, 120:160] = CLASS_TO_ID["tv"]  # cell (1, 3)
    labels[5, 100] = 999  # unknown id counts as none
    f_lab = frame(labels=labels)
    tk = Tokenizer(grid=(2, 4))
    hist = tk.tokenize(f_lab, []).geometry[..., GEO_FIELDS["class_hist"]]
    np.testing.assert_allclose(hist.sum(-1), 1.0, atol=1e-6)
    assert hist[0, 0, CLASS_TO_ID["sofa"]] == pytest.approx(1.0)
    assert hist[1, 3, CLASS_TO_ID["tv"]] == pytest.approx(1.0)
    assert hist[0, 2, 0] == pytest.approx(1.0)
    # Same scene without a label image: rasterised from lifted detections' masks.
    f_nolab = frame()
    observations = lift_detections(f_nolab, detections_from_labels(labels))
    hist2 = tk.tokenize(f_nolab, observations).geometry[..., GEO_FIELDS["class_hist"]]
    np.testing.assert_allclose(hist2, hist, atol=1e-6)
    # Boxes only (no masks): still the right cells.
    boxed = lift_detections(f_nolab, [Detection(d.label, 1.0, d.box_xyxy) for d in detections_from_labels(labels)])
    hist3 = tk.tokenize(f_nolab, boxed).geometry[..., GEO_FIELDS["class_hist"]]
    np.testing.assert_allclose(hist3, hist, atol=1e-6)
    # World boxes only (e.g. after the noise model): projected into the image.
    bare = [ObjectObservation(o.label, o.score, o.center, o.size + np.array([0.3, 0, 0]), o.stamp) for o in observations]
    hist4 = tk.tokenize(f_nolab, bare).geometry[..., GEO_FIELDS["class_hist"]]
    assert hist4[0, 0, CLASS_TO_ID["sofa"]] > 0.9 and hist4[1, 3, CLASS_TO_ID["tv"]] > 0.9


def test_rejects_bad_configuration():
    with pytest.raises(ValueError):
        Tokenizer(grid=(0, 4))
    with pytest.raises(ValueError):
        Tokenizer(max_objects=0)
    with pytest.raises(ValueError, match="smaller"):
        Tokenizer(grid=(4, 4)).tokenize(frame(depth=np.ones((3, 3), np.float32)), [])


def test_tokenize_is_fast_at_160x120():
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.5, 6.0, (H, W)).astype(np.float32)
    depth[rng.random((H, W)) < 0.2] = np.nan
    labels = rng.integers(0, len(CLASSES) + 1, (H, W))
    f = frame(depth=depth, labels=labels)
    observations = [obs(CLASSES[i % 16], float(rng.random())) for i in range(20)]
    tk = Tokenizer()
    tk.tokenize(f, observations)  # warm the per-shape cache
    n = 50
    t = time.perf_counter()
    for _ in range(n):
        tk.tokenize(f, observations)
    ms = (time.perf_counter() - t) / n * 1e3
    print(f"tokenize 160x120, 20 objects: {ms:.2f} ms")
    assert ms < 15.0  # budget 5 ms on an idle core; slack for a shared machine


def test_large_images_are_subsampled_consistently():
    h, w = 480, 640
    K2 = np.array([[400.0, 0, 319.5], [0, 400.0, 239.5], [0, 0, 1]])
    v, u = np.mgrid[0:h, 0:w]
    depth = (2.0 + 0.004 * u + 0.002 * v).astype(np.float32)  # a tilted plane
    depth[100:200, 100:300] = np.nan
    labels = np.zeros((h, w), np.int64)
    labels[240:400, 320:560] = CLASS_TO_ID["sofa"]
    f = CameraFrame(1.0, depth, K2, pose(), labels=labels)
    fast, full = Tokenizer(), Tokenizer(max_pixels=10**9)
    a, b = fast.tokenize(f, []), full.tokenize(f, [])
    np.testing.assert_allclose(a.geometry, b.geometry, atol=0.03)
    np.testing.assert_allclose(a.ego, b.ego, atol=0.01)
    # Observations with full-resolution masks and boxes are subsampled too.
    f_nolab = CameraFrame(1.0, depth, K2, pose())
    observations = lift_detections(f_nolab, detections_from_labels(labels))
    boxed = lift_detections(f_nolab, [Detection(d.label, 1.0, d.box_xyxy) for d in detections_from_labels(labels)])
    for o in (observations, boxed):
        hist = fast.tokenize(f_nolab, o).geometry[..., GEO_FIELDS["class_hist"]]
        np.testing.assert_allclose(hist, b.geometry[..., GEO_FIELDS["class_hist"]], atol=0.02)
    n = 20
    t = time.perf_counter()
    for _ in range(n):
        fast.tokenize(f, [])
    ms = (time.perf_counter() - t) / n * 1e3
    print(f"tokenize 640x480 (subsampled): {ms:.2f} ms")
    assert ms < 20.0
