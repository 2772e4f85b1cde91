"""The position-keyed TTT map (memory/spatial_map.py): recall by position, frozen = empty, streaming invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spatial_ttt_ros.memory.checkpoint import load_model, save_model
from spatial_ttt_ros.memory.data import synthetic_tokens
from spatial_ttt_ros.memory.model import VARIANTS, MemoryConfig, SpatialMemoryModel, TTTMemory
from spatial_ttt_ros.memory.spatial_map import CH_CLASS, CH_PRESENCE, CH_XY, RAW_DIM, SpatialMap

SMALL_MAP = dict(
    d_model=32, n_layers=2, n_heads=2, anchor_every=2, chunk_frames=4, window_frames=2, keyframe_hz=0.0,
    readout="grid", grid_cells=8, spatial_map=True, map_dim=32,
)


def _write_one(m: SpatialMap, xy, cls: int, n_obs: int = 8):
    """Write one object (class ``cls``) at ``xy`` n_obs times, one token per frame; returns the state."""
    M = m.max_objects
    raw = torch.zeros(1, n_obs * M, RAW_DIM)
    pos = torch.zeros(1, n_obs * M, 2)
    valid = torch.zeros(1, n_obs * M, dtype=torch.bool)
    for f in range(n_obs):
        raw[0, f * M, cls] = 1.0
        raw[0, f * M, 17:19] = torch.tensor(xy)  # xy field (after one-hot and score)
        pos[0, f * M] = torch.tensor(xy)
        valid[0, f * M] = True
    st = m.init_state(1)
    return m.write(st, m.keys(pos), m.values(raw, torch.zeros(1, n_obs * M, 32)), valid, 0)


def test_map_recalls_by_position():
    torch.manual_seed(0)
    m = SpatialMap(32, d_key=64, chunk_frames=4, max_objects=16)
    with torch.no_grad():
        st = _write_one(m, [0.4, -0.2], cls=5)
        r = m.read(st, torch.tensor([[[0.4, -0.2], [1.0, 1.0], [-0.5, 0.3]]]))  # [1, 3, dk]
    p = r[0, :, CH_PRESENCE]
    assert p[0] > 4.0 and p[0] > 5 * p[1:].abs().max()  # about the number of observations, only there
    assert int(r[0, 0, CH_CLASS : CH_CLASS + 16].argmax()) == 5
    np.testing.assert_allclose((r[0, 0, CH_XY : CH_XY + 2] / p[0]).numpy(), [0.4, -0.2], atol=0.02)


def test_map_pending_chunk_is_read():
    torch.manual_seed(0)
    m = SpatialMap(32, d_key=64, chunk_frames=4, max_objects=16)
    with torch.no_grad():
        st = _write_one(m, [0.0, 0.0], cls=1, n_obs=2)  # half a chunk: only pending
        assert torch.equal(st["map_w1"][0], m.fw.w1)  # no step taken yet
        assert m.read(st, torch.zeros(1, 1, 2))[0, 0, CH_PRESENCE] > 1.0


@pytest.fixture(scope="module")
def map_model():
    torch.manual_seed(0)
    return SpatialMemoryModel(MemoryConfig(**SMALL_MAP)).eval()


def test_frozen_map_stores_nothing(map_model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, map_model)
    for variant, empty in (("ttt", False), ("frozen", True), ("swa", True), ("no_conv", False)):
        mem = TTTMemory(load_model(path, variant=variant), threshold=0.0)
        for t in synthetic_tokens(n_frames=16):
            mem.observe(t)
        mem._flush()
        with torch.no_grad():
            r = mem.model.smap.read(mem.state.layers[-1], torch.zeros(1, 4, 2) + 0.1)
        assert (float(r.abs().max()) == 0.0) == empty, variant


@pytest.mark.parametrize("variant", VARIANTS)
def test_map_variants_decode(map_model, tmp_path, variant):
    path = tmp_path / "m.safetensors"
    save_model(path, map_model)
    mem = TTTMemory(load_model(path, variant=variant), threshold=0.0, merge_radius=0.0)
    for t in synthetic_tokens(n_frames=12):
        mem.observe(t)
    assert len(mem.inventory().objects) == 64


def test_map_state_constant_chunking_and_save_load(map_model, tmp_path):
    tokens = synthetic_tokens(n_frames=24)
    sizes = []
    for n in (8, 32):
        mem = TTTMemory(map_model)
        for t in synthetic_tokens(n_frames=n):
            mem.observe(t)
        mem._flush()
        sizes.append(mem.state_bytes())
    assert sizes[0] == sizes[1]
    a = TTTMemory(map_model, threshold=0.0)
    b = TTTMemory(map_model, threshold=0.0)
    for i, t in enumerate(tokens):
        a.observe(t)
        b.observe(t)
        if i % 5 == 0:
            b.inventory()  # partial-chunk flushes
    da, db = a.decoded(), b.decoded()
    assert torch.allclose(da.logits, db.logits, atol=1e-4)
    a.save(tmp_path / "mem.safetensors")
    c = TTTMemory(map_model, threshold=0.0)
    c.load(tmp_path / "mem.safetensors")
    assert torch.allclose(c.decoded().logits, da.logits, atol=1e-5)


def test_old_config_has_no_map():
    # a stored config from before the map (no spatial_map field) builds the map-less model
    d = MemoryConfig(d_model=32, n_layers=2, n_heads=2, anchor_every=2).to_dict()
    del d["spatial_map"]
    m = SpatialMemoryModel(MemoryConfig.from_dict(d))
    assert m.smap is None and not any(k.startswith("smap.") or "map_in" in k for k in m.state_dict())
    # the slot readout has no map either
    assert SpatialMemoryModel(MemoryConfig(d_model=32, n_layers=2, n_heads=2, anchor_every=2, readout="slots")).smap is None
