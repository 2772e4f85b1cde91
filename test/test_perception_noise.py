"""Detector noise model: rates over many draws, determinism, pose drift."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from spatial_ttt_ros.classes import CLASSES
from spatial_ttt_ros.frames import CameraFrame, ObjectObservation
from spatial_ttt_ros.perception.noise import PRESETS, DetectorNoise, PoseDrift

H, W = 120, 160
K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
R_WC = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)


def pose(x=0.0, y=0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R_WC
    T[:3, 3] = [x, y, 1.5]
    return T


def observations(n=10) -> list[ObjectObservation]:
    return [
        ObjectObservation(CLASSES[i % len(CLASSES)], 1.0, np.array([3.0, i * 0.3, 0.5]), np.array([0.5, 0.6, 0.9]), 1.0, 0)
        for i in range(n)
    ]


def test_exact_preset_changes_nothing():
    n = DetectorNoise.preset("exact")
    assert n.is_exact
    obs = observations()
    out = n.apply(obs, np.random.default_rng(0))
    assert [(o.label, o.score) for o in out] == [(o.label, o.score) for o in obs]
    assert all(np.array_equal(a.center, b.center) and np.array_equal(a.size, b.size) for a, b in zip(out, obs))
    f = CameraFrame(1.0, np.ones((H, W), np.float32), K, pose(), labels=np.zeros((H, W), np.int32))
    f2, out2 = n.start(5)(f, obs)
    assert f2 is f and len(out2) == len(obs)


def test_noisy_preset_rates_within_tolerance():
    n = DetectorNoise.preset("noisy")
    assert not n.is_exact and n.drop_labels and n.has_pose_drift
    rng = np.random.default_rng(123)
    obs = observations(10)
    frames, kept, fps, confused = 3000, 0, 0, 0
    centre_err, size_ratio = [], []
    for _ in range(frames):
        out = n.apply(obs, rng, T_world_cam=pose(), K=K, image_shape=(H, W), stamp=1.0)
        for o in out:
            if o.extras.get("false_positive"):
                fps += 1
                continue
            kept += 1
            confused += o.label != o.extras["true_label"]
            src = obs[CLASSES.index(o.extras["true_label"])]
            centre_err.append(o.center - src.center)
            size_ratio.append(o.size / src.size)
    miss = 1 - kept / (frames * len(obs))
    assert miss == pytest.approx(0.15, abs=0.01)
    assert fps / frames == pytest.approx(0.3, abs=0.03)
    assert confused / kept == pytest.approx(0.05, abs=0.008)
    # Lifted sizes and centres keep their scale: errors are centred.
    assert abs(np.mean(np.array(centre_err))) < 0.01
    assert np.median(np.array(size_ratio)) == pytest.approx(1.0, abs=0.02)


def test_sparse_preset_is_thinner_and_more_scattered_than_noisy():
    """"sparse" (a real detector on a slow camera): 80 % misses, 0.3 m centre noise per axis."""
    stats = {}
    for name in ("noisy", "sparse"):
        rng = np.random.default_rng(7)
        obs = observations(10)
        kept, err = 0, []
        for _ in range(2000):
            for o in DetectorNoise.preset(name).apply(obs, rng, T_world_cam=pose(), K=K, image_shape=(H, W), stamp=1.0):
                if not o.extras.get("false_positive"):
                    kept += 1
                    err.append(o.center - obs[CLASSES.index(o.extras["true_label"])].center)
        stats[name] = (1 - kept / 20000, float(np.median(np.abs(np.array(err)[:, :2]))))
    assert stats["sparse"][0] == pytest.approx(0.8, abs=0.02)
    assert stats["sparse"][1] > 3 * stats["noisy"][1]  # 0.2 m against 0.05 m (median, per axis)
    assert DetectorNoise.preset("sparse").drop_labels  # as "noisy": no label image


def test_box_size_and_range_noise_magnitudes():
    rng = np.random.default_rng(5)
    obs = observations(10)
    T = pose()
    box = DetectorNoise(box_noise=0.05, size_noise=0.10)
    err, log_ratio = [], []
    for _ in range(1000):
        for o, src in zip(box.apply(obs, rng), obs):
            err.append(o.center - src.center)
            log_ratio.append(np.log(o.size / src.size))
    np.testing.assert_allclose(np.std(err, axis=0), 0.05, rtol=0.08)
    np.testing.assert_allclose(np.std(log_ratio, axis=0), 0.10, rtol=0.08)
    # Range noise moves the box along the viewing ray, by a relative amount.
    rng_noise = DetectorNoise(depth_noise=0.03)
    rel = []
    for _ in range(300):
        for o, src in zip(rng_noise.apply(obs, rng, T_world_cam=T, K=K, image_shape=(H, W)), obs):
            a, b = src.center - T[:3, 3], o.center - T[:3, 3]
            assert np.linalg.norm(np.cross(a, b)) < 1e-9  # same ray
            rel.append(np.linalg.norm(b) / np.linalg.norm(a) - 1)
            np.testing.assert_allclose(o.size / src.size, 1 + rel[-1])
    assert np.std(rel) == pytest.approx(0.03, rel=0.08)


def test_false_positives_lie_in_the_camera_view():
    n = replace(DetectorNoise(), false_positive_rate=5.0)
    rng = np.random.default_rng(0)
    T = pose(2.0, 1.0)
    fps = [o for _ in range(50) for o in n.apply([], rng, T_world_cam=T, K=K, image_shape=(H, W), stamp=2.0, frame_index=9)]
    assert len(fps) > 150
    for o in fps:
        pc = R_WC.T @ (o.center - T[:3, 3])
        assert 0.8 <= pc[2] <= 5.0
        u, v = K[0, 0] * pc[0] / pc[2] + K[0, 2], K[1, 1] * pc[1] / pc[2] + K[1, 2]
        assert 0 <= u <= W and 0 <= v <= H
        assert 0.35 <= o.score <= 0.7 and o.stamp == 2.0 and o.frame_index == 9 and o.label in CLASSES
    # Without a camera false positives need an anchor observation.
    assert n.apply([], rng) == []


def test_deterministic_for_a_seed_and_different_across_seeds():
    n = DetectorNoise.preset("noisy")

    def run(seed):
        sess = n.start(seed)
        res = []
        for i in range(40):
            f = CameraFrame(i * 0.2, np.full((H, W), 2.0, np.float32), K, pose(0.1 * i, 0.02 * i), frame_index=i)
            f2, out = sess(f, observations(6))
            res.append((f2.T_world_cam.copy(), [(o.label, o.score, tuple(o.center)) for o in out]))
        return res

    a, b, c = run(7), run(7), run(8)
    assert all(np.array_equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b))
    assert any(x[1] != y[1] for x, y in zip(a, c))


def test_pose_drift_grows_about_one_percent_per_metre():
    n = replace(DetectorNoise.preset("noisy"), drift_per_second=0.0)
    errors, yaws = [], []
    for seed in range(30):
        drift = PoseDrift(n, np.random.default_rng(seed))
        for i in range(301):  # 30 m straight at 10 cm steps
            D = drift.update(pose(0.1 * i), 0.2 * i)
        assert drift.distance == pytest.approx(30.0)
        T = pose(30.0)
        errors.append(np.linalg.norm((D @ T)[:3, 3] - T[:3, 3]))  # believed vs true position
        yaws.append(drift.yaw)
    errors = np.array(errors)
    assert np.all(errors <= 0.01 * 30 + 1e-9)  # never more than 1% of the distance
    assert np.median(errors) > 0.6 * 0.01 * 30  # and close to it over 30 m
    assert np.std(yaws) == pytest.approx(0.005 * np.sqrt(30), rel=0.35)
    # The drift starts at zero.
    drift = PoseDrift(n, np.random.default_rng(0))
    np.testing.assert_allclose(drift.update(pose(5.0), 0.0), np.eye(4))


def test_session_moves_observations_with_the_drifted_pose():
    n = replace(DetectorNoise(), drift_per_metre=0.05, yaw_drift=0.02, drop_labels=True)
    sess = n.start(3)
    obs = observations(3)
    for i in range(50):
        f = CameraFrame(i * 0.2, np.full((H, W), 2.0, np.float32), K, pose(0.2 * i), labels=np.ones((H, W), np.int32), frame_index=i)
        f2, out = sess(f, obs)
    assert f2.labels is None
    D = f2.T_world_cam @ np.linalg.inv(f.T_world_cam)
    assert not np.allclose(D, np.eye(4))
    for o, src in zip(out, obs):
        # the observation seen from the drifted camera sits where the true one sits in the true camera
        in_true_cam = np.linalg.inv(f.T_world_cam) @ np.append(src.center, 1)
        in_drifted_cam = np.linalg.inv(f2.T_world_cam) @ np.append(o.center, 1)
        np.testing.assert_allclose(in_drifted_cam, in_true_cam, atol=1e-9)


def test_invalid_parameters_rejected():
    with pytest.raises(ValueError, match="miss_rate"):
        DetectorNoise(miss_rate=1.5)
    with pytest.raises(ValueError, match="box_noise"):
        DetectorNoise(box_noise=-0.1)
    with pytest.raises(ValueError, match="preset"):
        DetectorNoise.preset("loud")
    assert set(PRESETS) >= {"exact", "noisy"}
