"""The shipped checkpoint loads and reproduces its recorded output on a fixed stream.

The reference (test_memory_model_shipped.json) is produced by
``.venv/bin/python -m spatial_ttt_ros.training.reference record test/test_memory_model_shipped.json``
right after the checkpoint is trained; re-record it whenever the shipped weights change.
The stream is ``training.data.synthetic_tokens(48)``: numpy only, so the test does not
depend on the simulator or renderer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import torch

from spatial_ttt_ros.memory.checkpoint import DEFAULT_CHECKPOINT, load_default_model
from spatial_ttt_ros.memory.methods import NO_MAP_WRITES
from spatial_ttt_ros.memory.model import MemoryConfig, TTTMemory
from spatial_ttt_ros.training.data import synthetic_tokens
from spatial_ttt_ros.training.reference import reference_output

REFERENCE = Path(__file__).with_suffix(".json")


@pytest.fixture(scope="module")
def shipped():
    assert DEFAULT_CHECKPOINT.is_file(), f"shipped checkpoint {DEFAULT_CHECKPOINT} is missing"
    return load_default_model()


def test_shipped_checkpoint_is_small_and_default_architecture(shipped):
    assert DEFAULT_CHECKPOINT.stat().st_size < 8 * 1024 * 1024
    assert shipped.cfg == MemoryConfig()  # the code's default config is the shipped one


def test_shipped_checkpoint_reproduces_recorded_output(shipped):
    ref = json.loads(REFERENCE.read_text())
    out = reference_output(shipped, n_frames=ref["n_frames"])
    np.testing.assert_allclose(out["p_object"], ref["p_object"], atol=2e-3)
    np.testing.assert_allclose(out["center"], ref["center"], atol=2e-3)
    np.testing.assert_allclose(out["room"], ref["room"], atol=2e-3)
    inv, rinv = out["inventory"], ref["inventory"]
    assert [o["label"] for o in inv["objects"]] == [o["label"] for o in rinv["objects"]]
    for o, r in zip(inv["objects"], rinv["objects"]):
        np.testing.assert_allclose(o["center"], r["center"], atol=1e-2)
        np.testing.assert_allclose(o["size"], r["size"], atol=1e-2)
    assert inv["room"]["area_m2"] == pytest.approx(rinv["room"]["area_m2"], rel=1e-2)
    for a, r in zip(out["answers"], ref["answers"]):
        assert a.get("option") == r.get("option")
        if r.get("value") is not None:
            assert a["value"] == pytest.approx(r["value"], rel=1e-2, abs=1e-2)


@pytest.mark.parametrize("variant", ["ttt_frozen", "ttt_no_conv", "sliding_window", "full_context"])
def test_shipped_variants_load_and_run(variant):
    """Each variant runs on the shipped weights and does what its flags say: the ones without
    a TTT memory leave the position-keyed map empty, the others write into it."""
    mem = TTTMemory(load_default_model(variant))
    for t in synthetic_tokens(n_frames=24):
        mem.observe(t)
    mem._flush()
    with torch.no_grad():
        r = mem.model.smap.read(mem.state.layers[-1], torch.zeros(1, 4, 2) + 0.1)
    assert (float(r.abs().max()) == 0.0) == (variant in NO_MAP_WRITES)
    assert mem.inventory().room is not None
