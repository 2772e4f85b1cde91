"""The object vocabulary shared by the simulator, the detectors and the reasoning.

Canonical names follow VSI-Bench's wording. Detectors trained on COCO (VOC-style
spellings in YOLOX's class file) map onto them through ``SYNONYMS``; a class that
maps to nothing is ignored by the memory.
"""

from __future__ import annotations

# Order matters: label images carry id = index + 1 (0 = no object / background).
CLASSES: tuple[str, ...] = (
    "chair",
    "table",
    "sofa",
    "bed",
    "tv",
    "toilet",
    "sink",
    "refrigerator",
    "microwave",
    "oven",
    "potted plant",
    "cabinet",
    "lamp",
    "laptop",
    "clock",
    "vase",
)

CLASS_TO_ID: dict[str, int] = {name: i + 1 for i, name in enumerate(CLASSES)}

# Other spellings (COCO, VOC, everyday speech) -> canonical name.
SYNONYMS: dict[str, str] = {
    "couch": "sofa",
    "sofas": "sofa",
    "dining table": "table",
    "diningtable": "table",
    "desk": "table",
    "tvmonitor": "tv",
    "tv monitor": "tv",
    "television": "tv",
    "monitor": "tv",
    "fridge": "refrigerator",
    "pottedplant": "potted plant",
    "plant": "potted plant",
    "houseplant": "potted plant",
    "cupboard": "cabinet",
    "wardrobe": "cabinet",
    "stove": "oven",
    "basin": "sink",
    "washbasin": "sink",
    "microwave oven": "microwave",
    "notebook computer": "laptop",
}


# Two size tables per class. They differ by 5-10 cm for toilet, sink, oven, lamp and
# vase, and each is baked into answers: unifying them changes the noise model's false
# positives (training streams, the noisy benchmark) or the object map's merge distances
# (every object-map answer). They stay two until one of them is re-tuned; add no third.

# Typical extents (length, width, height in m): the detector noise model sizes its
# false positives with them (perception/noise.py).
TYPICAL_SIZE: dict[str, tuple[float, float, float]] = {
    "chair": (0.5, 0.5, 0.9),
    "table": (1.2, 0.8, 0.75),
    "sofa": (2.0, 0.9, 0.85),
    "bed": (2.0, 1.6, 0.6),
    "tv": (1.0, 0.12, 0.6),
    "toilet": (0.7, 0.4, 0.8),
    "sink": (0.6, 0.5, 0.25),
    "refrigerator": (0.75, 0.7, 1.8),
    "microwave": (0.5, 0.35, 0.3),
    "oven": (0.6, 0.6, 0.9),
    "potted plant": (0.4, 0.4, 0.8),
    "cabinet": (1.0, 0.5, 1.0),
    "lamp": (0.3, 0.3, 1.5),
    "laptop": (0.35, 0.25, 0.25),
    "clock": (0.3, 0.06, 0.3),
    "vase": (0.15, 0.15, 0.3),
}

# Typical largest horizontal extent (m), from the simulator's furniture and everyday
# objects: how far apart two sightings may be and still be one object (memory/object_map.py).
TYPICAL_FOOTPRINT: dict[str, float] = {
    "chair": 0.5,
    "table": 1.2,
    "sofa": 2.0,
    "bed": 2.0,
    "tv": 1.0,
    "toilet": 0.65,
    "sink": 0.7,
    "refrigerator": 0.75,
    "microwave": 0.5,
    "oven": 0.65,
    "potted plant": 0.4,
    "cabinet": 1.0,
    "lamp": 0.4,
    "laptop": 0.35,
    "clock": 0.3,
    "vase": 0.2,
}


def canonical_class(name: str) -> str | None:
    """Canonical class name for ``name`` (any case, plural 's' tolerated), or None."""
    key = " ".join(name.strip().lower().replace("_", " ").split())
    if key in CLASS_TO_ID:
        return key
    if key in SYNONYMS:
        return SYNONYMS[key]
    for suffix in ("es", "s"):
        if key.endswith(suffix):
            stem = key[: -len(suffix)]
            if stem in CLASS_TO_ID:
                return stem
            if stem in SYNONYMS:
                return SYNONYMS[stem]
    return None
