"""Detector noise model: what a real front-end does to perfect (simulated) detections.

Used by training (so the same weights work on real detections) and by the noisy
quality benchmark. Two layers:

- :class:`DetectorNoise` (immutable parameters) ``.apply(observations, rng, ...)``:
  per-frame, independent errors on world observations: misses, false positives,
  class confusion, centre noise, size noise, range (depth) noise, score jitter.
- :class:`PoseDrift`: a slowly growing error of the camera pose, as visual-inertial
  odometry or SLAM accumulate: translation drift proportional to the distance
  walked (fraction ``drift_per_metre``, in a slowly turning direction, so ~linear
  over tens of metres and sub-linear beyond, like SLAM), a random walk in time
  (``drift_per_second``, m/sqrt(s)), and a heading error that random-walks with
  distance (``yaw_drift``, rad/sqrt(m)). The believed camera pose is the true one
  shifted by the translation error and turned by the heading error about the
  camera itself; everything seen in the frame is placed relative to that believed
  pose, so objects get the translation error plus heading error x their range.

:class:`NoiseSession` ties both to one stream with one seeded generator:
``frame2, obs2 = session(frame, obs)``. Same seed + same inputs = same outputs.

Presets (``DetectorNoise.preset(name)``): ``"exact"`` (no noise at all) and ``"noisy"``
(15% misses, 0.3 false positives per frame, 5% class confusion, 5 cm centre noise,
10% size noise, 3% range noise, 1% translation drift per metre, 0.3 deg/sqrt(m)
heading random walk, and the label image dropped so the geometry tokens' class histogram comes
from the noisy detections too), and ``"sparse"`` (as ``"noisy"`` with 80% misses, 0.15 false
positives per frame, 30 cm centre noise, 30% size noise and lower scores: evidence as thin and
scattered as YOLOX-Nano's on the HoloLens walk).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields, replace

import numpy as np

from spatial_ttt_ros.classes import CLASSES, TYPICAL_SIZE
from spatial_ttt_ros.frames import CameraFrame, ObjectObservation

# Classes a detector plausibly mistakes for each other; confusion picks from these
# most of the time (CONFUSABLE_SHARE) and from any other class otherwise.
CONFUSABLE: dict[str, tuple[str, ...]] = {
    "chair": ("sofa", "table"),
    "table": ("cabinet", "chair"),
    "sofa": ("chair", "bed"),
    "bed": ("sofa",),
    "tv": ("laptop", "microwave"),
    "toilet": ("sink", "chair"),
    "sink": ("toilet",),
    "refrigerator": ("cabinet", "oven"),
    "microwave": ("oven", "tv"),
    "oven": ("microwave", "cabinet"),
    "potted plant": ("vase",),
    "cabinet": ("table", "refrigerator"),
    "lamp": ("vase", "potted plant"),
    "laptop": ("tv",),
    "clock": ("vase", "tv"),
    "vase": ("potted plant", "clock"),
}
CONFUSABLE_SHARE = 0.8


@dataclass(frozen=True)
class DetectorNoise:
    """Noise parameters (all zero = exact detections).

    Attributes:
        miss_rate: probability that a true observation is dropped (per frame).
        false_positive_rate: mean number of false positives per frame (Poisson).
        confusion_rate: probability that a kept observation gets a wrong class.
        box_noise: std of the world centre error per axis, m.
        size_noise: std of the log size error per axis (0.1 ~ 10%).
        depth_noise: std of the relative range error along the camera ray (the
            whole box moves towards / away from the camera and scales with it).
        score_noise: std of the score decrease (|N(0, s)|, scores stay in 0.3..1).
        drift_per_metre: translation drift, as a fraction of the distance walked.
        yaw_drift: heading random walk, rad/sqrt(m) walked.
        drift_per_second: translation random walk, m/sqrt(s).
        depth_image_noise: relative per-pixel std added to the depth image (geometry
            tokens), 0 = untouched.
        drop_labels: remove the frame's label image (the class histogram then comes
            from the noisy observations).
        fp_depth: (min, max) range of false positives from the camera, m.
        seed: default seed of :meth:`start`.
    """

    miss_rate: float = 0.0
    false_positive_rate: float = 0.0
    confusion_rate: float = 0.0
    box_noise: float = 0.0
    size_noise: float = 0.0
    depth_noise: float = 0.0
    score_noise: float = 0.0
    drift_per_metre: float = 0.0
    yaw_drift: float = 0.0
    drift_per_second: float = 0.0
    depth_image_noise: float = 0.0
    drop_labels: bool = False
    fp_depth: tuple[float, float] = (0.8, 5.0)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("miss_rate", "confusion_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "seed" or isinstance(v, (bool, tuple)):
                continue
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"{f.name} must be a finite non-negative number, got {v}")
        if not 0 < self.fp_depth[0] <= self.fp_depth[1]:
            raise ValueError(f"fp_depth must be (min, max) with 0 < min <= max, got {self.fp_depth}")

    @staticmethod
    def preset(name: str, seed: int = 0) -> "DetectorNoise":
        """``"exact"``, ``"noisy"`` or ``"sparse"`` (see the module docstring for the values)."""
        if name not in PRESETS:
            raise ValueError(f"unknown noise preset {name!r}; choose one of {sorted(PRESETS)}")
        return replace(PRESETS[name], seed=seed)

    @property
    def is_exact(self) -> bool:
        """True when applying this model changes nothing."""
        return all(
            getattr(self, f.name) == 0.0
            for f in fields(self)
            if f.name not in ("drop_labels", "fp_depth", "seed")
        ) and not self.drop_labels

    @property
    def has_pose_drift(self) -> bool:
        return self.drift_per_metre > 0 or self.yaw_drift > 0 or self.drift_per_second > 0

    def start(self, seed: int | None = None) -> "NoiseSession":
        """A per-stream session (its own generator and pose drift)."""
        return NoiseSession(self, self.seed if seed is None else seed)

    # ------------------------------------------------------------------------------
    def apply(
        self,
        observations: list[ObjectObservation],
        rng: np.random.Generator,
        T_world_cam: np.ndarray | None = None,
        K: np.ndarray | None = None,
        image_shape: tuple[int, int] | None = None,
        stamp: float | None = None,
        frame_index: int = -1,
    ) -> list[ObjectObservation]:
        """Noisy copies of one frame's world observations (inputs are not modified).

        Args:
            observations: the frame's exact observations (world frame).
            rng: the generator to draw from (``np.random.default_rng(seed)``).
            T_world_cam, K, image_shape: the frame's camera; with them false positives
                are placed inside the camera's view at ``fp_depth`` range and the
                range noise acts along the true viewing ray. Without them false
                positives appear near a random true observation (none if there are
                none) and the range noise acts along the world x axis.
            stamp, frame_index: stamp of false positives (default: first observation's).

        Returns:
            Observations in random-free order: kept true ones in input order, then the
            false positives (``extras["false_positive"] = True``). Altered observations
            lose their ``mask``/``box_xyxy`` extras (they no longer match the image);
            ``extras["true_label"]`` holds the label before confusion.
        """
        if self.is_exact:
            return [copy.copy(o) for o in observations]
        cam = None if T_world_cam is None else np.asarray(T_world_cam, dtype=np.float64)[:3, 3]
        out: list[ObjectObservation] = []
        for o in observations:
            # Draw every random number for every observation, whatever the branch, so
            # that the stream of draws (and thus later frames) does not depend on
            # which observations happen to be missed.
            u_miss, u_conf, u_pick = rng.random(3)
            conf_idx = rng.integers(0, 1 << 30)
            c_noise = rng.normal(0.0, 1.0, 3)
            s_noise = rng.normal(0.0, 1.0, 3)
            r_noise = rng.normal()
            sc_noise = abs(rng.normal())
            if u_miss < self.miss_rate:
                continue
            label = o.label
            if u_conf < self.confusion_rate:
                label = _confuse(label, u_pick, int(conf_idx))
            centre = np.asarray(o.center, dtype=np.float64).copy()
            size = np.asarray(o.size, dtype=np.float64).copy()
            if self.depth_noise > 0:
                f = max(0.2, 1.0 + self.depth_noise * r_noise)
                origin = cam if cam is not None else centre - np.array([1.0, 0.0, 0.0])
                centre = origin + (centre - origin) * f
                size = size * f
            centre = centre + self.box_noise * c_noise
            size = np.maximum(size * np.exp(self.size_noise * s_noise), 0.01)
            score = float(np.clip(o.score - self.score_noise * sc_noise, 0.3, 1.0))
            extras = {k: v for k, v in o.extras.items() if k not in ("mask", "box_xyxy")}
            extras["true_label"] = o.extras.get("true_label", o.label)
            out.append(replace(o, label=label, center=centre, size=size, score=score, extras=extras))

        n_fp = int(rng.poisson(self.false_positive_rate)) if self.false_positive_rate > 0 else 0
        fp_stamp = stamp if stamp is not None else (observations[0].stamp if observations else 0.0)
        fp_index = frame_index if frame_index >= 0 else (observations[0].frame_index if observations else -1)
        for _ in range(n_fp):
            fp = self._false_positive(observations, rng, T_world_cam, K, image_shape, fp_stamp, fp_index)
            if fp is not None:
                out.append(fp)
        return out

    def _false_positive(self, observations, rng, T, K, shape, stamp, frame_index) -> ObjectObservation | None:
        label = CLASSES[int(rng.integers(len(CLASSES)))]
        base = np.array(TYPICAL_SIZE[label])
        if rng.random() < 0.5:  # random orientation in the floor plane
            base = base[[1, 0, 2]]
        size = base * rng.uniform(0.6, 1.4, 3)
        score = float(rng.uniform(0.35, 0.7))
        if T is not None and K is not None and shape is not None:
            h, w = shape
            K = np.asarray(K, dtype=np.float64)
            T = np.asarray(T, dtype=np.float64)
            u, v = rng.uniform(0, w), rng.uniform(0, h)
            r = rng.uniform(*self.fp_depth)
            pc = np.array([(u - K[0, 2]) / K[0, 0] * r, (v - K[1, 2]) / K[1, 1] * r, r])
            centre = T[:3, :3] @ pc + T[:3, 3]
        elif observations:
            anchor = observations[int(rng.integers(len(observations)))]
            centre = np.asarray(anchor.center, dtype=np.float64) + rng.normal(0.0, 1.5, 3) * np.array([1, 1, 0.2])
        else:
            return None
        return ObjectObservation(
            label=label,
            score=score,
            center=centre,
            size=size,
            stamp=float(stamp),
            frame_index=int(frame_index),
            extras={"false_positive": True},
        )


def _confuse(label: str, u_pick: float, idx: int) -> str:
    similar = CONFUSABLE.get(label, ())
    if similar and u_pick < CONFUSABLE_SHARE:
        return similar[idx % len(similar)]
    others = [c for c in CLASSES if c != label]
    return others[idx % len(others)]


PRESETS: dict[str, DetectorNoise] = {
    "exact": DetectorNoise(),
    "noisy": DetectorNoise(
        miss_rate=0.15,
        false_positive_rate=0.3,
        confusion_rate=0.05,
        box_noise=0.05,
        size_noise=0.10,
        depth_noise=0.03,
        score_noise=0.2,
        drift_per_metre=0.01,
        yaw_drift=0.005,
        drift_per_second=0.002,
        depth_image_noise=0.01,
        drop_labels=True,
    ),
}
# "sparse": evidence as thin and scattered as a real detector's. Measured on the HoloLens walk
# with YOLOX-Nano (2 detections a frame at 5 Hz; a lifted centre lies a median 0.3 m from its
# object's, against 0.05 m in "noisy"; scores median 0.57). For training the learned readout
# and choosing its threshold on such evidence; the rest as "noisy".
PRESETS["sparse"] = replace(PRESETS["noisy"], miss_rate=0.8, false_positive_rate=0.15, box_noise=0.3,
                            size_noise=0.3, score_noise=0.5)


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class PoseDrift:
    """Accumulated odometry drift along one stream.

    Call :meth:`update` once per frame with the *true* camera pose; it returns the
    (4, 4) transform D (world -> drifted world) for that frame:
    D = Tr(c + t_err) Rz(yaw_err) Tr(-c) with c the true camera position, so
    ``D @ T_world_cam`` is the pose the robot believes (position off by t_err,
    heading by yaw_err) and ``transform_observation`` places an observation of this
    frame relative to that believed pose. D is the identity at the first frame.
    """

    # How fast the translation-drift direction turns, rad/sqrt(m): ~50 m correlation.
    DIRECTION_WALK = 0.2

    def __init__(self, noise: DetectorNoise, rng: np.random.Generator):
        self.noise = noise
        self.rng = rng
        self.reset()

    def reset(self) -> None:
        self._origin: np.ndarray | None = None
        self._last_pos: np.ndarray | None = None
        self._last_stamp: float | None = None
        self.distance = 0.0  # m walked so far
        self.translation = np.zeros(3)
        self.yaw = 0.0
        self._direction = float(self.rng.uniform(-np.pi, np.pi))
        self.D = np.eye(4)

    def update(self, T_world_cam: np.ndarray, stamp: float) -> np.ndarray:
        pos = np.asarray(T_world_cam, dtype=np.float64)[:3, 3]
        # Draw the same numbers every frame whatever the motion (determinism).
        walk, yaw_walk, rw = self.rng.normal(), self.rng.normal(), self.rng.normal(0.0, 1.0, 3)
        if self._origin is None:
            self._origin = pos.copy()
        else:
            step = float(np.linalg.norm(pos - self._last_pos))
            dt = max(0.0, float(stamp) - float(self._last_stamp))
            self.distance += step
            self._direction += self.DIRECTION_WALK * np.sqrt(step) * walk
            heading = np.array([np.cos(self._direction), np.sin(self._direction), 0.0])
            self.translation = self.translation + self.noise.drift_per_metre * step * heading
            self.translation = self.translation + self.noise.drift_per_second * np.sqrt(dt) * rw * np.array([1, 1, 0.3])
            self.yaw += self.noise.yaw_drift * np.sqrt(step) * yaw_walk
        self._last_pos, self._last_stamp = pos, float(stamp)
        # Turn about the camera, then shift: D = Tr(c + t) Rz Tr(-c).
        R = _rot_z(self.yaw)
        D = np.eye(4)
        D[:3, :3] = R
        D[:3, 3] = pos + self.translation - R @ pos
        self.D = D
        return D

    def transform_observation(self, obs: ObjectObservation, D: np.ndarray | None = None) -> ObjectObservation:
        """The observation as seen through drift D (centre moved, axis-aligned size of the rotated box)."""
        D = self.D if D is None else D
        centre = D[:3, :3] @ np.asarray(obs.center, dtype=np.float64) + D[:3, 3]
        size = np.abs(D[:3, :3]) @ np.asarray(obs.size, dtype=np.float64)
        extras = {k: v for k, v in obs.extras.items() if k not in ("mask", "box_xyxy")}
        return replace(obs, center=centre, size=size, extras=extras)


class NoiseSession:
    """Noise for one stream: a seeded generator, detector noise and pose drift.

    ``session(frame, observations) -> (frame', observations')`` where ``frame'`` has the
    drifted pose, a noisy depth image (``depth_image_noise``) and no labels when
    ``drop_labels``; ``observations'`` have detector noise, then the same drift.
    With the exact model both come back unchanged (same objects for the frame).
    """

    def __init__(self, noise: DetectorNoise, seed: int):
        self.noise = noise
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.drift = PoseDrift(noise, self.rng)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.drift = PoseDrift(self.noise, self.rng)

    def __call__(
        self, frame: CameraFrame, observations: list[ObjectObservation]
    ) -> tuple[CameraFrame, list[ObjectObservation]]:
        if self.noise.is_exact:
            return frame, list(observations)
        noisy = self.noise.apply(
            observations,
            self.rng,
            T_world_cam=frame.T_world_cam,
            K=frame.K,
            image_shape=frame.depth.shape,
            stamp=frame.stamp,
            frame_index=frame.frame_index,
        )
        depth = frame.depth
        if self.noise.depth_image_noise > 0:
            depth = depth * (1.0 + self.noise.depth_image_noise * self.rng.standard_normal(depth.shape, dtype=np.float32))
        T = frame.T_world_cam
        if self.noise.has_pose_drift:
            D = self.drift.update(frame.T_world_cam, frame.stamp)
            T = D @ frame.T_world_cam
            noisy = [self.drift.transform_observation(o, D) for o in noisy]
        out_frame = CameraFrame(
            stamp=frame.stamp,
            depth=depth,
            K=frame.K,
            T_world_cam=T,
            rgb=frame.rgb,
            labels=None if self.noise.drop_labels else frame.labels,
            frame_index=frame.frame_index,
        )
        return out_frame, noisy
