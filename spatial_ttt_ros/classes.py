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
