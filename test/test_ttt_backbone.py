"""TTT backbone: streaming == one pass, identity at init, state persistence and constant size."""

from __future__ import annotations

import pytest
from safetensors import SafetensorError
import torch

from spatial_ttt_ros.ttt import BackboneConfig, StreamingState, TTTBackbone
from spatial_ttt_ros.ttt.hybrid_block import HybridBlock


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# tiny: 3x2 grid, ego + 6 grid + 2 object slots; chunk 3 frames (27 tokens) so the
# groupings 7 and 64 cut chunks in the middle.
SMALL = dict(
    d_model=24, n_heads=3, n_layers=4, window_frames=2, chunk_frames=3, anchor_every=2,
    grid_hw=(2, 3), tokens_per_frame=9, n_summary=4, ttt_lr_scale=30.0,
)


def _perturbed(cfg: BackboneConfig, dtype=torch.float64, seed=0) -> TTTBackbone:
    """A backbone whose zero-initialised parts (out-proj, MLP down, gates, conv) are made
    non-trivial, so every mechanism shows in the outputs."""
    torch.manual_seed(seed)
    m = TTTBackbone(cfg).to(dtype)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if any(s in name for s in ("o_proj", "mlp_down", "gate", "conv.weight", "lr_proj.weight")):
                p.add_(0.3 * torch.randn_like(p))
    return m


def _stream(m, x, valid, group, state=None):
    ys = []
    for i in range(0, x.shape[1], group):
        y, state = m(x[:, i : i + group], valid[:, i : i + group], state)
        ys.append(y)
    return torch.cat(ys, dim=1), state


def _data(cfg, b=2, f=70, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, f, cfg.tokens_per_frame, cfg.d_model, generator=g).to(dtype)
    valid = torch.rand(b, f, cfg.tokens_per_frame, generator=g) > 0.2
    return x, valid


@pytest.mark.parametrize(
    "extra", [dict(), dict(momentum=0.8, muon=True)], ids=["default", "momentum+muon"]
)
def test_streaming_groupings_equal_one_pass(extra):
    cfg = BackboneConfig(**SMALL, **extra)
    assert cfg.conv and cfg.causal_conv
    m = _perturbed(cfg)
    x, valid = _data(cfg)
    ref, ref_state = m(x, valid)
    for group in (1, 7, 64):
        y, state = _stream(m, x, valid, group)
        torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-9)
        assert state.frames_seen == x.shape[1]
        for a, b in zip(state.layers, ref_state.layers):
            for key in a:
                torch.testing.assert_close(a[key], b[key], rtol=1e-9, atol=1e-9)
    # and the TTT branch mattered: the sliding-window-only twin gives different outputs
    assert ref.abs().mean() > 0


def test_streaming_float32_tolerance():
    cfg = BackboneConfig(**SMALL)
    m = _perturbed(cfg, torch.float32)
    x, valid = _data(cfg, f=40, dtype=torch.float32)
    ref, _ = m(x, valid)
    y, _ = _stream(m, x, valid, 7)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)


def test_fast_weights_change_the_output():
    """Guards against a silently dead TTT branch: same weights with ttt off differ."""
    cfg = BackboneConfig(**SMALL)
    m = _perturbed(cfg)
    x, valid = _data(cfg, f=20)
    y, st = m(x, valid)
    blk = m.blocks[0]
    assert blk.ttt is not None and blk.conv is not None
    # fast weights moved away from the slow weights
    assert (st.layers[0]["w1"] - blk.ttt.w1.double()).abs().max() > 1e-3
    # outputs after the first chunk depend on the update: reset the weights, outputs change
    fresh = m.init_state(2)
    y0, s0 = m(x[:, :3], valid[:, :3], fresh)
    s0.layers[0].update({k: fresh.layers[0][k] for k in ("w0", "w1", "w2")})
    y1, _ = m(x[:, 3:6], valid[:, 3:6], s0)
    torch.testing.assert_close(y0, y[:, :3])
    assert (y1 - y[:, 3:6]).abs().max() > 1e-6


def test_padding_content_is_ignored_and_future_is_not_seen():
    cfg = BackboneConfig(**SMALL)
    m = _perturbed(cfg)
    x, valid = _data(cfg, f=24)
    y, _ = m(x, valid)
    x2 = torch.where(valid.unsqueeze(-1), x, 100 * torch.randn_like(x))  # garbage in padding
    y2, _ = m(x2, valid)
    torch.testing.assert_close(y2[valid], y[valid], rtol=1e-9, atol=1e-9)
    x3 = x.clone()
    x3[:, 15:] = torch.randn_like(x3[:, 15:])  # change the future only
    y3, _ = m(x3, valid)
    torch.testing.assert_close(y3[:, :15], y[:, :15], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("use_ttt,anchor,window", [(True, False, 18), (False, False, 18), (False, True, 18), (False, False, None)])
def test_fresh_block_is_identity(use_ttt, anchor, window):
    torch.manual_seed(0)
    blk = HybridBlock(24, 3, tokens_per_frame=9, chunk_frames=2, window=window, grid_hw=(2, 3),
                      use_ttt=use_ttt, anchor=anchor, n_summary=4, ttt_lr_scale=30.0)
    x = torch.randn(2, 9 * 5, 24)
    valid = torch.rand(2, 45) > 0.3
    st = blk.init_state(2)
    y, st = blk(x, valid, st, 0)
    assert torch.equal(y, x)
    q = torch.randn(2, 4, 24)
    assert torch.equal(blk.read(q, st), q)


def test_fresh_backbone_blocks_are_identity():
    cfg = BackboneConfig(**SMALL)
    m = TTTBackbone(cfg)
    x, valid = _data(cfg, f=6, dtype=torch.float32)
    y, _ = m(x, valid)
    torch.testing.assert_close(y, m.norm_out(x))  # only the final norm acts


def test_read_does_not_mutate_and_sees_memory():
    cfg = BackboneConfig(**SMALL)
    m = _perturbed(cfg)
    x, valid = _data(cfg, f=12)
    _, st = m(x, valid)
    snapshot = st.clone()
    q = torch.randn(2, 5, cfg.d_model, dtype=torch.float64)
    r1 = m.read(st, q)
    r2 = m.read(st, q)
    assert r1.shape == (2, 5, cfg.d_model)
    torch.testing.assert_close(r1, r2)
    for a, b in zip(st.layers, snapshot.layers):
        for key in a:
            assert torch.equal(a[key], b[key])
    # queries are independent of each other
    torch.testing.assert_close(m.read(st, q[:, 2:3]), r1[:, 2:3])
    # a different memory gives a different read
    _, st_other = m(x.flip(1), valid.flip(1))
    assert (m.read(st_other, q) - r1).abs().max() > 1e-6


def test_save_load_continue_equals_never_stopping(tmp_path):
    cfg = BackboneConfig(**SMALL, momentum=0.5)
    m = _perturbed(cfg)
    x, valid = _data(cfg, f=30)
    ref, ref_state = m(x, valid)
    y_a, st = m(x[:, :13], valid[:, :13])  # stops mid-chunk: pending buffer non-empty
    assert st.layers[0]["pend_eta"].abs().max() > 0
    path = tmp_path / "state.safetensors"
    st.save(path)
    assert path.read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    loaded = m.load_state(path)
    assert loaded.frames_seen == 13
    y_b, st2 = m(x[:, 13:], valid[:, 13:], loaded)
    torch.testing.assert_close(torch.cat([y_a, y_b], 1), ref, rtol=1e-10, atol=1e-10)
    q = torch.randn(2, 3, cfg.d_model, dtype=torch.float64)
    torch.testing.assert_close(m.read(st2, q), m.read(ref_state, q), rtol=1e-10, atol=1e-10)


def test_load_refuses_other_architecture(tmp_path):
    cfg = BackboneConfig(**SMALL)
    m = TTTBackbone(cfg)
    _, st = m(*_data(cfg, f=4, dtype=torch.float32))
    path = tmp_path / "s.safetensors"
    st.save(path)
    other = TTTBackbone(BackboneConfig(**{**SMALL, "chunk_frames": 4}))
    with pytest.raises(ValueError, match="chunk_frames"):
        other.load_state(path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a state")
    with pytest.raises(SafetensorError):
        StreamingState.load(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError):
        m.load_state(tmp_path / "missing.safetensors")


def test_state_bytes_constant_after_100_and_10000_frames():
    cfg = BackboneConfig(d_model=8, n_heads=2, n_layers=2, window_frames=2, chunk_frames=8, anchor_every=2,
                         grid_hw=(1, 1), tokens_per_frame=2, n_summary=4, momentum=0.5)
    m = TTTBackbone(cfg).eval()
    x = torch.randn(1, 1000, 2, 8)
    with torch.inference_mode():
        _, st = m(x[:, :100])
        b100 = st.nbytes()
        st = None
        for _ in range(10):
            _, st = m(x, None, st)
    assert st.frames_seen == 10_000
    assert st.nbytes() == b100
    shapes = {k: tuple(t.shape) for layer in st.layers for k, t in layer.items()}
    assert "pend_k" in shapes and "sum_k" in shapes and "conv_cache" in shapes and "m0" in shapes


def test_full_context_state_grows_linearly():
    cfg = BackboneConfig(d_model=8, n_heads=2, n_layers=2, window_frames=2, chunk_frames=4,
                         grid_hw=(1, 1), tokens_per_frame=2, full_context=True)
    m = TTTBackbone(cfg).eval()
    with torch.inference_mode():
        _, s1 = m(torch.randn(1, 50, 2, 8))
        _, s2 = m(torch.randn(1, 100, 2, 8), None, s1)
    assert s2.nbytes() == pytest.approx(3 * s1.nbytes(), rel=0.01)
    assert all(blk.ttt is None for blk in m.blocks)


def test_bad_inputs_raise_clear_errors():
    cfg = BackboneConfig(**SMALL)
    m = TTTBackbone(cfg)
    with pytest.raises(ValueError, match="tokens_per_frame|must be"):
        m(torch.randn(1, 2, 5, cfg.d_model))
    nc = TTTBackbone(BackboneConfig(**{**SMALL, "causal_conv": False}))
    _, st = nc(torch.randn(1, 3, 9, 24))
    with pytest.raises(ValueError, match="whole stream"):
        nc(torch.randn(1, 3, 9, 24), None, st)
    with pytest.raises(ValueError):
        BackboneConfig(**{**SMALL, "tokens_per_frame": 4})


def test_gradients_reach_slow_weights_through_backbone():
    cfg = BackboneConfig(**{**SMALL, "n_layers": 1, "anchor_every": 0})
    m = _perturbed(cfg, torch.float32)
    x, valid = _data(cfg, b=1, f=9, dtype=torch.float32)
    _, st = m(x, valid)  # three chunk updates
    out = m.read(st, torch.randn(1, 2, cfg.d_model))
    out.pow(2).sum().backward()
    ttt = m.blocks[0].ttt
    # read() uses only the fast weights and the KV cache; the KV cache holds the last frames only,
    # so gradients on w0/w2 and lr_proj arrive through the inner updates
    assert ttt.lr_proj.weight.grad.abs().max() > 0
    assert ttt.w0.grad.abs().max() > 0 and ttt.w2.grad.abs().max() > 0
    assert m.blocks[0].conv.weight.grad.abs().max() > 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision(dtype):
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available on this machine (torch.cuda.is_available() is False)")
    cfg = BackboneConfig(**SMALL)
    m = _perturbed(cfg, torch.float32).cuda()
    x, valid = _data(cfg, f=20, dtype=torch.float32)
    ref, _ = m(x.cuda(), valid.cuda())
    mh = m.to(dtype)
    y, st = mh(x.cuda().to(dtype), valid.cuda())
    assert y.dtype == dtype and torch.isfinite(y).all()
    assert st.layers[0]["w1"].dtype == torch.float32  # fast weights stay fp32
    ys, _ = _stream(mh, x.cuda().to(dtype), valid.cuda(), 7)
    tol = 5e-2 if dtype == torch.float16 else 1e-1
    torch.testing.assert_close(ys.float(), y.float(), rtol=tol, atol=tol)
    torch.testing.assert_close(y.float(), ref, rtol=0.2, atol=0.2)
    r = mh.read(st, torch.randn(2, 3, cfg.d_model, device="cuda", dtype=dtype))
    assert r.dtype == dtype and torch.isfinite(r).all()


@pytest.mark.parametrize("causal", [True, False])
def test_spatial_conv_paths_agree_and_start_as_identity(causal):
    from spatial_ttt_ros.ttt.spatial_conv import SpatialConv3d

    torch.manual_seed(0)
    conv = SpatialConv3d(5, (3, 2), causal=causal).double()
    x = torch.randn(2, 6, 1 + 6 + 2, 5, dtype=torch.float64)
    y0, _ = conv(x)
    torch.testing.assert_close(y0, x)  # Dirac init
    with torch.no_grad():
        conv.weight.normal_()
        conv.bias.normal_()
    y_taps, c1 = conv(x)  # grad enabled: the 27-tap path
    with torch.no_grad():
        y_conv, c2 = conv(x)  # F.conv3d path
    torch.testing.assert_close(y_taps, y_conv)
    assert torch.equal(y_taps[:, :, 0], x[:, :, 0]) and torch.equal(y_taps[:, :, 7:], x[:, :, 7:])
    if causal:
        torch.testing.assert_close(c1, c2)
        # frame 0's output depends on frame 0 only (causal, zero history)
        x2 = x.clone()
        x2[:, 1:] = 0
        torch.testing.assert_close(conv(x2)[0][:, 0], y_taps[:, 0])
