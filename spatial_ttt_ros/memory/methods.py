"""The one vocabulary of memory method names, and the one place a name is parsed.

Node parameter ``method``, ``spatial-ttt eval --method``, the benchmarks and the
learned model's variants all use these names; nothing else spells them.

- ``object_map``: the explicit object map (memory/object_map.py), no weights.
- ``ttt``: the learned TTT memory (memory/model.py), as shipped.
- ``full_context``, ``sliding_window``: the same network attending over every past
  token, or over a window only (TTT branch off).
- ``ttt_frozen``, ``ttt_no_conv``, ``ttt_momentum``, ``ttt_muon``: ablations of the
  learned memory (no inner update, no spatial conv, momentum / Muon inner optimiser).
"""

from __future__ import annotations

OBJECT_MAP = "object_map"
# The learned model's variants (memory/model.py VARIANTS): same weights, inference flags differ.
LEARNED_METHODS: tuple[str, ...] = (
    "ttt",
    "ttt_frozen",
    "ttt_no_conv",
    "ttt_momentum",
    "ttt_muon",
    "sliding_window",
    "full_context",
)
METHODS: tuple[str, ...] = (OBJECT_MAP,) + LEARNED_METHODS
# The one default of the node's ``method`` parameter, ``spatial-ttt eval --method`` and the
# benchmarks that take one method: the object map until the TTT checkpoint matches it.
DEFAULT_METHOD = OBJECT_MAP
# Variants without a TTT memory never write the position-keyed map.
NO_MAP_WRITES: tuple[str, ...] = ("ttt_frozen", "sliding_window", "full_context")


def parse_method(method: str) -> str:
    """Normalise a method name ("TTT-Frozen " -> "ttt_frozen"); ValueError listing the known ones."""
    key = str(method).strip().lower().replace("-", "_")
    if key not in METHODS:
        raise ValueError(f"unknown memory method {method!r}; choose from {', '.join(METHODS)}")
    return key


def has_weights(method: str) -> bool:
    """True for the learned methods (they load a checkpoint)."""
    return parse_method(method) in LEARNED_METHODS
