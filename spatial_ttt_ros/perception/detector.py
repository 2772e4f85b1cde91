"""ONNX object detector (YOLOX layout) run with onnxruntime.

The detector is a parameter, not a constant: model path, class names and input
format are all arguments. The defaults match the reference YOLOX-Nano export in
``../shared/models/yolox_nano`` (see its README):

- input: float32 1x3xSxS (S = ``input_size``), BGR, raw 0..255, the frame resized
  with its aspect ratio kept and placed top-left on a canvas filled with 114;
- output: 1xNx(5+C), one row per grid cell for strides 8, 16, 32 (row-major, in that
  order); columns 0-3 raw box values (centre = (v + cell index) * stride, size =
  exp(v) * stride, in canvas pixels), column 4 objectness, 5.. class scores (both
  already in 0..1); score = objectness * class score. NMS is ours.

Only classes that map onto the canonical vocabulary (``classes.canonical_class``)
are kept; their detections carry the canonical name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from spatial_ttt_ros.classes import canonical_class
from spatial_ttt_ros.frames import Detection

DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def load_class_names(class_names: Sequence[str] | str | os.PathLike) -> list[str]:
    """Class names in model output order: a list, or a path to a file with one name a line."""
    if isinstance(class_names, (str, os.PathLike)):
        path = Path(class_names)
        if not path.is_file():
            raise FileNotFoundError(f"class names file {path} not found")
        names = [line.strip() for line in path.read_text().splitlines()]
        names = [n for n in names if n]
    else:
        names = [str(n) for n in class_names]
    if not names:
        raise ValueError("class_names is empty")
    return names


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: (N, 4) x0, y0, x1, y1.
        scores: (N,).
        iou_threshold: a box overlapping a kept, higher-scoring box by more than this
            IoU is suppressed.

    Returns:
        (K,) int indices of the kept boxes, highest score first.
    """
    order = np.argsort(-scores, kind="stable")
    x0, y0, x1, y1 = boxes.T
    area = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]))
        ih = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]))
        inter = iw * ih
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


class OnnxDetector:
    """A YOLOX-style ONNX detector.

    Args:
        model_path: the .onnx file.
        class_names: names in output order, or a path to a names file (one a line).
        input_size: S of the square model input (checked against the model).
        providers: onnxruntime execution providers in order of preference; the ones
            this onnxruntime build lacks are dropped (CPU is always the fallback).
        score_threshold: minimum objectness * class score.
        nms_threshold: IoU above which a lower-scoring box of the same (canonical)
            class is suppressed.
        channel_order: "bgr" (YOLOX) or "rgb": what the model expects.
        pad_value: canvas fill value around the resized frame.
        mean, std: optional per-channel normalisation (in the model's channel order,
            on 0..255 values): x = (x - mean) / std. None = raw values (YOLOX).
        decoded_output: True when the export already decodes boxes to canvas pixels
            (YOLOX ``decode_in_inference``); False for raw grid values (default).
        strides: the grid strides of the output rows, in order.
        intra_op_threads: onnxruntime intra-op threads (None = onnxruntime's choice).

    ``detect(rgb)`` returns canonical-class detections in frame pixels.
    ``providers_in_use`` lists the providers the session actually runs on.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        class_names: Sequence[str] | str | os.PathLike,
        input_size: int = 416,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        score_threshold: float = 0.35,
        nms_threshold: float = 0.45,
        channel_order: str = "bgr",
        pad_value: float = 114.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        decoded_output: bool = False,
        strides: Sequence[int] = (8, 16, 32),
        intra_op_threads: int | None = None,
    ):
        import onnxruntime as ort  # imported here: only the detector needs it

        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"detector model {path} not found")
        if channel_order not in ("bgr", "rgb"):
            raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 <= nms_threshold <= 1.0:
            raise ValueError("score_threshold and nms_threshold must be in [0, 1]")
        self.model_path = path
        self.class_names = load_class_names(class_names)
        self.input_size = int(input_size)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.channel_order = channel_order
        self.pad_value = float(pad_value)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = None if std is None else np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
        self.decoded_output = bool(decoded_output)
        self.strides = tuple(int(s) for s in strides)

        available = set(ort.get_available_providers())
        wanted = [p for p in providers if p in available]
        if "CPUExecutionProvider" not in wanted:
            wanted.append("CPUExecutionProvider")
        opts = ort.SessionOptions()
        if intra_op_threads is not None:
            opts.intra_op_num_threads = int(intra_op_threads)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own types for corrupt files
            raise ValueError(f"cannot load detector model {path}: {exc}") from exc
        self.providers_in_use: list[str] = list(self.session.get_providers())

        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise ValueError(f"model input {inp.name} has shape {shape}; expected N x 3 x H x W")
        for dim in shape[2:]:
            if isinstance(dim, int) and dim != self.input_size:
                raise ValueError(
                    f"model input {inp.name} is {shape[2]}x{shape[3]} but input_size={self.input_size}; "
                    "pass the model's input size"
                )
        self._grid, self._grid_strides = self._make_grid()
        out = self.session.get_outputs()[0]
        oshape = list(out.shape)
        if len(oshape) != 3:
            raise ValueError(f"model output {out.name} has shape {oshape}; expected 1 x N x (5 + classes)")
        if isinstance(oshape[2], int) and oshape[2] != 5 + len(self.class_names):
            raise ValueError(
                f"model output has {oshape[2] - 5} class columns but {len(self.class_names)} class names were given"
            )
        if isinstance(oshape[1], int) and not self.decoded_output and oshape[1] != len(self._grid):
            raise ValueError(
                f"model output has {oshape[1]} rows; strides {self.strides} at input {self.input_size} give "
                f"{len(self._grid)}"
            )
        # Output columns we care about, and the canonical name of each.
        self._keep_cols = np.array(
            [i for i, n in enumerate(self.class_names) if canonical_class(n) is not None], dtype=np.int64
        )
        self._keep_names = [canonical_class(self.class_names[i]) for i in self._keep_cols]
        self.last_timing_ms: dict[str, float] = {}

    # ------------------------------------------------------------------------------
    def _make_grid(self) -> tuple[np.ndarray, np.ndarray]:
        cells, strides = [], []
        for s in self.strides:
            n = self.input_size // s
            ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
            strides.append(np.full((n * n, 1), s))
        return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)

    def preprocess(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """(1, 3, S, S) float32 model input and the resize ratio (canvas px per frame px)."""
        h, w = rgb.shape[:2]
        s = self.input_size
        r = min(s / h, s / w)
        nh, nw = max(1, int(round(h * r))), max(1, int(round(w * r)))
        img = rgb if self.channel_order == "rgb" else rgb[..., ::-1]
        resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        canvas = np.full((s, s, 3), self.pad_value, dtype=np.float32)
        canvas[:nh, :nw] = resized
        x = canvas.transpose(2, 0, 1)
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        return np.ascontiguousarray(x[None], dtype=np.float32), r

    def decode(self, raw: np.ndarray, ratio: float, image_shape: tuple[int, int]) -> list[Detection]:
        """Detections from the raw (N, 5 + C) output; boxes in frame pixels, clipped."""
        if self.decoded_output:
            centre, size = raw[:, 0:2], raw[:, 2:4]
        else:
            centre = (raw[:, 0:2] + self._grid) * self._grid_strides
            # Clip before exp: a garbage value must not overflow into inf boxes.
            size = np.exp(np.minimum(raw[:, 2:4], 20.0)) * self._grid_strides
        scores = raw[:, 4:5] * raw[:, 5 + self._keep_cols]  # (N, kept classes)
        rows, cols = np.nonzero(scores >= self.score_threshold)
        if rows.size == 0:
            return []
        sc = scores[rows, cols]
        boxes = np.concatenate([centre[rows] - size[rows] / 2, centre[rows] + size[rows] / 2], axis=1) / ratio
        h, w = image_shape
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        names = np.array(self._keep_names, dtype=object)[cols]
        out: list[Detection] = []
        # Class-wise NMS over canonical names (two source classes could share one).
        for name in dict.fromkeys(names):
            idx = np.nonzero(names == name)[0]
            for k in nms(boxes[idx], sc[idx], self.nms_threshold):
                j = idx[k]
                if boxes[j, 2] - boxes[j, 0] >= 1 and boxes[j, 3] - boxes[j, 1] >= 1:
                    out.append(Detection(label=str(name), score=float(sc[j]), box_xyxy=boxes[j].astype(np.float64)))
        out.sort(key=lambda d: -d.score)
        return out

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Detect objects in one frame.

        Args:
            rgb: (H, W, 3) uint8 RGB image.

        Returns:
            Detections (canonical labels, score 0..1, ``box_xyxy`` in frame pixels),
            highest score first. ``last_timing_ms`` holds the pre / infer / post times.
        """
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8:
            raise ValueError(f"image must be uint8 RGB, got dtype {rgb.dtype}")
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
            raise ValueError(f"image must be (H, W, 3) RGB, got shape {rgb.shape}")
        t0 = time.perf_counter()
        x, ratio = self.preprocess(rgb)
        t1 = time.perf_counter()
        raw = self.session.run(None, {self.input_name: x})[0]
        t2 = time.perf_counter()
        raw = np.asarray(raw, dtype=np.float32)
        if raw.shape[-1] != 5 + len(self.class_names):
            raise ValueError(
                f"model output has {raw.shape[-1] - 5} class columns but {len(self.class_names)} class names were given"
            )
        raw = raw.reshape(-1, raw.shape[-1])
        dets = self.decode(raw, ratio, rgb.shape[:2])
        t3 = time.perf_counter()
        self.last_timing_ms = {"pre": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "post": (t3 - t2) * 1e3}
        return dets
