"""Detections from a label image (class id per pixel), as simulators and segmentation nodes publish.

Label ids follow ``classes.py``: id = CLASSES index + 1, 0 = no object. Ids outside
1..len(CLASSES) are ignored. A label image alone cannot separate two touching objects
of one class, so each 8-connected component of a class becomes one detection; with
an instance image (ground truth, e.g. from the simulator) each instance becomes one.
"""

from __future__ import annotations

import cv2
import numpy as np

from spatial_ttt_ros.classes import CLASSES
from spatial_ttt_ros.frames import Detection


def _check_image(name: str, img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 2:
        raise ValueError(f"{name} image must be (H, W) integer ids, got shape {img.shape}")
    if not np.issubdtype(img.dtype, np.integer):
        raise ValueError(f"{name} image must hold integer ids, got dtype {img.dtype}")
    return img


def _box_of(mask_ys: np.ndarray, mask_xs: np.ndarray) -> np.ndarray:
    # Box edges on pixel borders: a single pixel at (u, v) spans [u, u+1) x [v, v+1).
    return np.array(
        [mask_xs.min(), mask_ys.min(), mask_xs.max() + 1, mask_ys.max() + 1], dtype=np.float64
    )


def detections_from_labels(
    labels: np.ndarray,
    min_pixels: int = 20,
    connectivity: int = 8,
) -> list[Detection]:
    """One detection per connected component of each class in a label image.

    Args:
        labels: (H, W) integer class ids (0 = none, id = CLASSES index + 1).
        min_pixels: components smaller than this are dropped (speckle, far objects
            whose depth would be useless anyway).
        connectivity: 4 or 8 (pixel neighbourhood of a component).

    Returns:
        Detections (score 1.0, box in pixels x0, y0, x1, y1 with exclusive ends,
        ``mask`` (H, W) bool), ordered by class id then component size (largest first).
    """
    labels = _check_image("label", labels)
    out: list[Detection] = []
    present = np.unique(labels)
    for cid in present:
        cid = int(cid)
        if cid < 1 or cid > len(CLASSES):
            continue
        binary = (labels == cid).astype(np.uint8)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=connectivity)
        # Component 0 is the background.
        order = sorted(range(1, n), key=lambda k: -int(stats[k, cv2.CC_STAT_AREA]))
        for k in order:
            area = int(stats[k, cv2.CC_STAT_AREA])
            if area < min_pixels:
                continue
            x, y = stats[k, cv2.CC_STAT_LEFT], stats[k, cv2.CC_STAT_TOP]
            w, h = stats[k, cv2.CC_STAT_WIDTH], stats[k, cv2.CC_STAT_HEIGHT]
            out.append(
                Detection(
                    label=CLASSES[cid - 1],
                    score=1.0,
                    box_xyxy=np.array([x, y, x + w, y + h], dtype=np.float64),
                    mask=comp == k,
                )
            )
    return out


def detections_from_instances(
    instances: np.ndarray,
    labels: np.ndarray,
    min_pixels: int = 20,
) -> list[Detection]:
    """One detection per instance id (ground truth), labelled by the label image.

    Args:
        instances: (H, W) integer instance ids (0 = none).
        labels: (H, W) integer class ids, same size; an instance takes its most
            frequent non-zero class (an instance with no valid class is dropped).
        min_pixels: instances with fewer visible pixels are dropped.

    Returns:
        Detections ordered by instance id, score 1.0, with masks; each carries no
        instance id field (``Detection`` has none), so callers that need the id can
        use :func:`instance_ids_of` on the same inputs.
    """
    return [d for _, d in _instances(instances, labels, min_pixels)]


def instance_ids_of(instances: np.ndarray, labels: np.ndarray, min_pixels: int = 20) -> list[int]:
    """Instance ids of the detections :func:`detections_from_instances` returns, in order."""
    return [i for i, _ in _instances(instances, labels, min_pixels)]


def _instances(instances: np.ndarray, labels: np.ndarray, min_pixels: int) -> list[tuple[int, Detection]]:
    instances = _check_image("instance", instances)
    labels = _check_image("label", labels)
    if instances.shape != labels.shape:
        raise ValueError(f"instance image is {instances.shape}, label image is {labels.shape}")
    flat_i = instances.ravel()
    fg = np.nonzero(flat_i)[0]
    if fg.size == 0:
        return []
    ids, inverse, counts = np.unique(flat_i[fg], return_inverse=True, return_counts=True)
    lab_fg = labels.ravel()[fg].astype(np.int64)
    ok = (lab_fg >= 1) & (lab_fg <= len(CLASSES))
    # Class votes per instance: a (n_ids, n_classes+1) table from one bincount.
    votes = np.bincount(
        inverse[ok] * (len(CLASSES) + 1) + lab_fg[ok], minlength=ids.size * (len(CLASSES) + 1)
    ).reshape(ids.size, len(CLASSES) + 1)
    h, w = instances.shape
    out: list[tuple[int, Detection]] = []
    for j, iid in enumerate(ids):
        if counts[j] < min_pixels or votes[j].sum() == 0:
            continue
        cid = int(np.argmax(votes[j]))
        pix = fg[inverse == j]
        ys, xs = np.divmod(pix, w)
        mask = np.zeros((h, w), dtype=bool)
        mask[ys, xs] = True
        out.append((int(iid), Detection(label=CLASSES[cid - 1], score=1.0, box_xyxy=_box_of(ys, xs), mask=mask)))
    return out
