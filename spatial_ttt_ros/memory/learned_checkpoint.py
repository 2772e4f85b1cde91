"""Weights of the learned TTT map: the shipped file and loading any other (safetensors only).

A checkpoint holds the model's tensors and, in its metadata, the model config (JSON) and
an ``info`` record (training command, steps, decoding threshold chosen on validation).
A file whose tensors do not match the model's names and shapes is refused with the
names that differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from spatial_ttt_ros.memory.learned_model import LearnedMapConfig, LearnedMapModel

WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_LEARNED_CHECKPOINT = WEIGHTS / "learned_map.safetensors"
# Methods whose memory differs enough to have a readout trained for it (same data, steps and seed);
# every other learned method reads with the TTT map's weights.
OWN_WEIGHTS = {
    "ttt_additive": WEIGHTS / "learned_map_additive.safetensors",
    "full_context": WEIGHTS / "learned_map_full_context.safetensors",
    "sliding_window": WEIGHTS / "learned_map_full_context.safetensors",
}


def default_checkpoint(method: str) -> Path:
    """The shipped weights a learned method loads when no checkpoint is given."""
    return OWN_WEIGHTS.get(method, DEFAULT_LEARNED_CHECKPOINT)


def load_learned_model(path: str | Path | None = None) -> LearnedMapModel:
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path else DEFAULT_LEARNED_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"learned map checkpoint {path} not found")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    try:
        cfg = LearnedMapConfig(**json.loads(meta.get("config", "{}")))
        info = json.loads(meta.get("info", "{}"))
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path.name}: not a learned map checkpoint ({e})") from None
    model = LearnedMapModel(cfg)
    tensors = load_file(str(path))
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in tensors.items()}
    if want != have:
        diff = sorted(set(want.items()) ^ set(have.items()))
        raise ValueError(f"{path.name} does not fit the learned map model: {diff[:6]}")
    model.load_state_dict(tensors)
    model.checkpoint_info = info
    if "threshold" in info:
        model.cfg.threshold = float(info["threshold"])
    return model.eval()
