"""The object map's instances (class votes, weighted centre, a ring of observed boxes) and the
box tests that decide whether two sightings are one object."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spatial_ttt_ros.classes import CLASSES

N_CLASSES = len(CLASSES)


def containment(lo_a, hi_a, lo_b, hi_b, pad: float = 0.05):
    """How much the smaller of two boxes lies inside the other (0..1), per-axis product.

    Each box is padded by ``pad`` m so that the thin boxes of surfaces seen head-on
    (a wall cabinet's front, 2 cm deep) still overlap when a few cm apart. A partial
    view of a large object (half a bed at the image edge) is contained in the
    object's box although their centres are far apart and their IoU is small.
    Arrays broadcast over leading axes (last axis = x, y, z).
    """
    la, ha = np.asarray(lo_a) - pad, np.asarray(hi_a) + pad
    lb, hb = np.asarray(lo_b) - pad, np.asarray(hi_b) + pad
    inter = np.clip(np.minimum(ha, hb) - np.maximum(la, lb), 0.0, None)
    smaller = np.minimum(ha - la, hb - lb)
    out = np.prod(inter / np.maximum(smaller, 1e-6), axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def pieces_of_one(lo_a, hi_a, lo_b, hi_b, typical: float, max_gap: float = 0.2):
    """True where two boxes could be pieces of one object of a class ``typical`` m across:
    at most ``max_gap`` apart on every axis, and their joint box no wider (x, y) than
    1.3 x typical. Arrays broadcast over leading axes (last axis = x, y, z)."""
    gap = np.max(np.maximum(lo_a, lo_b) - np.minimum(hi_a, hi_b), axis=-1)
    width = np.max(np.maximum(hi_a, hi_b)[..., :2] - np.minimum(lo_a, lo_b)[..., :2], axis=-1)
    return (gap <= max_gap) & (width <= 1.3 * typical)


@dataclass
class ObjectInstance:
    """One object of the map: class votes, a weighted centre and its last observed boxes."""

    votes: np.ndarray  # (N_CLASSES,) score-weighted class votes
    centre_sum: np.ndarray  # (3,) sum of weight * centre
    weight: float  # sum of weights
    count: int  # observations merged in
    first_seen: float  # seconds since stream start
    last_seen: float
    lo: np.ndarray  # (B, 3) lower corners of the last B observed boxes (ring)
    hi: np.ndarray  # (B, 3)
    n_boxes: int = 0  # boxes ever written (ring position = n_boxes % B)
    last_frame: int = -1  # observe() call that last assigned to it
    # Cached robust boxes by quantile pair (association and merging use one pair, the inventory
    # another); percentiles are the costly part. Emptied whenever the boxes change.
    _box: dict | None = None
    uid: int = 0  # stable id (indices change when instances merge)
    dup_of: list = field(default_factory=list)  # uids this one may be a drifted re-sighting of

    @property
    def label_id(self) -> int:
        return int(np.argmax(self.votes))

    @property
    def label(self) -> str:
        return CLASSES[self.label_id]

    @property
    def centre(self) -> np.ndarray:
        return self.centre_sum / max(self.weight, 1e-9)

    def boxes(self) -> tuple[np.ndarray, np.ndarray]:
        n = min(self.n_boxes, self.lo.shape[0])
        return self.lo[:n], self.hi[:n]

    def robust_box(self, q_lo: float, q_hi: float) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi): the ``q_lo`` percentile of the lower corners and ``q_hi`` of the upper.
        The arrays returned are cached: callers must not change them."""
        cache = self._box
        if cache is None:
            cache = self._box = {}
        else:
            hit = cache.get((q_lo, q_hi))
            if hit is not None:
                return hit
        lo, hi = self.boxes()
        if lo.shape[0] < 3:  # too few views for percentiles: their mean box
            out = lo.mean(axis=0), hi.mean(axis=0)
        else:
            out = np.percentile(lo, q_lo, axis=0), np.percentile(hi, q_hi, axis=0)
        cache[(q_lo, q_hi)] = out
        return out

    def add_box(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self._box = None
        j = self.n_boxes % self.lo.shape[0]
        self.lo[j] = lo
        self.hi[j] = hi
        self.n_boxes += 1

    def nbytes(self) -> int:
        return self.votes.nbytes + self.centre_sum.nbytes + self.lo.nbytes + self.hi.nbytes + 6 * 8

    def to_json(self) -> dict:
        lo, hi = self.boxes()
        return {
            "votes": self.votes.tolist(),
            "centre_sum": self.centre_sum.tolist(),
            "weight": self.weight,
            "count": self.count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "lo": lo.tolist(),
            "hi": hi.tolist(),
            "n_boxes": self.n_boxes,
            "uid": self.uid,
            "dup_of": list(self.dup_of),
        }

    @staticmethod
    def from_json(d: dict, history: int) -> "ObjectInstance":
        lo_in = np.asarray(d["lo"], dtype=np.float64).reshape(-1, 3)
        hi_in = np.asarray(d["hi"], dtype=np.float64).reshape(-1, 3)
        inst = ObjectInstance(
            votes=np.asarray(d["votes"], dtype=np.float64).reshape(N_CLASSES),
            centre_sum=np.asarray(d["centre_sum"], dtype=np.float64).reshape(3),
            weight=float(d["weight"]),
            count=int(d["count"]),
            first_seen=float(d["first_seen"]),
            last_seen=float(d["last_seen"]),
            lo=np.zeros((history, 3)),
            hi=np.zeros((history, 3)),
        )
        for a, b in zip(lo_in[-history:], hi_in[-history:]):
            inst.add_box(a, b)
        inst.n_boxes = max(inst.n_boxes, int(d.get("n_boxes", inst.n_boxes)))
        inst._box = None
        inst.uid = int(d.get("uid", 0))
        inst.dup_of = [int(u) for u in d.get("dup_of", [])]
        return inst
