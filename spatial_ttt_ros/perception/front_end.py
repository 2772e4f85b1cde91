"""The front-end: one camera frame -> world observations -> frame tokens.

The source of meaning is either an ONNX detector run on the colour image
(``perception.detector.OnnxDetector``; any object with ``detect(rgb) -> list[Detection]``
works) or a label image (class id per pixel, as simulators and segmentation nodes
publish). Detections are lifted into the world with depth, intrinsics and pose
(``perception.lifting``), optionally perturbed by the detector noise model (the noisy
benchmark), and tokenised (``perception.tokens.Tokenizer``).

Counters (``counters()``) say what was lost on the way, for the node's diagnostics:
detections skipped for lack of depth, frames without a label image in label mode,
and the fraction of invalid depth pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spatial_ttt_ros.frames import CameraFrame, Detection, ObjectObservation
from spatial_ttt_ros.perception.label_image import detections_from_labels
from spatial_ttt_ros.perception.lifting import lift_detections_ex, valid_depth_mask
from spatial_ttt_ros.perception.tokens import FrameTokens, Tokenizer

SOURCES = ("labels", "detector")


@dataclass
class FrontEndCounters:
    frames: int = 0
    detections: int = 0  # 2D detections before lifting
    observations: int = 0  # lifted (after noise, when a noise model is on)
    skipped_detections: int = 0  # detections that could not be lifted
    skipped_by_reason: dict = field(default_factory=dict)  # reason -> count
    frames_without_labels: int = 0  # label mode, frame had no label image
    frames_without_rgb: int = 0  # detector mode, frame had no colour image
    invalid_depth_pixels: int = 0
    depth_pixels: int = 0

    @property
    def invalid_depth_fraction(self) -> float:
        return self.invalid_depth_pixels / self.depth_pixels if self.depth_pixels else 0.0

    def as_dict(self) -> dict:
        return {
            "frames": self.frames,
            "detections": self.detections,
            "observations": self.observations,
            "skipped_detections": self.skipped_detections,
            "skipped_by_reason": dict(self.skipped_by_reason),
            "frames_without_labels": self.frames_without_labels,
            "frames_without_rgb": self.frames_without_rgb,
            "invalid_depth_pixels": self.invalid_depth_pixels,
            "invalid_depth_fraction": self.invalid_depth_fraction,
        }


class FrontEnd:
    """Frame -> (observations, tokens).

    Args:
        source: "labels" (frame.labels, class ids) or "detector" (ONNX detector on
            frame.rgb).
        detector: the detector ("detector" source; anything with
            ``detect(rgb) -> list[Detection]``, built by ``pipeline.build_pipeline``).
        model_path: the detector's model file, reported in ``config()``.
        grid, max_objects: tokenizer layout; must match the memory model's.
        noise: None, a ``DetectorNoise``, or a preset name ("exact", "noisy", "sparse"); applied
            to the lifted observations and the frame (pose drift, depth noise, label
            image dropped) before tokenising.
        noise_seed: seed of the noise session (same seed + frames = same tokens).
        min_label_pixels: label-image components smaller than this are ignored.
        lift_kwargs: extra ``lift_detections_ex`` settings.
    """

    def __init__(
        self,
        source: str = "labels",
        detector=None,
        model_path: str | Path | None = None,
        grid: tuple[int, int] = (4, 4),
        max_objects: int = 16,
        noise=None,
        noise_seed: int = 0,
        min_label_pixels: int = 20,
        lift_kwargs: dict | None = None,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"front-end source must be one of {SOURCES}, got {source!r}")
        self.source = source
        self.detector = detector
        if source == "detector" and detector is None:
            raise ValueError("the detector source needs a detector object (pipeline.build_pipeline builds one)")
        self.model_path = None if model_path is None else str(model_path)
        self.tokenizer = Tokenizer(grid=grid, max_objects=max_objects)
        self.min_label_pixels = int(min_label_pixels)
        self.lift_kwargs = dict(lift_kwargs or {})
        self.noise = _noise_model(noise)
        self.noise_seed = int(noise_seed)
        self.noise_session = None if self.noise is None or self.noise.is_exact else self.noise.start(self.noise_seed)
        self.stats = FrontEndCounters()

    # ------------------------------------------------------------------------------
    @property
    def grid(self) -> tuple[int, int]:
        return self.tokenizer.grid

    @property
    def max_objects(self) -> int:
        return self.tokenizer.max_objects

    @property
    def t0(self) -> float | None:
        """Stamp of the stream's first frame (None before any frame)."""
        return self.tokenizer.t0

    @t0.setter
    def t0(self, value: float | None) -> None:
        self.tokenizer.t0 = None if value is None else float(value)

    def config(self) -> dict:
        return {
            "source": self.source,
            "model_path": self.model_path,
            "grid": list(self.grid),
            "max_objects": self.max_objects,
            "noise": None if self.noise is None else ("exact" if self.noise.is_exact else "custom"),
            "noise_seed": self.noise_seed,
        }

    def reset(self) -> None:
        """New stream: time restarts, noise session restarts (counters are kept)."""
        self.tokenizer.reset()
        if self.noise_session is not None:
            self.noise_session.reset(self.noise_seed)

    def counters(self) -> dict:
        return self.stats.as_dict()

    def detect(self, frame: CameraFrame) -> list[Detection]:
        """2D detections of the frame from the chosen source (empty when it lacks the input)."""
        if self.source == "labels":
            if frame.labels is None:
                self.stats.frames_without_labels += 1
                return []
            return detections_from_labels(np.asarray(frame.labels), min_pixels=self.min_label_pixels)
        if frame.rgb is None:
            self.stats.frames_without_rgb += 1
            return []
        return list(self.detector.detect(frame.rgb))

    def process(
        self, frame: CameraFrame, detections: list[Detection] | None = None
    ) -> tuple[list[ObjectObservation], FrameTokens]:
        """Detect (unless ``detections`` are given: the pipeline times detection apart), lift,
        (add noise), tokenise one frame."""
        self.stats.frames += 1
        valid = valid_depth_mask(frame.depth)
        self.stats.depth_pixels += int(valid.size)
        self.stats.invalid_depth_pixels += int(valid.size - np.count_nonzero(valid))
        if detections is None:
            detections = self.detect(frame)
        self.stats.detections += len(detections)
        lifted = lift_detections_ex(frame, detections, **self.lift_kwargs)
        for _, reason in lifted.skipped:
            self.stats.skipped_by_reason[reason] = self.stats.skipped_by_reason.get(reason, 0) + 1
        self.stats.skipped_detections += lifted.n_skipped
        observations = lifted.observations
        if self.noise_session is not None:
            frame, observations = self.noise_session(frame, observations)
        self.stats.observations += len(observations)
        tokens = self.tokenizer.tokenize(frame, observations)
        return observations, tokens


def _noise_model(noise):
    if noise is None:
        return None
    from spatial_ttt_ros.perception.noise import DetectorNoise

    if isinstance(noise, str):
        return DetectorNoise.preset(noise)
    if isinstance(noise, DetectorNoise):
        return noise
    raise ValueError(f"noise must be None, a preset name or a DetectorNoise, got {type(noise).__name__}")
