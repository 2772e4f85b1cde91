"""Furniture as boxes: one builder per class, each instance's proportions and colour drawn from a
random generator.

Each builder returns parts in a frame with origin at the footprint centre on the
object's bottom (z = 0 at the bottom), local +y = front. Sizes are metres.
"""

from __future__ import annotations

import numpy as np

from spatial_ttt_ros.sim.scene_types import Box


def _jitter(rng: np.random.Generator, value: float, rel: float = 0.1) -> float:
    return float(value * (1.0 + rng.uniform(-rel, rel)))


def vary_color(rng: np.random.Generator, base: tuple[float, float, float], amount: float = 0.18) -> np.ndarray:
    c = np.asarray(base, dtype=np.float64) + rng.uniform(-amount, amount, size=3)
    return np.clip(c, 0.03, 0.97)


_PALETTE: dict[str, list[tuple[float, float, float]]] = {
    "chair": [(0.55, 0.35, 0.2), (0.2, 0.2, 0.22), (0.75, 0.7, 0.6), (0.3, 0.45, 0.6)],
    "table": [(0.6, 0.42, 0.25), (0.85, 0.82, 0.75), (0.35, 0.25, 0.18)],
    "sofa": [(0.35, 0.4, 0.55), (0.55, 0.2, 0.2), (0.5, 0.5, 0.45), (0.25, 0.45, 0.3)],
    "bed": [(0.85, 0.85, 0.9), (0.7, 0.75, 0.85), (0.9, 0.8, 0.7)],
    "tv": [(0.08, 0.08, 0.1)],
    "toilet": [(0.93, 0.93, 0.93)],
    "sink": [(0.9, 0.9, 0.92)],
    "refrigerator": [(0.88, 0.88, 0.9), (0.6, 0.62, 0.65)],
    "microwave": [(0.85, 0.85, 0.85), (0.2, 0.2, 0.2)],
    "oven": [(0.75, 0.75, 0.78), (0.25, 0.25, 0.27)],
    "potted plant": [(0.2, 0.55, 0.2)],
    "cabinet": [(0.55, 0.38, 0.22), (0.9, 0.9, 0.88), (0.4, 0.3, 0.25)],
    "lamp": [(0.95, 0.9, 0.7), (0.9, 0.85, 0.85)],
    "laptop": [(0.7, 0.72, 0.75), (0.15, 0.15, 0.17)],
    "clock": [(0.95, 0.95, 0.9), (0.2, 0.2, 0.2)],
    "vase": [(0.3, 0.45, 0.75), (0.8, 0.3, 0.2), (0.9, 0.85, 0.7)],
}


def _part(center, size, color) -> Box:
    return Box(np.array(center, dtype=np.float64), np.array(size, dtype=np.float64), np.asarray(color, dtype=np.float64))


def _legs(l, w, h, t, color) -> list[Box]:
    """Four square legs of side ``t`` and height ``h`` at the corners of an l x w footprint."""
    out = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            out.append(_part((sx * (l - t) / 2, sy * (w - t) / 2, h / 2), (t, t, h), color))
    return out


def build_parts(label: str, rng: np.random.Generator, variant: str = "") -> tuple[list[Box], np.ndarray]:
    """Parts (bottom-origin local frame) and main colour for one instance of ``label``."""
    palette = _PALETTE[label]
    main = vary_color(rng, palette[int(rng.integers(len(palette)))])
    dark = np.clip(main * 0.45, 0.02, 1)
    parts: list[Box]
    if label == "chair":
        l, w, h = _jitter(rng, 0.46), _jitter(rng, 0.48), _jitter(rng, 0.9, 0.08)
        seat_h = _jitter(rng, 0.45, 0.05)
        parts = _legs(l, w, seat_h - 0.05, 0.04, dark)
        parts.append(_part((0, 0, seat_h - 0.025), (l, w, 0.05), main))
        parts.append(_part((0, -w / 2 + 0.03, (seat_h + h) / 2), (l, 0.06, h - seat_h), main))
    elif label == "table":
        if variant == "coffee":
            l, w, h = _jitter(rng, 1.0), _jitter(rng, 0.55), _jitter(rng, 0.45, 0.05)
        elif variant == "desk":
            l, w, h = rng.uniform(1.1, 1.5), _jitter(rng, 0.7, 0.05), _jitter(rng, 0.74, 0.03)
        else:
            l, w, h = rng.uniform(1.2, 1.8), _jitter(rng, 0.85, 0.06), _jitter(rng, 0.75, 0.03)
        parts = _legs(l, w, h - 0.04, 0.06, dark)
        parts.append(_part((0, 0, h - 0.02), (l, w, 0.04), main))
    elif label == "sofa":
        l, w, h = _jitter(rng, 2.0), _jitter(rng, 0.9, 0.06), _jitter(rng, 0.85, 0.05)
        parts = [
            _part((0, 0.1, 0.22), (l - 0.3, w - 0.2, 0.44), main),  # seat block
            _part((0, -w / 2 + 0.1, h / 2), (l, 0.2, h), main * 0.9),  # back
            _part((-l / 2 + 0.075, 0.1, 0.3), (0.15, w - 0.2, 0.6), main * 0.9),  # arms
            _part((l / 2 - 0.075, 0.1, 0.3), (0.15, w - 0.2, 0.6), main * 0.9),
        ]
    elif label == "bed":
        l, w = _jitter(rng, 1.6, 0.12), _jitter(rng, 2.05, 0.04)  # width across, length away from the wall
        h = _jitter(rng, 0.95, 0.08)  # headboard top
        frame = vary_color(rng, (0.45, 0.3, 0.2))
        parts = [
            _part((0, 0.03, 0.15), (l, w - 0.06, 0.3), frame),
            _part((0, 0.03, 0.41), (l - 0.04, w - 0.1, 0.22), main),  # mattress
            _part((0, -w / 2 + 0.03, h / 2), (l, 0.06, h), frame),  # headboard
            _part((0, -w / 2 + 0.3, 0.57), (l * 0.8, 0.35, 0.1), np.clip(main * 1.1, 0, 1)),  # pillows
        ]
    elif label == "tv":
        l, h = rng.uniform(0.8, 1.3), 0.0
        h = l * 0.58
        parts = [_part((0, 0, h / 2), (l, 0.07, h), main)]
        parts.append(_part((0, 0.036, h / 2), (l - 0.04, 0.002, h - 0.04), (0.05, 0.06, 0.12)))  # screen
        if variant == "stand":
            parts = [Box(p.center + np.array([0, 0, 0.08]), p.size, p.color) for p in parts]
            parts.append(_part((0, 0, 0.04), (0.3, 0.2, 0.02), main))
            parts.append(_part((0, -0.01, 0.05), (0.05, 0.03, 0.08), main))
    elif label == "toilet":
        l, w, h = _jitter(rng, 0.4, 0.05), _jitter(rng, 0.68, 0.05), _jitter(rng, 0.78, 0.05)
        parts = [
            _part((0, 0.08, 0.2), (l, w - 0.16, 0.4), main),  # bowl
            _part((0, -w / 2 + 0.09, h / 2), (l + 0.04, 0.18, h), main),  # tank
        ]
        l += 0.04
    elif label == "sink":
        l, w, h = rng.uniform(0.55, 0.9), _jitter(rng, 0.5, 0.06), _jitter(rng, 0.86, 0.03)
        body = vary_color(rng, (0.55, 0.45, 0.35))
        parts = [
            _part((0, 0, (h - 0.06) / 2), (l, w, h - 0.06), body),
            _part((0, 0, h - 0.03), (l, w, 0.06), main),  # basin top
            _part((0, -w / 2 + 0.06, h + 0.1), (0.04, 0.04, 0.2), (0.7, 0.7, 0.72)),  # faucet
        ]
        h += 0.2
    elif label == "refrigerator":
        l, w, h = _jitter(rng, 0.7, 0.08), _jitter(rng, 0.7, 0.06), _jitter(rng, 1.8, 0.06)
        parts = [
            _part((0, -0.02, h / 2), (l, w - 0.04, h), main),
            _part((0, w / 2 - 0.02, h * 0.33), (l - 0.02, 0.04, h * 0.64), main * 0.97),  # lower door
            _part((0, w / 2 - 0.02, h * 0.83), (l - 0.02, 0.04, h * 0.32), main * 0.97),  # upper door
        ]
    elif label == "microwave":
        l, w, h = _jitter(rng, 0.5, 0.08), _jitter(rng, 0.37, 0.06), _jitter(rng, 0.3, 0.06)
        parts = [
            _part((0, -0.01, h / 2), (l, w - 0.02, h), main),
            _part((-0.06, w / 2 - 0.01, h / 2), (l - 0.2, 0.02, h - 0.08), (0.08, 0.08, 0.08)),  # window
        ]
    elif label == "oven":
        l, w, h = _jitter(rng, 0.6, 0.05), _jitter(rng, 0.62, 0.04), _jitter(rng, 0.9, 0.03)
        parts = [
            _part((0, -0.01, h / 2), (l, w - 0.02, h), main),
            _part((0, w / 2 - 0.01, h * 0.42), (l - 0.12, 0.02, h * 0.4), (0.06, 0.06, 0.06)),  # door glass
            _part((0, -0.02, h - 0.005), (l - 0.04, w - 0.08, 0.01), (0.1, 0.1, 0.1)),  # hob
        ]
    elif label == "potted plant":
        pot_w, pot_h = _jitter(rng, 0.3, 0.2), _jitter(rng, 0.3, 0.2)
        leaf_w, leaf_h = pot_w * rng.uniform(1.4, 2.0), rng.uniform(0.4, 1.0)
        pot = vary_color(rng, (0.7, 0.4, 0.25))
        parts = [
            _part((0, 0, pot_h / 2), (pot_w, pot_w, pot_h), pot),
            _part((0, 0, pot_h + leaf_h / 2), (leaf_w, leaf_w, leaf_h), main),
            _part((0, 0, pot_h + leaf_h * 0.3), (leaf_w * 1.2, leaf_w * 0.5, leaf_h * 0.35), main * 0.85),
        ]
        l = w = leaf_w * 1.2
        h = pot_h + leaf_h
    elif label == "cabinet":
        tall = variant == "tall"
        l = rng.uniform(0.6, 1.4)
        w = _jitter(rng, 0.45, 0.1)
        h = rng.uniform(1.6, 2.0) if tall else rng.uniform(0.7, 0.95)
        parts = [
            _part((0, -0.01, h / 2), (l, w - 0.02, h), main),
            _part((-l / 4, w / 2 - 0.01, h / 2), (l / 2 - 0.02, 0.02, h - 0.06), main * 0.92),  # doors
            _part((l / 4, w / 2 - 0.01, h / 2), (l / 2 - 0.02, 0.02, h - 0.06), main * 0.92),
        ]
    elif label == "lamp":
        shade_w = _jitter(rng, 0.38, 0.1)
        h = rng.uniform(1.4, 1.75)
        pole = vary_color(rng, (0.25, 0.25, 0.25), 0.1)
        parts = [
            _part((0, 0, 0.015), (0.3, 0.3, 0.03), pole),
            _part((0, 0, (h - 0.3) / 2), (0.04, 0.04, h - 0.3), pole),
            _part((0, 0, h - 0.16), (shade_w, shade_w, 0.32), main),
        ]
        l = w = shade_w
    elif label == "laptop":
        l, w = _jitter(rng, 0.34, 0.06), _jitter(rng, 0.24, 0.05)
        screen_h = w * 0.95
        parts = [
            _part((0, 0.01, 0.01), (l, w - 0.02, 0.02), main),
            _part((0, -w / 2 + 0.01, 0.02 + screen_h / 2), (l, 0.02, screen_h), main),
            _part((0, -w / 2 + 0.021, 0.02 + screen_h / 2), (l - 0.02, 0.002, screen_h - 0.02), (0.1, 0.15, 0.3)),
        ]
        h = 0.02 + screen_h
    elif label == "clock":
        d = _jitter(rng, 0.3, 0.15)
        face = vary_color(rng, (0.95, 0.95, 0.9), 0.04)
        parts = [
            _part((0, 0, d / 2), (d, 0.05, d), main),
            _part((0, 0.026, d / 2), (d * 0.8, 0.002, d * 0.8), face),
            _part((0, 0.028, d * 0.6), (0.015, 0.002, d * 0.3), (0.05, 0.05, 0.05)),  # hand
        ]
        l, w, h = d, 0.05, d
    elif label == "vase":
        wv, h = _jitter(rng, 0.14, 0.2), _jitter(rng, 0.3, 0.25)
        parts = [
            _part((0, 0, h * 0.35), (wv, wv, h * 0.7), main),
            _part((0, 0, h * 0.85), (wv * 0.55, wv * 0.55, h * 0.3), main * 0.95),
        ]
        l = w = wv
    else:  # pragma: no cover - every class has a builder
        raise ValueError(f"no builder for class {label!r}")
    return parts, main


def finish_parts(parts: list[Box]) -> tuple[np.ndarray, list[Box], np.ndarray]:
    """Bounding-box size of bottom-origin parts, the parts re-centred on it, and its centre offset."""
    lo = np.min([p.center - p.size / 2 for p in parts], axis=0)
    hi = np.max([p.center + p.size / 2 for p in parts], axis=0)
    mid = (lo + hi) / 2
    size = hi - lo
    centred = [Box(p.center - mid, p.size.copy(), np.clip(p.color, 0, 1)) for p in parts]
    return size, centred, mid
