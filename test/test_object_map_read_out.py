"""The object map's incremental read-out gives exactly the inventory of a full rebuild.

A read-out merges a *copy* of the map (issue 13): the copy shares the map's instances and
copies one only before the merge changes it, robust boxes are cached per quantile pair,
an instance unchanged since the last read-out gives the same ``InventoryObject``, the room
is recomputed only after new floor cells, and the description keeps the pair distances of
unchanged objects. None of that may change an answer. One simulated stream with detector
noise (drift, so the merge and the duplicate folding on the copy both happen) is fed to a
pipeline that reads out after every frame and to a second one that never reads out; at
several points of the stream:

- the inventory and description read out incrementally equal, to the last bit, those of a
  straightforward full rebuild (a deep copy of the whole map, every cache emptied, merged,
  every object built anew: the read-out as it was first written);
- the map itself is the same as the map that was never read out (reading out changes nothing).
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from spatial_ttt_ros.inventory import Inventory, InventoryObject
from spatial_ttt_ros.memory.object_map import ObjectMapMemory
from spatial_ttt_ros.perception.front_end import FrontEnd
from spatial_ttt_ros.pipeline import SpatialMemoryPipeline
from spatial_ttt_ros.reasoning.describe import describe

N_FRAMES = 160
CHECKPOINTS = {10, 40, 80, 120, N_FRAMES}


@pytest.fixture(scope="module")
def frames():
    from spatial_ttt_ros.sim.stream import simulate_stream

    s = simulate_stream(seed=7, n_rooms=2, n_frames=N_FRAMES, rate_hz=10.0, width=160, height=120)
    return [f for f, _ in s.frames()]


def full_rebuild(memory: ObjectMapMemory) -> Inventory:
    """The read-out without any of its shortcuts: deep copy, no caches, every object new."""
    snap = copy.deepcopy(memory)
    for inst in snap.instances:
        inst._box = None
    snap._read_out_cache = {}
    snap.floor._room = None
    snap._merge_pass()
    snap._fold_duplicates()
    q_lo, q_hi = snap.size_quantiles
    objects = []
    for inst in snap.instances:
        if inst.count < snap.min_count:
            continue
        lo, hi = inst.robust_box(q_lo, q_hi)
        objects.append(InventoryObject(
            label=inst.label,
            center=0.5 * (lo + hi),
            size=np.clip(hi - lo, 0.01, None),
            first_seen=inst.first_seen,
            confidence=float((1.0 - math.exp(-inst.count / 5.0)) * inst.votes.max() / max(inst.votes.sum(), 1e-9)),
        ))
    objects.sort(key=lambda o: (o.first_seen, o.label))
    return Inventory(objects=objects, room=snap.floor.room(), stamp=snap.last_stamp, start_stamp=snap.start_stamp)


def map_state(memory: ObjectMapMemory, tmp_path) -> dict:
    path = tmp_path / "state.json"
    memory.save(path)
    return json.loads(path.read_text())


def count_copies(monkeypatch) -> dict:
    """Counts the instances a read-out's copy made private (merge or duplicate fold on the copy)."""
    seen = {"copied": 0}
    own = ObjectMapMemory._own

    def counting(self, k):
        if self._shared is not None and id(self.instances[k]) in self._shared:
            seen["copied"] += 1
        return own(self, k)

    monkeypatch.setattr(ObjectMapMemory, "_own", counting)
    return seen


def test_incremental_read_out_equals_a_full_rebuild(frames, tmp_path, monkeypatch):
    seen = count_copies(monkeypatch)

    def pipeline():
        return SpatialMemoryPipeline(FrontEnd("labels", noise="noisy", noise_seed=3), ObjectMapMemory())

    live, untouched = pipeline(), pipeline()
    previous_ids: set[int] = set()
    reused = 0
    for n, frame in enumerate(frames, start=1):
        live.process(frame)
        untouched.process(frame)
        out = live.read_out()  # every frame, as the node does while no frame waits
        ids = {id(o) for o in out.inventory.objects}
        reused += len(ids & previous_ids)
        previous_ids = ids
        if n not in CHECKPOINTS:
            continue
        # Reading out never changed the map.
        assert map_state(live.memory, tmp_path) == map_state(untouched.memory, tmp_path), n
        ref = full_rebuild(untouched.memory)
        assert out.inventory.to_json() == ref.to_json(), n
        assert out.description == describe(ref), n
        assert out.inventory.to_json() == full_rebuild(live.memory).to_json(), n
    assert reused > 0  # unchanged instances gave the same objects
    assert seen["copied"] > 0  # the copy's merge changed shared instances (copied first)


def test_read_out_leaves_shared_instances_alone(frames, monkeypatch):
    """The copy's merge works on private copies: the live instances keep their counts and boxes."""
    seen = count_copies(monkeypatch)
    mem = ObjectMapMemory()
    pipe = SpatialMemoryPipeline(FrontEnd("labels", noise="noisy", noise_seed=3), mem)
    for frame in frames[:120]:
        pipe.process(frame)
        before = [(i, i.count, i.votes.copy(), i.n_boxes, i.lo.copy()) for i in mem.instances]
        shown = mem.inventory()
        assert len(mem.instances) == len(before)
        for (inst, count, votes, n_boxes, lo), now in zip(before, mem.instances):
            assert now is inst and inst.count == count and inst.n_boxes == n_boxes
            assert np.array_equal(inst.votes, votes) and np.array_equal(inst.lo, lo)
        assert shown.stamp == mem.last_stamp
    assert seen["copied"] > 0
