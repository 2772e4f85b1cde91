"""Plane geometry on the floor (x, y): oriented rectangles, convex polygon overlap, distances."""

from __future__ import annotations

import math

import numpy as np


def rot2(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s], [s, c]])


def box_footprint(center_xy: np.ndarray, size_xy: np.ndarray, yaw: float) -> np.ndarray:
    """(4, 2) corners of a rectangle of ``size_xy`` rotated by ``yaw`` about ``center_xy``."""
    hx, hy = size_xy[0] / 2, size_xy[1] / 2
    local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    return local @ rot2(yaw).T + np.asarray(center_xy)[:2]


def polygons_overlap(p: np.ndarray, q: np.ndarray, eps: float = 1e-6) -> bool:
    """Separating-axis test for two convex polygons (N,2), (M,2); touching is not overlap."""
    for poly in (p, q):
        n = len(poly)
        for i in range(n):
            edge = poly[(i + 1) % n] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            pa, qa = p @ axis, q @ axis
            if pa.max() <= qa.min() + eps * np.linalg.norm(axis) or qa.max() <= pa.min() + eps * np.linalg.norm(axis):
                return False
    return True


def _point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    denom = float(ab @ ab)
    t = 0.0 if denom == 0 else float(np.clip((p - a) @ ab / denom, 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def _segments_intersect(a, b, c, d) -> bool:
    def cross(o, p, q):
        return (p[0] - o[0]) * (q[1] - o[1]) - (p[1] - o[1]) * (q[0] - o[0])

    d1, d2 = cross(c, d, a), cross(c, d, b)
    d3, d4 = cross(a, b, c), cross(a, b, d)
    return (d1 * d2 < 0) and (d3 * d4 < 0)


def _point_in_convex(p: np.ndarray, poly: np.ndarray) -> bool:
    n = len(poly)
    signs = []
    for i in range(n):
        e = poly[(i + 1) % n] - poly[i]
        w = p - poly[i]
        signs.append(e[0] * w[1] - e[1] * w[0])
    signs = np.array(signs)
    return bool(np.all(signs >= 0) or np.all(signs <= 0))


def segment_polygon_distance(a: np.ndarray, b: np.ndarray, poly: np.ndarray) -> float:
    """Distance in the plane between segment ab and a convex polygon (0 when they meet)."""
    if _point_in_convex(a, poly) or _point_in_convex(b, poly):
        return 0.0
    n = len(poly)
    best = math.inf
    for i in range(n):
        c, d = poly[i], poly[(i + 1) % n]
        if _segments_intersect(a, b, c, d):
            return 0.0
        best = min(best, _point_segment_distance(c, a, b), _point_segment_distance(a, c, d),
                   _point_segment_distance(b, c, d))
    return best


def polygon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Distance between two convex polygons (N, 2), (M, 2); 0 when they overlap or touch."""
    if polygons_overlap(p, q, eps=0.0):
        return 0.0
    best = math.inf
    for a, b in ((p, q), (q, p)):
        for v in a:
            for i in range(len(b)):
                best = min(best, _point_segment_distance(v, b[i], b[(i + 1) % len(b)]))
    return best
