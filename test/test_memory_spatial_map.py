"""The position-keyed TTT map (memory/spatial_map.py) and its readout (memory/map_readout.py): a local
kernel, recall by position, first sightings, seen floor, objects of a stream, frozen = empty, streaming
invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spatial_ttt_ros.memory.checkpoint import load_model, save_model
from spatial_ttt_ros.memory.methods import NO_MAP_WRITES
from spatial_ttt_ros.training.data import synthetic_tokens
from spatial_ttt_ros.memory.model import VARIANTS, MemoryConfig, SpatialMemoryModel, TTTMemory
from spatial_ttt_ros.memory.map_readout import PeakSettings
from spatial_ttt_ros.memory.occupancy import close_and_fill_holes
from spatial_ttt_ros.memory.spatial_map import (
    CH_BIRTH,
    CH_BIRTH_T,
    CH_CLASS,
    CH_PRESENCE,
    CH_TIME,
    CH_XY,
    RAW_DIM,
    SpatialMap,
)

SMALL_MAP = dict(
    d_model=32, n_layers=2, n_heads=2, anchor_every=2, chunk_frames=4, window_frames=2, keyframe_hz=0.0,
    readout="grid", grid_cells=8, spatial_map=True, map_dim=64,
)


def _write_one(m: SpatialMap, xy, cls: int, n_obs: int = 8, times=None, st=None, frames_seen: int = 0):
    """Write one object (class ``cls``) at ``xy`` n_obs times, one token per frame (token time
    ``times[f]``, default 0); returns the state."""
    M = m.max_objects
    raw = torch.zeros(1, n_obs * M, RAW_DIM)
    pos = torch.zeros(1, n_obs * M, 2)
    valid = torch.zeros(1, n_obs * M, dtype=torch.bool)
    for f in range(n_obs):
        raw[0, f * M, cls] = 1.0
        raw[0, f * M, 17:19] = torch.tensor(xy)  # xy field (after one-hot and score)
        if times is not None:
            raw[0, f * M, 23] = times[f]  # time field (after xy, z, log size)
        pos[0, f * M] = torch.tensor(xy)
        valid[0, f * M] = True
    st = m.init_state(1) if st is None else st
    return m.write(st, m.keys(pos), m.values(raw, torch.zeros(1, n_obs * M, 32)), valid, frames_seen)


def test_place_cell_kernel_is_local():
    # h(q).h(k) is a bump around q = k with nothing far away (random Fourier features left sidelobes
    # of about 4 % of the peak that added up over a long stream)
    m = SpatialMap(32, d_key=64, chunk_frames=4, max_objects=16)
    torch.manual_seed(0)
    x = torch.rand(600, 2) * 1.6 - 0.8  # half a period: no pair wraps around the torus
    with torch.no_grad():
        h = m.features_of(m.keys(x))
    k = h @ h.t()
    kn = k / torch.sqrt(k.diag()[:, None] * k.diag()[None])
    d = torch.cdist(x, x)
    assert float(kn[d > 0.2].abs().max()) < 0.01  # beyond 1 m
    assert float(kn[d < 0.01].min()) > 0.9
    assert 0.3 < float(kn[(d > 0.06) & (d < 0.08)].mean()) < 0.7  # about half at 0.35 m


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


def test_birth_channels_keep_the_first_sighting():
    # seen at t = 0.1 (4 frames), then again at t = 0.5..0.8: the mean time moves on, the birth time stays
    m = SpatialMap(32, d_key=64, chunk_frames=4, max_objects=16)
    with torch.no_grad():
        st = _write_one(m, [0.2, 0.3], cls=3, n_obs=4, times=[0.1] * 4)
        st = _write_one(m, [0.2, 0.3], cls=3, n_obs=12, times=[0.5 + 0.025 * i for i in range(12)], st=st, frames_seen=4)
        r = m.read(st, torch.tensor([[[0.2, 0.3]]]))[0, 0]
    assert float(r[CH_TIME] / r[CH_PRESENCE]) > 0.4
    assert abs(float(r[CH_BIRTH_T + 3] / r[CH_BIRTH + 3]) - 0.1) < 0.03
    assert float(r[CH_BIRTH + 2].abs()) < 1e-3  # other classes were never born there


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
    for variant, empty in (("ttt", False), ("ttt_frozen", True), ("sliding_window", True), ("ttt_no_conv", False)):
        mem = TTTMemory(load_model(path, variant=variant), threshold=0.0)
        for t in synthetic_tokens(n_frames=16):
            mem.observe(t)
        mem._flush()
        with torch.no_grad():
            r = mem.model.smap.read(mem.state.layers[-1], torch.zeros(1, 4, 2) + 0.1)
        assert (float(r.abs().max()) == 0.0) == empty, variant


SYNTHETIC_OBJECTS = {"sofa": (3.0, 3.2, 0.45), "tv": (3.0, 0.3, 1.0), "chair": (0.5, 0.8, 0.45), "table": (2.0, 1.8, 0.37)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_map_variants_decode(map_model, tmp_path, variant):
    path = tmp_path / "m.safetensors"
    save_model(path, map_model)
    mem = TTTMemory(load_model(path, variant=variant), threshold=0.0, merge_radius=0.0)
    for t in synthetic_tokens(n_frames=24):
        mem.observe(t)
    inv = mem.inventory()
    if variant in NO_MAP_WRITES:
        # nothing written in the map: the grid cell readout (every cell at threshold 0)
        assert len(inv.objects) == 64
        return
    # The map readout finds the stream's four objects where they are, even with an untrained
    # backbone (the map is keyed by position), with their sizes and the order they were seen in.
    assert sorted(o.label for o in inv.objects) == sorted(SYNTHETIC_OBJECTS)
    for o in inv.objects:
        np.testing.assert_allclose(o.center, SYNTHETIC_OBJECTS[o.label], atol=0.1)
    by = {o.label: o for o in inv.objects}
    np.testing.assert_allclose(by["sofa"].size, [2.0, 0.9, 0.9], rtol=0.1)
    # the chair is behind the turning camera at the start: first seen after half a turn (about 6 s)
    assert 5.0 < by["chair"].first_seen < 8.0
    assert max(by[k].first_seen for k in ("sofa", "tv", "table")) < 2.0
    # the seen floor: rays of 2-2.5 m around the camera, about a disc of radius 2.2 m
    assert 11.0 < inv.room.area_m2 < 19.0


def test_peak_settings_validate_and_load_from_info():
    assert PeakSettings.from_info({"map_min_observations": 3.0, "decode_threshold": 0.2}).min_observations == 3.0
    assert PeakSettings.from_info({}) == PeakSettings()
    for bad in ({"window": 4}, {"cells": 4}, {"min_share": 1.5}, {"min_observations": 0.0}, {"merge_radius": -1.0}):
        with pytest.raises(ValueError, match="map readout"):
            PeakSettings(**bad)


def test_occupancy_fill_closes_holes_and_gaps():
    ring = np.zeros((12, 12), np.uint8)
    ring[2:10, 2:10] = 1
    ring[4:8, 4:8] = 0  # under a table: enclosed, filled
    ring[2, 6] = 0  # a one-cell gap in the edge: closed
    out = close_and_fill_holes(ring)
    assert out[5, 5] == 1 and out[2, 6] == 1 and out.sum() == 64 and out[0, 0] == 0


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
    ia, ib = a.inventory(), b.inventory()
    assert [o.label for o in ia.objects] == [o.label for o in ib.objects] and len(ia.objects) == 4
    np.testing.assert_allclose([o.center for o in ia.objects], [o.center for o in ib.objects], atol=1e-3)
    a.save(tmp_path / "mem.safetensors")
    c = TTTMemory(map_model, threshold=0.0)
    c.load(tmp_path / "mem.safetensors")
    assert torch.allclose(c.decoded().logits, da.logits, atol=1e-5)
    np.testing.assert_allclose([o.center for o in c.inventory().objects], [o.center for o in ia.objects], atol=1e-5)


def test_old_config_has_no_map():
    # a stored config from before the map (no spatial_map field) builds the map-less model
    d = MemoryConfig(d_model=32, n_layers=2, n_heads=2, anchor_every=2).to_dict()
    del d["spatial_map"]
    m = SpatialMemoryModel(MemoryConfig.from_dict(d))
    assert m.smap is None and not any(k.startswith("smap.") or "map_in" in k for k in m.state_dict())
    # the slot readout has no map either
    assert SpatialMemoryModel(MemoryConfig(d_model=32, n_layers=2, n_heads=2, anchor_every=2, readout="slots")).smap is None


def test_map_readout_unwraps_the_torus_where_nothing_was_written():
    # two objects beyond half a period from the origin (period 3.2): a grid centred on the origin
    # would report the far one wrapped to the other side; the readout cuts the torus in the empty gap
    from spatial_ttt_ros.memory.map_readout import find_objects, read_map

    m = SpatialMap(32, d_key=64, chunk_frames=4, max_objects=16)
    with torch.no_grad():
        st = _write_one(m, [1.2, 0.0], cls=2, n_obs=12)
        st = _write_one(m, [2.2, 0.3], cls=7, n_obs=12, st=st, frames_seen=12)
        reads, pos = read_map(m, st, 64)
    found = {o.class_id: o.xy for o in find_objects(reads, pos, m.period, PeakSettings(cells=64), pos_scale=5.0)}
    assert sorted(found) == [2, 7]
    np.testing.assert_allclose(found[2], [1.2, 0.0], atol=0.02)
    np.testing.assert_allclose(found[7], [2.2, 0.3], atol=0.02)


def test_cached_grid_features_read_like_direct_reads_and_follow_the_weights():
    m = SpatialMap(32, d_key=64, chunk_frames=4, max_objects=16)
    with torch.no_grad():
        st = _write_one(m, [0.3, -0.4], cls=4, n_obs=6)  # one step plus a pending half chunk
        pos = m.grid_positions(32).reshape(1, -1, 2)
        direct = m.read(st, pos)
        cached = m.read_at_features(st, m.grid_features(32))
        torch.testing.assert_close(cached, direct, rtol=1e-4, atol=1e-4)
        assert m.grid_features(32) is m.grid_features(32)  # computed once
        m.fw.w0.mul_(1.5)  # the slow weights changed (e.g. loaded or trained): recomputed
        torch.testing.assert_close(m.read_at_features(st, m.grid_features(32)), m.read(st, pos), rtol=1e-4, atol=1e-4)
