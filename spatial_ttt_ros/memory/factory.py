"""Build any memory by method name (the vocabulary is memory/methods.py)."""

from __future__ import annotations

from pathlib import Path

from spatial_ttt_ros.memory.methods import METHODS, OBJECT_MAP, parse_method

__all__ = ["METHODS", "make_memory"]


def make_memory(method: str, checkpoint: str | Path | None = None, **kw):
    """Build a ``SpatialMemory`` by method name.

    Args:
        method: one of ``METHODS``.
        checkpoint: model checkpoint for the learned methods (None: the shipped one).
        **kw: passed to the memory's constructor (``ObjectMapMemory`` settings, or
            ``TTTMemory`` ones such as ``threshold``, ``device``).

    Raises:
        ValueError: unknown method (the message lists the known ones), or a
            checkpoint given to the object map.
    """
    key = parse_method(method)
    if key == OBJECT_MAP:
        if checkpoint is not None:
            raise ValueError("object_map has no checkpoint (it learns nothing); pass checkpoint=None")
        from spatial_ttt_ros.memory.object_map import ObjectMapMemory

        return ObjectMapMemory(**kw)
    # Lazy: torch and the model are only needed for the learned methods.
    from spatial_ttt_ros.memory.checkpoint import load_model
    from spatial_ttt_ros.memory.model import TTTMemory

    kw.setdefault("name", key)
    return TTTMemory(load_model(checkpoint, variant=key), **kw)
