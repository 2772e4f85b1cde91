"""The ONNX detector: real YOLOX-Nano on the hololens office frames, decoding, errors."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from spatial_ttt_ros.classes import CLASSES
from spatial_ttt_ros.perception.detector import OnnxDetector, load_class_names, nms

# Frames spread over the walk past the long table, the sofa and the plants.
FRAMES = ["00043", "00083", "00103", "00123", "00213", "00254", "00285", "00325", "00345", "00365"]


@pytest.fixture(scope="module")
def names_file(yolox_model: Path) -> Path:
    return yolox_model.parent / "coco_classes.txt"


@pytest.fixture(scope="module")
def detector(yolox_model: Path, names_file: Path) -> OnnxDetector:
    # One thread: the test machine's cores are shared; it is also the fastest setting there.
    return OnnxDetector(yolox_model, names_file, intra_op_threads=1)


def read_rgb(hololens_dir: Path, name: str) -> np.ndarray:
    bgr = cv2.imread(str(hololens_dir / "rgb" / f"{name}.jpg"), cv2.IMREAD_COLOR)
    assert bgr is not None, name
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_finds_office_furniture_on_real_frames(detector, hololens_dir):
    assert "CPUExecutionProvider" in detector.providers_in_use
    counts: collections.Counter = collections.Counter()
    times = []
    for name in FRAMES:
        rgb = read_rgb(hololens_dir, name)
        t = time.perf_counter()
        dets = detector.detect(rgb)
        times.append((time.perf_counter() - t) * 1e3)
        h, w = rgb.shape[:2]
        scores = [d.score for d in dets]
        assert scores == sorted(scores, reverse=True)
        for d in dets:
            assert d.label in CLASSES  # canonical names only (no "diningtable", no "person")
            assert detector.score_threshold <= d.score <= 1.0
            x0, y0, x1, y1 = d.box_xyxy
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        for i, a in enumerate(dets):  # class-wise NMS left no heavy same-class overlap
            for b in dets[i + 1 :]:
                if a.label == b.label:
                    assert iou(a.box_xyxy, b.box_xyxy) <= detector.nms_threshold + 1e-6
        counts.update(d.label for d in dets)
    print(f"detections over {len(FRAMES)} frames: {dict(counts)}; median {np.median(times):.1f} ms/frame")
    for label in ("chair", "table", "sofa", "potted plant"):
        assert counts[label] >= 2, (label, counts)


def test_known_objects_land_where_they_are(detector, hololens_dir):
    # Frame 00213: the sofa fills the lower right, a potted plant the upper left.
    dets = detector.detect(read_rgb(hololens_dir, "00213"))
    by_label = {d.label: d for d in reversed(dets)}  # best of each class
    sofa, plant = by_label["sofa"], by_label["potted plant"]
    assert sofa.score > 0.7 and plant.score > 0.7
    assert (sofa.box_xyxy[0] + sofa.box_xyxy[2]) / 2 > 300 and (sofa.box_xyxy[1] + sofa.box_xyxy[3]) / 2 > 200
    assert (plant.box_xyxy[0] + plant.box_xyxy[2]) / 2 < 150 and (plant.box_xyxy[1] + plant.box_xyxy[3]) / 2 < 150


def test_boxes_scale_with_the_frame(detector, hololens_dir):
    # Letterboxing undone correctly: the same frame at twice the size gives boxes twice as large.
    rgb = read_rgb(hololens_dir, "00345")
    big = cv2.resize(rgb, (rgb.shape[1] * 2, rgb.shape[0] * 2), interpolation=cv2.INTER_LINEAR)
    small_dets, big_dets = detector.detect(rgb), detector.detect(big)
    assert len(small_dets) >= 3
    for d in small_dets:
        match = max((b for b in big_dets if b.label == d.label), key=lambda b: iou(b.box_xyxy / 2, d.box_xyxy))
        np.testing.assert_allclose(match.box_xyxy / 2, d.box_xyxy, atol=4.0)


def test_channel_order_is_a_real_parameter(yolox_model, names_file, hololens_dir):
    rgb = read_rgb(hololens_dir, "00213")
    bgr_model = OnnxDetector(yolox_model, names_file, intra_op_threads=1)
    wrong = OnnxDetector(yolox_model, names_file, intra_op_threads=1, channel_order="rgb")
    x_ok, r = bgr_model.preprocess(rgb)
    x_wrong, _ = wrong.preprocess(rgb)
    assert x_ok.shape == (1, 3, 416, 416) and r == pytest.approx(416 / 540)
    np.testing.assert_array_equal(x_ok[0, 0], x_wrong[0, 2])  # B plane first vs R plane first
    assert np.all(x_ok[0, :, 300:, :] == 114.0)  # 540x360 -> 416x277, padded below


def test_decoding_of_a_synthetic_output(detector):
    names = detector.class_names
    raw = np.zeros((3549, 85), dtype=np.float32)
    raw[:, :4] = -5.0  # tiny boxes elsewhere
    row = 5 * 52 + 10  # stride-8 cell x=10, y=5
    raw[row, :5] = [0.5, 0.5, np.log(4.0), np.log(2.0), 0.9]
    raw[row, 5 + names.index("chair")] = 0.8
    raw[row + 1, :5] = [-0.5, 0.5, np.log(4.0), np.log(2.0), 0.9]  # shifted 8 px: IoU 0.6 -> suppressed
    raw[row + 1, 5 + names.index("chair")] = 0.7
    big = 52 * 52 + 26 * 26 + 3 * 13 + 4  # stride-32 cell x=4, y=3
    raw[big, :5] = [0.0, 0.0, 0.0, 0.0, 0.95]
    raw[big, 5 + names.index("diningtable")] = 0.9  # -> "table"
    raw[big, 5 + names.index("person")] = 0.99  # not in the vocabulary: dropped
    raw[row + 2, :5] = [0.5, 0.5, 0.0, 0.0, 0.5]
    raw[row + 2, 5 + names.index("sofa")] = 0.5  # 0.25 < threshold
    dets = detector.decode(raw, ratio=0.5, image_shape=(400, 600))
    assert [d.label for d in dets] == ["table", "chair"]
    table, chair = dets
    assert chair.score == pytest.approx(0.72)
    np.testing.assert_allclose(chair.box_xyxy, np.array([68, 36, 100, 52]) / 0.5)
    np.testing.assert_allclose(table.box_xyxy, np.array([112, 80, 144, 112]) / 0.5)


def test_nms_keeps_best_and_disjoint():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]], dtype=float)
    scores = np.array([0.8, 0.9, 0.5, 0.7])
    assert nms(boxes, scores, 0.45).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 0, 3, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_clear_errors(tmp_path, yolox_model, names_file, detector):
    with pytest.raises(FileNotFoundError, match="not found"):
        OnnxDetector(tmp_path / "missing.onnx", names_file)
    with pytest.raises(FileNotFoundError, match="class names"):
        OnnxDetector(yolox_model, tmp_path / "names.txt")
    with pytest.raises(ValueError, match="input_size"):
        OnnxDetector(yolox_model, names_file, input_size=320)
    with pytest.raises(ValueError, match="class columns"):
        OnnxDetector(yolox_model, load_class_names(names_file)[:79])
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(ValueError, match="cannot load"):
        OnnxDetector(broken, names_file)
    with pytest.raises(ValueError, match="channel_order"):
        OnnxDetector(yolox_model, names_file, channel_order="gbr")
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((100, 100, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        detector.detect(np.zeros((100, 100), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        detector.detect(np.zeros((100, 100, 4), dtype=np.uint8))
    assert detector.detect(np.full((50, 80, 3), 114, dtype=np.uint8)) == []  # blank frame: nothing


def test_unavailable_providers_are_dropped(yolox_model, names_file):
    det = OnnxDetector(yolox_model, names_file, providers=("NoSuchExecutionProvider",), intra_op_threads=1)
    assert det.providers_in_use == ["CPUExecutionProvider"]


def test_real_frames_lift_and_tokenize_finite(detector, hololens_dir):
    """Detector -> lifting -> tokens on real depth (about 40% of pixels are 0 = no reading)."""
    from spatial_ttt_ros.frames import CameraFrame
    from spatial_ttt_ros.perception.lifting import lift_detections_ex
    from spatial_ttt_ros.perception.tokens import Tokenizer

    K = np.loadtxt(hololens_dir / "K.txt")
    poses = np.loadtxt(hololens_dir / "poses.txt").reshape(-1, 4, 4)
    names = sorted(p.stem for p in (hololens_dir / "rgb").glob("*.jpg"))
    y_up_to_z_up = np.eye(4)  # the sequence's world has +y up; REP-103 wants +z up
    y_up_to_z_up[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
    tok = Tokenizer()
    lifted = 0
    for name in ("00123", "00213", "00285", "00365"):
        i = names.index(name)
        depth = cv2.imread(str(hololens_dir / "depth" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16
        frame = CameraFrame(i * 0.2, depth.astype(np.float32) / 1000.0, K, y_up_to_z_up @ poses[i], frame_index=i)
        assert 0.3 < float(np.mean(depth > 0)) < 0.9
        res = lift_detections_ex(frame, detector.detect(read_rgb(hololens_dir, name)))
        lifted += res.n_lifted
        for o in res.observations:
            assert np.all(np.isfinite(o.center)) and np.all(np.isfinite(o.size))
            assert np.all(o.size > 0) and np.all(o.size < 5.0)  # metres: room-scale, not background
            assert 0.5 < o.extras["depth"] < 7.0  # the sensor's range
        t = tok.tokenize(frame, res.observations)
        assert np.all(np.isfinite(t.geometry)) and np.all(np.isfinite(t.objects))
        assert t.object_valid.sum() == min(res.n_lifted, 16)
    assert lifted >= 10
