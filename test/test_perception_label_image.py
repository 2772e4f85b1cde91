"""Label image / instance image -> detections with masks."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ttt_ros.classes import CLASS_TO_ID
from spatial_ttt_ros.perception.label_image import (
    detections_from_instances,
    detections_from_labels,
    instance_ids_of,
)

H, W = 60, 80


def synthetic_labels() -> np.ndarray:
    lab = np.zeros((H, W), dtype=np.uint16)
    lab[5:25, 5:20] = CLASS_TO_ID["chair"]  # chair A: 20x15 = 300 px
    lab[30:40, 50:70] = CLASS_TO_ID["chair"]  # chair B: 10x20 = 200 px
    lab[40:55, 10:40] = CLASS_TO_ID["table"]  # table: 15x30 = 450 px
    lab[2:4, 70:73] = CLASS_TO_ID["vase"]  # speck: 6 px (below min_pixels)
    lab[50:58, 60:70] = 200  # unknown id: ignored
    return lab


def test_components_per_class_with_masks_and_boxes():
    dets = detections_from_labels(synthetic_labels(), min_pixels=20)
    assert [d.label for d in dets] == ["chair", "chair", "table"]
    a, b, t = dets
    assert all(d.score == 1.0 for d in dets)
    np.testing.assert_array_equal(a.box_xyxy, [5, 5, 20, 25])  # x0, y0, x1, y1 (exclusive ends)
    np.testing.assert_array_equal(b.box_xyxy, [50, 30, 70, 40])
    np.testing.assert_array_equal(t.box_xyxy, [10, 40, 40, 55])
    assert a.mask.shape == (H, W) and a.mask.dtype == bool
    assert a.mask.sum() == 300 and b.mask.sum() == 200 and t.mask.sum() == 450
    assert not np.any(a.mask & b.mask)
    assert a.mask[10, 10] and not a.mask[35, 60]


def test_min_pixels_keeps_small_objects_when_asked():
    dets = detections_from_labels(synthetic_labels(), min_pixels=1)
    assert sorted(d.label for d in dets) == ["chair", "chair", "table", "vase"]


def test_diagonal_touch_depends_on_connectivity():
    lab = np.zeros((20, 20), dtype=np.int32)
    lab[0:5, 0:5] = CLASS_TO_ID["sofa"]
    lab[5:10, 5:10] = CLASS_TO_ID["sofa"]  # touches the first block only at a corner
    assert len(detections_from_labels(lab, min_pixels=1, connectivity=8)) == 1
    assert len(detections_from_labels(lab, min_pixels=1, connectivity=4)) == 2


def test_instances_separate_touching_objects_of_one_class():
    lab = np.zeros((H, W), dtype=np.uint16)
    inst = np.zeros((H, W), dtype=np.uint16)
    lab[10:30, 10:50] = CLASS_TO_ID["chair"]
    inst[10:30, 10:30] = 7  # two chairs side by side: one label component
    inst[10:30, 30:50] = 9
    lab[40:50, 0:10] = CLASS_TO_ID["tv"]
    inst[40:50, 0:10] = 3
    inst[0:3, 0:3] = 11  # an instance on unlabelled pixels: dropped
    assert len(detections_from_labels(lab)) == 2  # chairs merged without instances
    dets = detections_from_instances(inst, lab)
    assert [d.label for d in dets] == ["tv", "chair", "chair"]
    assert instance_ids_of(inst, lab) == [3, 7, 9]
    np.testing.assert_array_equal(dets[1].box_xyxy, [10, 10, 30, 30])
    np.testing.assert_array_equal(dets[2].box_xyxy, [30, 10, 50, 30])
    assert dets[1].mask.sum() == 400 and not np.any(dets[1].mask & dets[2].mask)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        detections_from_labels(np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="integer"):
        detections_from_labels(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="instance image"):
        detections_from_instances(np.zeros((4, 4), np.uint16), np.zeros((5, 4), np.uint16))
    assert detections_from_labels(np.zeros((4, 4), np.uint8)) == []
    assert detections_from_instances(np.zeros((4, 4), np.uint16), np.zeros((4, 4), np.uint16)) == []
