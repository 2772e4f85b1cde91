"""GPU checks of the VLM backend; skipped on a machine without CUDA.

- the tiny model's CUDA path in fp16 and bf16 (no checkpoint needed);
- the released Spatial-TTT-nano on a simulator stream, when
  SPATIAL_TTT_CHECKPOINT points at the downloaded directory (see README).
"""

from __future__ import annotations

import os
import time

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
os.environ["HF_HUB_OFFLINE"] = "1"

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@needs_cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_tiny_model_half_precision_on_cuda(tmp_path, dtype):
    import numpy as np

    from spatial_ttt_ros.vlm.engine import SpatialTTTEngine
    from spatial_ttt_ros.vlm.loader import load_model, load_tokenizer
    from spatial_ttt_ros.vlm.streamer import VLMStream
    from spatial_ttt_ros.vlm.tiny import TINY_FRAME, make_tiny_checkpoint

    make_tiny_checkpoint(tmp_path)
    model, cfg = load_model(tmp_path, dtype=dtype, device="cuda")
    stream = VLMStream(SpatialTTTEngine(model, cfg), load_tokenizer(tmp_path), keyframe_interval_s=0.0,
                       frame_size=TINY_FRAME, max_new_tokens=4)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for i in range(8):
        stream.add_frame(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8), float(i))
    torch.cuda.synchronize()
    print(f"tiny {dtype}: {(time.perf_counter() - t) / 8 * 1e3:.1f} ms/keyframe")
    w = stream.state.layers[0].weights[0]
    assert w.dtype == torch.float32 and w.is_cuda and torch.isfinite(w).all()  # fast weights stay fp32
    g = stream.ask("How many chairs are in the room?")
    assert len(g.token_probs) >= 1 and 0.0 < g.confidence <= 1.0


@needs_cuda
@pytest.mark.skipif(not os.environ.get("SPATIAL_TTT_CHECKPOINT"), reason="SPATIAL_TTT_CHECKPOINT not set")
def test_released_model_on_a_simulator_stream():
    from spatial_ttt_ros.sim.stream import simulate_stream
    from spatial_ttt_ros.vlm.answer_mapper import map_answer
    from spatial_ttt_ros.vlm.engine import SpatialTTTEngine
    from spatial_ttt_ros.vlm.loader import load_model, load_tokenizer
    from spatial_ttt_ros.vlm.streamer import VLMStream

    ckpt = os.environ["SPATIAL_TTT_CHECKPOINT"]
    model, cfg = load_model(ckpt, dtype="bfloat16", device="cuda", base_checkpoint=os.environ.get("QWEN3_VL_BASE"))
    stream = VLMStream(SpatialTTTEngine(model, cfg), load_tokenizer(ckpt), keyframe_interval_s=0.5)
    sim = simulate_stream(seed=3, n_rooms=1, n_frames=40, rate_hz=4.0, width=480, height=352)
    t = time.perf_counter()
    for frame, _ in sim.frames():
        stream.offer_frame(frame.rgb, frame.stamp)
    torch.cuda.synchronize()
    print(f"{stream.state.n_frames} keyframes in {time.perf_counter() - t:.2f} s, state {stream.state_bytes() / 2**20:.0f} MiB")
    g = stream.ask("How many chairs are in this room?")
    a = map_answer(g.text, task="object_counting", token_probs=g.token_probs)
    print(g.text, a)
    assert g.text
