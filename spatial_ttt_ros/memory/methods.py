"""The one vocabulary of memory method names, and the one place a name is parsed.

Node parameter ``method``, ``spatial-ttt eval --method``, the benchmarks and the
learned model's ablations all use these names; nothing else spells them.

- ``object_map``: the explicit object map (memory/object_map.py), no weights.
- ``ttt``: the learned TTT map (memory/learned_*.py), as shipped.
- ``full_context``, ``sliding_window``: the baselines: the same write tokens kept (all of
  them, or the last minute's) and read by attention with the same trained readout.
- ablations of ``ttt``, each removing one thing: ``ttt_additive`` (no error term in the
  writes), ``ttt_const_lr`` (no learned learning rates), ``ttt_untrained_readout`` (no
  trained readout: the class evidence itself is the heatmap), ``ttt_keyframes`` (2 frames a
  second written, not every frame), ``ttt_no_align`` (no pose-drift alignment in the write),
  ``ttt_chunk_step`` (each chunk's step sized by its own curvature only, not the curvature
  accumulated over the stream).
"""

from __future__ import annotations

OBJECT_MAP = "object_map"
TTT = "ttt"
BASELINES: tuple[str, ...] = ("full_context", "sliding_window")
ABLATIONS: tuple[str, ...] = (
    "ttt_additive", "ttt_const_lr", "ttt_untrained_readout", "ttt_keyframes", "ttt_no_align", "ttt_chunk_step",
)
# Methods that load the learned map's checkpoint.
LEARNED_METHODS: tuple[str, ...] = (TTT,) + BASELINES + ABLATIONS
METHODS: tuple[str, ...] = (OBJECT_MAP,) + LEARNED_METHODS
# The one default of the node's ``method`` parameter, ``spatial-ttt eval --method`` and the
# benchmarks that take one method: the object map until the TTT checkpoint matches it.
DEFAULT_METHOD = OBJECT_MAP


def parse_method(method: str) -> str:
    """Normalise a method name ("TTT-No-Align " -> "ttt_no_align"); ValueError listing the known ones."""
    key = str(method).strip().lower().replace("-", "_")
    if key not in METHODS:
        raise ValueError(f"unknown memory method {method!r}; choose from {', '.join(METHODS)}")
    return key


def has_weights(method: str) -> bool:
    """True for the learned methods (they load a checkpoint)."""
    return parse_method(method) in LEARNED_METHODS
