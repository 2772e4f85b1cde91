"""Optional backend: the released Spatial-TTT-nano vision-language model (GPU).

Spatial-TTT-nano is Qwen3-VL-2B with LaCT fast-weight layers in a 3:1 hybrid with
full-attention anchor layers (THU-SI/Spatial-TTT, MIT). This package rebuilds that
model on transformers' Qwen3-VL classes, with the released checkpoint's parameter
names, and runs it as a *stream*: keyframes are prefilled as they arrive, the
fast weights, the sliding-window caches and the conv caches are carried between
calls, and a question decodes from a snapshot of that state.

Nothing here is imported by the CPU package: `transformers` is the optional extra
`vlm` (``pip install .[vlm]``). Import the submodules directly
(``from spatial_ttt_ros.vlm.streamer import VLMStream``) or use ``available()``.

Modules, one idea each:
  config.py        SpatialTTTConfig: the LaCT settings of the release (layers, heads, chunk, window)
  fast_weights.py  SwiGLU fast weights: apply, the hand-written inner gradient, Newton-Schulz
  spatial_conv.py  depthwise 3x3x3 conv over (time, h, w), causal in time for streaming
  lact_layer.py    LaCTHybridAttention: SWA + TTT branch on shared Q/K/V (released names)
  state.py         StreamState: per-layer fast weights, pending chunk, KV window, conv cache
  engine.py        SpatialTTTEngine: prefill of token units through all layers, decode
  loader.py        build / save / load from a local directory (no download)
  vision.py        RGB frame -> Qwen3-VL patches (numpy; no torchvision)
  streamer.py      VLMStream: keyframes, prompt layout, ask() on a snapshot
  answer_mapper.py generated text + token probabilities -> Answer
  qa_backend.py    qa_backend = geometry | vlm | hybrid routing (ROS-free)
"""

from __future__ import annotations

import importlib.util


def available() -> bool:
    """True when the optional `vlm` extra (transformers with Qwen3-VL) is installed."""
    if importlib.util.find_spec("transformers") is None:
        return False
    try:
        from transformers import Qwen3VLForConditionalGeneration  # noqa: F401
    except ImportError:
        return False
    return True


MISSING_EXTRA = (
    "the VLM backend needs the optional extra: pip install '.[vlm]' "
    "(transformers with Qwen3-VL support, accelerate)"
)
