"""Build any memory by method name (the vocabulary is memory/methods.py)."""

from __future__ import annotations

from pathlib import Path

from spatial_ttt_ros.memory.methods import BASELINES, METHODS, OBJECT_MAP, parse_method

SLIDING_WINDOW_S = 60.0  # the sliding-window baseline keeps the tokens of the last minute

__all__ = ["METHODS", "make_memory"]


def make_memory(method: str, checkpoint: str | Path | None = None, **kw):
    """Build a ``SpatialMemory`` by method name.

    Args:
        method: one of ``METHODS``.
        checkpoint: model checkpoint for the learned methods (None: the shipped one).
        **kw: passed to the memory's constructor (``ObjectMapMemory`` settings, or
            ``LearnedTTTMemory`` ones such as ``threshold``; ``device`` is accepted, the map runs on the CPU).

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
    from spatial_ttt_ros.memory.learned_checkpoint import default_checkpoint, load_learned_model
    from spatial_ttt_ros.memory.learned_memory import AttentionMemory, LearnedTTTMemory
    from spatial_ttt_ros.memory.learned_model import Ablation

    # The map is < 1 MiB and its writes are sparse gathers: per-frame kernel launches on a GPU
    # would cost more than the work, so it runs on the CPU on every machine.
    kw.pop("device", None)
    model = load_learned_model(checkpoint or default_checkpoint(key))
    if key in BASELINES:
        return AttentionMemory(model, key, window_s=None if key == "full_context" else SLIDING_WINDOW_S, **kw)
    ablation = {
        "ttt_additive": Ablation(error_term=False),
        "ttt_const_lr": Ablation(learned_rates=False),
        "ttt_keyframes": Ablation(keyframes_only=True),
        "ttt_no_align": Ablation(align=False),
        "ttt_chunk_step": Ablation(accumulate=False),
    }.get(key, Ablation())
    if key == "ttt_untrained_readout":
        kw["trained_readout"] = False
    return LearnedTTTMemory(model, name=key, ablation=ablation, **kw)
