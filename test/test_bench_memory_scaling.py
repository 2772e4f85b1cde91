"""``bench scaling``'s memories part: the answering memories on a short real walk (a few seconds).

Output contract, constant ``ttt`` state under 1 MiB, a non-empty object map, and the walk's
replay keeping stamps in order. No timing assertions: the numbers are the benchmark's job.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from spatial_ttt_ros.bench import scaling
from spatial_ttt_ros.perception.tokens import EGO_FIELDS, OBJ_FIELDS, TIME_SCALE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WALK = 24  # rendered frames; the 32- and 48-frame streams replay it


def _args(argv):
    p = argparse.ArgumentParser()
    scaling.configure_parser(p)
    return p.parse_args(argv)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("scaling") / "scaling.json"
    # --methods with no names: the backbone part is test_ttt_bench's.
    args = _args(["--methods", "--frames", "32", "48", "--walk-frames", str(WALK), "--walk-rooms", "1",
                  "--min-timed-frames", "1", "--json", str(out)])
    assert scaling.run(args) == 0
    return json.loads(out.read_text())


def test_memories_section_json_contract(report):
    assert report["methods"] == {}  # the backbone keys stay, empty when that part is skipped
    mem = report["memories"]
    assert set(mem["methods"]) == {"ttt", "object_map", "full_context"}
    assert mem["walk"]["frames"] == WALK and "repeats" in mem["note"]
    for name, rows in mem["methods"].items():
        assert set(rows) == {"32", "48"}, name
        for r in rows.values():
            assert isinstance(r["state_bytes"], int) and r["state_bytes"] > 0
            assert r["state_bytes_max_tail"] >= r["state_bytes"]
            assert r["ms_per_frame"] > 0 and r["wall_ms_per_frame"] > 0
            assert r["inventory_cpu_ms"] >= 0 and isinstance(r["inventory_objects"], int)
            assert r["walk_repeats"] == 2
    assert set(mem["ratios"]["ttt_over_object_map"]) == {"32", "48"}
    assert {"ttt_state_constant_32_to_48", "ttt_state_max_bytes",
            "ttt_cpu_per_frame_over_object_map_48"} <= set(mem["ratios"]["targets"])


def test_ttt_state_is_constant_and_under_one_mib(report):
    ttt = report["memories"]["methods"]["ttt"]
    # 32 and 48 are whole 8-frame chunks: no frames pending, so the bytes must be equal.
    assert ttt["32"]["state_bytes"] == ttt["48"]["state_bytes"]
    assert ttt["32"]["state_bytes_max_tail"] == ttt["48"]["state_bytes_max_tail"] <= 1 << 20
    targets = report["memories"]["ratios"]["targets"]
    assert targets["ttt_state_constant_32_to_48"]["pass"] and targets["ttt_state_max_bytes"]["pass"]
    full = report["memories"]["methods"]["full_context"]
    assert full["48"]["state_bytes"] > full["32"]["state_bytes"]  # the baseline keeps every frame


def test_every_memory_decodes_objects_in_view(report):
    rows = report["memories"]["methods"]
    assert rows["object_map"]["48"]["inventory_objects"] > 0
    assert all(r["inventory_objects"] > 0 for per_n in rows.values() for r in per_n.values())


def test_replayed_walk_keeps_stamps_in_order_and_shifts_every_time_field():
    walk = scaling.load_walk(seed=8000, n_rooms=1, n_frames=10, detections="exact")
    period = scaling.walk_period(walk, rate_hz=10.0)
    stream = list(scaling.replay(walk, 25, period))
    stamps = [t.stamp for t in stream]
    assert np.all(np.diff(stamps) > 0) and [t.frame_index for t in stream] == list(range(25))
    for i, tok in enumerate(stream):
        orig = walk[i % len(walk)]
        dt = tok.stamp - orig.stamp
        assert dt == pytest.approx((i // len(walk)) * period)
        assert tok.time - tok.stamp == pytest.approx(orig.time - orig.stamp)  # same stream start
        assert tok.ego[EGO_FIELDS["time"]][0] == pytest.approx(orig.ego[EGO_FIELDS["time"]][0] + dt * TIME_SCALE)
        t_obj, t_orig = tok.objects[:, OBJ_FIELDS["time"]][:, 0], orig.objects[:, OBJ_FIELDS["time"]][:, 0]
        assert np.allclose(t_obj[tok.object_valid], t_orig[orig.object_valid] + dt * TIME_SCALE)
        assert np.all(t_obj[~tok.object_valid] == 0)
        assert [o.stamp for o in tok.observations] == pytest.approx([o.stamp + dt for o in orig.observations])
        assert tok.ego is not orig.ego and tok.objects is not orig.objects  # copies: the walk stays as rendered
    assert walk[0].stamp == stream[0].stamp and any(len(t.observations) for t in stream)
