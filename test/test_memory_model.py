"""The learned memory model: decoding, constant state, checkpoints (round trip and refusals)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from spatial_ttt_ros.classes import CLASSES
from spatial_ttt_ros.memory.checkpoint import load_model, read_checkpoint, save_model
from spatial_ttt_ros.training.data import synthetic_tokens
from spatial_ttt_ros.memory.model import VARIANTS, MemoryConfig, SpatialMemoryModel, TTTMemory
from spatial_ttt_ros.memory.protocol import SpatialMemory
from spatial_ttt_ros.inventory import Inventory

SMALL = dict(
    d_model=32, n_layers=2, n_heads=2, anchor_every=2, chunk_frames=4, window_frames=2, keyframe_hz=0.0, readout="slots"
)


@pytest.fixture(scope="module")
def tokens():
    return synthetic_tokens(n_frames=24)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = SpatialMemoryModel(MemoryConfig(**SMALL))
    # Open the zero-initialised output gates a little so the memory influences the readout.
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("ttt.gate") or n.endswith("o_proj.weight") or n.endswith("mlp_down.weight"):
                p.normal_(0, 0.1)
    return m.eval()


def run_memory(mem, tokens):
    mem.reset()
    for t in tokens:
        mem.observe(t)
    return mem.inventory()


def test_protocol_and_valid_inventory(model, tokens):
    mem = TTTMemory(model, threshold=0.0)  # every slot becomes an object: checks all of them
    assert isinstance(mem, SpatialMemory)
    inv = run_memory(mem, tokens)
    assert isinstance(inv, Inventory)
    assert 0 < len(inv.objects) <= model.n_slots
    for o in inv.objects:
        assert o.label in CLASSES
        assert o.center.shape == (3,) and np.all(np.isfinite(o.center))
        assert np.all(o.size > 0) and np.all(np.isfinite(o.size))
        assert o.first_seen >= 0.0 and 0.0 <= o.confidence <= 1.0
    assert inv.room is not None and inv.room.area_m2 > 0
    assert np.all(inv.room.min_xy <= inv.room.max_xy)
    assert inv.start_stamp == pytest.approx(tokens[0].stamp)
    assert inv.stamp == pytest.approx(tokens[-1].stamp)
    Inventory.from_json(inv.to_json())  # serialisable


def test_grid_readout_inventory(tokens):
    torch.manual_seed(0)
    # the grid cell readout alone (with the map, objects come from the map readout: test_memory_spatial_map)
    m = SpatialMemoryModel(MemoryConfig(**{**SMALL, "readout": "grid", "grid_cells": 8, "spatial_map": False})).eval()
    mem = TTTMemory(m, threshold=0.0, merge_radius=0.0)
    inv = run_memory(mem, tokens)
    assert len(inv.objects) == 64  # one per cell at threshold 0
    assert all(o.label in CLASSES and np.all(np.isfinite(o.center)) for o in inv.objects)
    dec = mem.decoded()
    # Each decoded centre stays within one cell of its cell centre.
    off = (dec.center[0, :, :2] - dec.cells[0]).abs().max()
    assert float(off) <= float(dec.cell_size[0]) + 1e-5


def test_grid_targets_one_object_per_cell():
    from spatial_ttt_ros.memory.decoder import DecodedSlots
    from spatial_ttt_ros.training.train import match_grid

    cells = torch.tensor([[[0.5, 0.5], [1.5, 0.5], [0.5, 1.5], [1.5, 1.5]]])
    dec = DecodedSlots(torch.zeros(1, 4, 17), torch.zeros(1, 4, 3), torch.zeros(1, 4, 3), torch.zeros(1, 4),
                       torch.zeros(1, 5), cells=cells, cell_size=torch.tensor([1.0]))
    tgt = {"label": np.array([0, 1, 2, 3]),
           "center": np.array([[0.4, 0.6, 0], [1.9, 1.9, 0], [1.6, 1.4, 0], [5.0, 5.0, 0]])}
    si, ti = match_grid(dec, 0, tgt)
    assert dict(zip(si.tolist(), ti.tolist())) == {0: 0, 3: 2}  # nearest wins cell 3; outside dropped


def test_empty_memory_inventory(model):
    inv = TTTMemory(model).inventory()
    assert inv.objects == [] and inv.room is None


def test_state_bytes_constant(model):
    mem = TTTMemory(model)
    sizes = []
    for n in (8, 32, 96):  # multiples of chunk_frames: no pending frames
        run_memory(mem, synthetic_tokens(n_frames=n))
        sizes.append(mem.state_bytes())
    assert sizes[0] == sizes[1] == sizes[2] > 0


def test_chunking_does_not_change_result(model, tokens):
    a = TTTMemory(model, threshold=0.0)
    run_memory(a, tokens)
    da = a.decoded()
    b = TTTMemory(model, threshold=0.0)
    b.reset()
    for i, t in enumerate(tokens):
        b.observe(t)
        if i % 5 == 0:
            b.inventory()  # forces a partial-chunk flush
    db = b.decoded()
    assert torch.allclose(da.logits, db.logits, atol=1e-4)
    assert torch.allclose(da.center, db.center, atol=1e-4)


def test_keyframing_rate():
    torch.manual_seed(0)
    m = SpatialMemoryModel(MemoryConfig(**{**SMALL, "keyframe_hz": 2.0}))
    mem = TTTMemory(m)
    run_memory(mem, synthetic_tokens(n_frames=50, rate_hz=10.0))  # 5 s at 10 Hz
    assert mem.n_frames == 50
    assert mem.n_written == 10  # 2 Hz


def test_inventory_decoded_once_per_keyframe():
    """Asks between keyframes reuse the decoded inventory; a new keyframe decodes afresh."""
    torch.manual_seed(0)
    m = SpatialMemoryModel(MemoryConfig(**{**SMALL, "keyframe_hz": 2.0}))
    mem = TTTMemory(m)
    stream = synthetic_tokens(n_frames=12, rate_hz=10.0)  # keyframes at frames 0, 5, 10
    calls = []
    decode = m.decode
    m.decode = lambda *a, **kw: calls.append(1) or decode(*a, **kw)
    for t in stream[:3]:
        mem.observe(t)
    first = mem.inventory()
    mem.observe(stream[3])  # not a keyframe: same state, newer stamp
    again = mem.inventory()
    assert len(calls) == 1
    assert again.stamp == pytest.approx(stream[3].stamp) and again.stamp > first.stamp
    assert [o.label for o in again.objects] == [o.label for o in first.objects]
    assert again.objects is not first.objects  # a caller's edits never reach the cache
    mem.observe(stream[4])
    mem.observe(stream[5])  # a keyframe
    mem.inventory()
    assert len(calls) == 2
    mem.threshold = mem.threshold + 0.1  # other decoding settings: decoded afresh
    mem.inventory()
    assert len(calls) == 3

def test_memory_state_save_load(model, tokens, tmp_path):
    a = TTTMemory(model, threshold=0.0)
    inv_a = run_memory(a, tokens)
    a.save(tmp_path / "mem.safetensors")
    b = TTTMemory(model, threshold=0.0)
    b.load(tmp_path / "mem.safetensors")
    inv_b = b.inventory()
    assert len(inv_a.objects) == len(inv_b.objects)
    for oa, ob in zip(inv_a.objects, inv_b.objects):
        assert oa.label == ob.label
        np.testing.assert_allclose(oa.center, ob.center, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_share_weights(model, tokens, tmp_path, variant):
    path = tmp_path / "m.safetensors"
    save_model(path, model)
    m = load_model(path, variant=variant)
    own, trained = m.state_dict(), model.state_dict()
    assert own and set(own) <= set(trained)  # a variant only drops parameters it does not use
    for k, v in own.items():
        assert torch.equal(v, trained[k]), k
    mem = TTTMemory(m)
    run_memory(mem, tokens)
    logits = mem.decoded().logits
    assert torch.isfinite(logits).all()
    if variant == "ttt":  # the saved and reloaded model decodes exactly as the original
        ref = TTTMemory(model)
        run_memory(ref, tokens)
        assert torch.equal(logits, ref.decoded().logits)
    if variant == "ttt_frozen":  # no inner updates: fast weights equal the slow weights
        mem = TTTMemory(m)
        run_memory(mem, tokens)
        layer = next(st for st in mem.state.layers if "w0" in st)
        blk = next(b for b in m.backbone.blocks if b.ttt is not None)
        assert torch.allclose(layer["w0"][0], blk.ttt.w0.float(), atol=1e-6)


def test_checkpoint_round_trip(model, tokens, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, model, {"note": "test"})
    m2 = load_model(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), m2.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    d1 = run_memory(TTTMemory(model, threshold=0.0), tokens)
    d2 = run_memory(TTTMemory(m2, threshold=0.0), tokens)
    assert [o.label for o in d1.objects] == [o.label for o in d2.objects]
    _, _, info = read_checkpoint(path)
    assert info == {"note": "test"}


def test_refuses_other_architecture(model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, model)
    with pytest.raises(ValueError, match="d_model"):
        load_model(path, expected_config=MemoryConfig(**{**SMALL, "d_model": 48}).to_dict())


def test_refuses_mismatched_tensors(model, tmp_path):
    # A checkpoint whose config says one architecture while its tensors are another's.
    from spatial_ttt_ros.memory.checkpoint import save_checkpoint

    other = SpatialMemoryModel(MemoryConfig(**{**SMALL, "d_model": 48}))
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model.cfg.to_dict(), other.state_dict())
    with pytest.raises(ValueError, match="does not fit this model architecture"):
        load_model(path)


def test_refuses_foreign_and_corrupt_files(model, tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01 definitely not a checkpoint" * 10)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_model(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="not a spatial_ttt_ros memory checkpoint"):
        load_model(foreign)
    good = tmp_path / "good.safetensors"
    save_model(good, model)
    data = bytearray(good.read_bytes())
    data[-64:] = bytes(64)  # damage tensor bytes: signature still matches shapes, so truncate instead
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(bytes(good.read_bytes()[: len(data) // 2]))
    with pytest.raises(ValueError):
        load_model(truncated)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.safetensors")
