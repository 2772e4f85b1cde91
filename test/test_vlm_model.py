"""Spatial-TTT (VLM backend) on a tiny random model of the released architecture, CPU.

Streaming chunked prefill == one prefill; a question leaves the stream untouched;
the hand-written inner gradient == autograd; the loader reads what save_pretrained
wrote and refuses a mismatched layout. No network: everything is built locally.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("transformers")
os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402

from spatial_ttt_ros.vlm import available  # noqa: E402

pytestmark = pytest.mark.skipif(not available(), reason="transformers without Qwen3-VL")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from spatial_ttt_ros.vlm.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_spatial_ttt"))


@pytest.fixture(scope="module")
def stream_parts(tiny_dir):
    from spatial_ttt_ros.vlm.engine import SpatialTTTEngine
    from spatial_ttt_ros.vlm.loader import load_model, load_tokenizer
    from spatial_ttt_ros.vlm.streamer import VLMStream
    from spatial_ttt_ros.vlm.tiny import TINY_FRAME

    model, cfg = load_model(tiny_dir, dtype="float32")
    tok = load_tokenizer(tiny_dir)
    engine = SpatialTTTEngine(model, cfg)
    stream = VLMStream(engine, tok, keyframe_interval_s=0.0, frame_size=TINY_FRAME, max_new_tokens=6)
    return engine, stream


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (24, 20, 3), dtype=np.uint8) for _ in range(n)]


def _state_tensors_equal(a, b, atol=0.0):
    ta, tb = a.tensors(), b.tensors()
    assert ta.keys() == tb.keys()
    for k in ta:
        assert ta[k].shape == tb[k].shape, k
        assert torch.allclose(ta[k], tb[k], atol=atol, rtol=0), (k, (ta[k] - tb[k]).abs().max())


def test_checkpoint_names_follow_the_release(tiny_dir):
    from safetensors import safe_open

    with safe_open(str(tiny_dir / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    p = "model.language_model.layers.0.self_attn."
    for name in ("attn_layer.q_proj.weight", "attn_layer.k_norm.weight", "w0", "w1", "w2", "lr_proj.weight",
                 "q_scale", "k_offset", "ttt_scale_proj.weight", "ttt_norm.weight", "momentum_proj.0.weight",
                 "conv_q.weight", "conv_v.weight"):
        assert p + name in keys, name
    assert "model.language_model.layers.3.self_attn.q_proj.weight" in keys  # the anchor layer stays plain
    with safe_open(str(tiny_dir / "model.safetensors"), "pt") as f:
        assert tuple(f.get_slice(p + "w0").get_shape()) == (2, 32, 32)  # [heads, dh, d]
        assert tuple(f.get_slice(p + "conv_q.weight").get_shape()) == (64, 1, 3, 3, 3)  # depthwise


def test_streaming_prefill_equals_one_prefill(stream_parts):
    from spatial_ttt_ros.vlm.engine import build_batch

    engine, stream = stream_parts
    stream.reset()
    start = stream.state
    segments = []
    for i, rgb in enumerate(_frames(6)):
        segments.append(stream.frame_segments(rgb, 0.5 * i))
    vid = engine.video_token_id
    # one prefill over all six frames
    flat = [s for frame in segments for s in frame]
    one_logits, one_state = engine.prefill(start, build_batch(flat, start.next_position, vid), all_logits=True)
    # the same frames streamed: one, then two, then three per call
    state, logits = start, []
    for group in ([0], [1, 2], [3, 4, 5]):
        segs = [s for i in group for s in segments[i]]
        lg, state = engine.prefill(state, build_batch(segs, state.next_position, vid), all_logits=True)
        logits.append(lg)
    stream_logits = torch.cat(logits)
    assert one_state.n_tokens - start.n_tokens > 3 * engine.cfg.lact_chunk_size  # several chunk writes happened
    assert torch.allclose(one_logits, stream_logits, atol=1e-4, rtol=0), (one_logits - stream_logits).abs().max()
    _state_tensors_equal(one_state, state, atol=1e-5)
    # the writes really moved the fast weights away from their start
    w_start = start.layers[0].weights[0]
    assert not torch.allclose(state.layers[0].weights[0], w_start)


def test_state_is_bounded(stream_parts):
    engine, stream = stream_parts
    stream.reset()
    sizes = []
    for i, rgb in enumerate(_frames(24, seed=1)):
        stream.add_frame(rgb, float(i))
        sizes.append(stream.state_bytes())
    cfg = engine.cfg
    for ls, layer in zip(stream.state.layers, engine.lm.layers):
        window = cfg.window_size if hasattr(layer.self_attn, "w1") else cfg.anchor_window
        assert ls.keys.shape[2] <= window
        assert ls.pending_len() < cfg.lact_chunk_size + 8  # a chunk ends at the first frame end past it
    assert max(sizes[12:]) <= 1.05 * max(sizes[:12])  # flat (up to the pending chunk) after the windows filled


def test_question_leaves_the_stream_unchanged(stream_parts):
    engine, stream = stream_parts
    stream.reset()
    for i, rgb in enumerate(_frames(4, seed=2)):
        stream.add_frame(rgb, float(i))
    before_state = stream.state
    before = {k: v.clone() for k, v in before_state.tensors().items()}
    meta = (before_state.n_tokens, before_state.next_position, before_state.n_frames)
    g1 = stream.ask("How many chairs are in the room?")
    g2 = stream.ask("Which object is closer to the door?", ["A. chair", "B. table", "C. bed"])
    assert stream.state is before_state
    after = stream.state.tensors()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert (stream.state.n_tokens, stream.state.next_position, stream.state.n_frames) == meta
    assert 0.0 < g1.confidence <= 1.0 and len(g1.token_probs) >= 1
    assert set(g2.option_probs) == {"A", "B", "C"}
    # asking again gives the same answer: nothing leaked into the stream
    assert stream.ask("How many chairs are in the room?").text == g1.text


def test_inner_gradient_matches_autograd():
    from spatial_ttt_ros.vlm.fast_weights import apply_fast_weights, inner_step

    torch.manual_seed(0)
    h, d, dh, n = 2, 8, 12, 5
    w = [torch.randn(h, dh, d), torch.randn(h, d, dh), torch.randn(h, dh, d)]
    k, v = torch.randn(h, n, d), torch.randn(h, n, d)
    lr = [torch.rand(h, n, 1) for _ in range(3)]
    dw = inner_step(tuple(w), k, v, tuple(lr))
    for j in range(3):  # with one lr per matrix, the step of matrix j is -d/dWj sum_i lr_ij <f(k_i), v_i>
        ws = [x.clone().requires_grad_(i == j) for i, x in enumerate(w)]
        f = apply_fast_weights(tuple(ws), k)  # [H, n, d]
        loss = -((f * v).sum(-1, keepdim=True) * lr[j]).sum()
        (g,) = torch.autograd.grad(loss, ws[j])
        assert torch.allclose(dw[j], -g, atol=1e-4), j


def test_loader_refuses_a_mismatched_layout(tiny_dir):
    from spatial_ttt_ros.vlm.config import SpatialTTTConfig
    from spatial_ttt_ros.vlm.loader import load_model

    wrong = SpatialTTTConfig(lact_layers=(0, 1, 2, 3), num_lact_heads=2, lact_chunk_size=24, window_size=20)
    with pytest.raises(ValueError, match="does not match"):
        load_model(tiny_dir, cfg=wrong)
    with pytest.raises(FileNotFoundError):
        load_model(tiny_dir / "nowhere")


def test_keyframe_rate(stream_parts):
    _, stream = stream_parts
    stream.keyframe_interval_s = 1.0
    stream.reset()
    taken = [stream.offer_frame(rgb, 0.25 * i) for i, rgb in enumerate(_frames(9, seed=3))]
    stream.keyframe_interval_s = 0.0
    assert taken == [True, False, False, False, True, False, False, False, True]
    assert stream.state.n_frames == 3
