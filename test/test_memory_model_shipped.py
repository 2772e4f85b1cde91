"""The shipped checkpoint loads and reproduces its recorded output on a fixed stream.

The reference (test_memory_model_shipped.json) is produced by
``.venv/bin/python -m spatial_ttt_ros.memory.checkpoint record test/test_memory_model_shipped.json``
right after the checkpoint is trained; re-record it whenever the shipped weights change.
The stream is ``memory.data.synthetic_tokens(48)``: numpy only, so the test does not
depend on the simulator or renderer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spatial_ttt_ros.memory.checkpoint import DEFAULT_CHECKPOINT, load_default_model, reference_output
from spatial_ttt_ros.memory.model import MemoryConfig

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


def test_shipped_variants_load(shipped):
    for variant in ("frozen", "no_conv", "swa", "full_context"):
        assert load_default_model(variant).variant == variant
