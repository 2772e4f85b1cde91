"""Frame accounting and read-out snapshots without ROS (the pure-Python parts of the node).

- the worker and the ledger: under a producer faster than the worker, with resets and a
  stop, every frame offered is written, dropped for a reason or still in flight, in every
  snapshot taken while it runs;
- the pipeline's read-outs: the object map is decoded every frame, the learned TTT memory
  once per written chunk, and a read-out never changes after it is made.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from spatial_ttt_ros.pipeline import PipelineConfig, build_pipeline
from spatial_ttt_ros.ros.stats import FrameLedger
from spatial_ttt_ros.ros.worker import FrameWorker
from spatial_ttt_ros.sim.stream import simulate_stream


def _balanced(snap: dict) -> bool:
    return snap["received"] == snap["processed"] + snap["dropped"] + sum(snap["in_flight"].values())


def test_ledger_balances_while_a_slow_worker_drops_and_resets():
    ledger = FrameLedger()
    refused = []

    def process(item):
        time.sleep(0.002)  # slower than the producer: the queue overflows
        if item.payload % 17 == 0:
            refused.append(item.payload)
            return "no_pose"  # refused by the node's own checks
        if item.payload % 23 == 0:
            raise ValueError("bad frame")
        return None

    worker = FrameWorker(3, process, lambda g: None, lambda e, i: None, ledger=ledger)
    worker.start()
    snapshots = []
    for i in range(600):
        ledger.receive()  # subscription
        ledger.move("sync", "checks")  # paired
        worker.offer(i)
        if i % 150 == 75:
            worker.new_generation()  # ~/reset: queued frames become stale
        if i % 10 == 0:
            snapshots.append(ledger.snapshot())
        time.sleep(0.0005)
    assert worker.wait_idle(10.0)
    worker.stop()
    snapshots.append(ledger.snapshot())
    assert all(_balanced(s) for s in snapshots)
    assert all(v >= 0 for s in snapshots for v in s["in_flight"].values())
    end = snapshots[-1]
    assert end["received"] == 600 and sum(end["in_flight"].values()) == 0
    assert end["processed"] == worker.processed
    by = end["dropped_by"]
    assert by.get("queue_full", 0) == worker.dropped > 0
    assert by.get("no_pose", 0) == len(refused) > 0
    assert by.get("frame_error", 0) > 0
    assert end["processed"] + end["dropped"] == 600


def test_stop_counts_the_frames_left_in_the_queue():
    ledger = FrameLedger()
    gate = threading.Event()
    worker = FrameWorker(5, lambda item: gate.wait(5.0) and None, lambda g: None, lambda e, i: None, ledger=ledger)
    worker.start()
    for i in range(4):
        ledger.receive()
        ledger.move("sync", "checks")
        worker.offer(i)
    time.sleep(0.1)  # the worker holds one frame, three wait
    threading.Timer(0.2, gate.set).start()
    worker.stop()
    snap = ledger.snapshot()
    assert snap["dropped_by"].get("stopped", 0) == 3
    assert snap["processed"] == 1 and _balanced(snap) and sum(snap["in_flight"].values()) == 0


@pytest.fixture(scope="module")
def frames():
    s = simulate_stream(seed=3, n_rooms=1, n_frames=20, rate_hz=10.0, width=160, height=120)
    return [f for f, _ in s.frames()]


def test_object_map_reads_out_every_idle_frame_and_every_few_when_behind(frames):
    p = build_pipeline(PipelineConfig(method="object_map"))
    outs = []
    for f in frames[:5]:  # the worker has time to spare: a snapshot per frame
        p.process(f)
        assert p.read_out_due(idle=True)
        outs.append(p.read_out())
        assert not p.read_out_due(idle=True)
    assert [o.frames for o in outs] == [1, 2, 3, 4, 5]
    assert outs[-1].stamp == pytest.approx(frames[4].stamp)
    assert outs[-1].description  # the text is made with the snapshot, not per question
    due = []
    for i, f in enumerate(frames[5:15]):  # frames queue up: at most read_out_every frames stale
        p.process(f)
        if p.read_out_due(idle=False):
            due.append(i + 1)
            p.read_out()
    assert due == list(range(p.read_out_every, 11, p.read_out_every)) and p.read_out_every > 1


def test_ttt_reads_out_once_per_chunk_and_snapshots_do_not_change(frames):
    p = build_pipeline(PipelineConfig(method="ttt"))
    chunk = p.read_out_every
    assert chunk > 1  # the learned memory writes chunks; decoding per frame would waste the CPU
    due = []
    outs = []
    for i, f in enumerate(frames):
        p.process(f)
        if p.read_out_due():
            due.append(i + 1)
            outs.append(p.read_out())
    assert due == list(range(chunk, len(frames) + 1, chunk))
    first = outs[0]
    objects_before = [(o.label, tuple(o.center)) for o in first.inventory.objects]
    p.process(dataclasses.replace(frames[-1], stamp=frames[-1].stamp + 0.1))  # the memory moves on
    assert [(o.label, tuple(o.center)) for o in first.inventory.objects] == objects_before
    assert first.frames == chunk and first.stamp == pytest.approx(frames[chunk - 1].stamp)
    with pytest.raises(AttributeError):
        first.frames = 0  # frozen
