"""The shipped learned TTT map as a SpatialMemory: every method decodes, ablations change answers,
no aliasing 20 m apart, flat state, state files checked (no ROS)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from spatial_ttt_ros.classes import CLASSES
from spatial_ttt_ros.memory.factory import make_memory
from spatial_ttt_ros.memory.methods import ABLATIONS, BASELINES, METHODS
from spatial_ttt_ros.perception.tokens import EGO_DIM, EGO_FIELDS, GEO_DIM, OBJ_DIM, OBJ_FIELDS, TIME_SCALE, FrameTokens


@pytest.fixture(scope="module")
def stream():
    """300 noisy frames of a simulated 1-room scene, tokenised by the label front-end (validation seed)."""
    from spatial_ttt_ros.training.learned_data import render_stream_tokens

    return render_stream_tokens(seed=8009, n_rooms=1, n_frames=300, detections="noisy")


def _answers(mem, s) -> list:
    from spatial_ttt_ros.reasoning.qa import answer_question
    from spatial_ttt_ros.sim.questions import generate_questions
    from spatial_ttt_ros.sim.scene import generate_scene

    inv = mem.inventory()
    qs = generate_questions(generate_scene(s.seed, s.n_rooms), s.first_seen, seed=s.seed, scene_name="t",
                            visited_rooms=s.visited_rooms, per_type=6)
    out = []
    for q in qs:
        try:
            out.append(answer_question(q["question"], q.get("options") or None, inv).prediction())
        except ValueError:
            out.append(None)
    return out


@pytest.mark.slow
def test_every_method_decodes_objects_and_every_ablation_changes_answers(stream):
    answers, counts = {}, {}
    for method in METHODS:
        mem = make_memory(method)
        for tok in stream.tokens:
            mem.observe(tok)
        inv = mem.inventory()
        counts[method] = len(inv.objects)
        answers[method] = _answers(mem, stream)
    assert all(n > 0 for n in counts.values()), str(counts)
    for name in ABLATIONS + BASELINES:
        assert answers[name] != answers["ttt"], f"{name} answers exactly as ttt: it removes nothing that matters"


def _frame(i: int, cam_xy, obj_xy, label="chair") -> FrameTokens:
    ego = np.zeros(EGO_DIM, np.float32)
    ego[EGO_FIELDS["position"]] = [cam_xy[0], cam_xy[1], 1.4]
    ego[EGO_FIELDS["forward"]] = [1.0, 0.0, 0.0]
    ego[EGO_FIELDS["time"]] = i * 0.1 * TIME_SCALE
    ego[EGO_FIELDS["valid_fraction"]] = 1.0
    objects = np.zeros((16, OBJ_DIM), np.float32)
    objects[0, OBJ_FIELDS["class_onehot"].start + CLASSES.index(label)] = 1.0
    objects[0, OBJ_FIELDS["score"]] = 0.9
    objects[0, OBJ_FIELDS["center"]] = [obj_xy[0], obj_xy[1], 0.45]
    objects[0, OBJ_FIELDS["size"]] = [0.5, 0.5, 0.9]
    objects[0, OBJ_FIELDS["log_size"]] = np.log([0.5, 0.5, 0.9])
    objects[0, OBJ_FIELDS["time"]] = i * 0.1 * TIME_SCALE
    valid = np.zeros(16, bool)
    valid[0] = True
    return FrameTokens(stamp=100.0 + 0.1 * i, frame_index=i, ego=ego, geometry=np.zeros((4, 4, GEO_DIM), np.float32),
                       objects=objects, object_valid=valid, time=0.1 * i)


def test_two_chairs_20_m_apart_are_two_objects_in_their_places():
    mem = make_memory("ttt")
    for i in range(40):
        mem.observe(_frame(i, (0.0, 0.0), (2.0, 0.5)))
    for i in range(40, 80):
        mem.observe(_frame(i, (20.0, 0.0), (22.0, 0.5)))
    chairs = sorted(mem.inventory().of_class("chair"), key=lambda o: o.center[0])
    assert len(chairs) == 2
    assert np.allclose(chairs[0].center[:2], [2.0, 0.5], atol=0.3)
    assert np.allclose(chairs[1].center[:2], [22.0, 0.5], atol=0.3)
    assert chairs[0].first_seen < chairs[1].first_seen


def test_a_chunk_writes_what_its_frames_write_one_by_one_in_frame_order(stream):
    """frame_writes computes a chunk's frames together; the tokens must be each frame's own, frame by
    frame (objects, see-through, floor), as the step and the training assume."""
    from spatial_ttt_ros.memory.learned_memory import frames_to_tensors
    from spatial_ttt_ros.memory.learned_writes import WriteTokens, frame_writes

    frames = [f for f in stream.tokens if f.object_valid.any()][:8]
    assert len(frames) == 8
    for floor_z in (0.0, 0.25):
        chunk = frame_writes(*frames_to_tensors(frames), floor_z=floor_z)
        alone = WriteTokens.cat([frame_writes(*frames_to_tensors([f]), floor_z=floor_z) for f in frames])
        assert torch.equal(chunk.kind, alone.kind) and torch.equal(chunk.mask, alone.mask)
        for name in ("xy", "target", "lr_in"):
            torch.testing.assert_close(getattr(chunk, name), getattr(alone, name), rtol=1e-6, atol=1e-6)
        kinds = chunk.kind.tolist()
        assert kinds[0] == 0 and 2 in kinds  # a frame with objects starts with them; floor samples follow


def test_state_is_flat_and_under_one_mib(stream):
    mem = make_memory("ttt")
    sizes = []
    for tok in stream.tokens:
        mem.observe(tok)
        sizes.append(mem.state_bytes())
    chunk = mem.model.cfg.chunk_frames
    after_chunks = sizes[chunk - 1 :: chunk]  # nothing pending
    assert len(set(after_chunks)) == 1
    # The largest state holds chunk - 1 pending frames; every frame's state stays under 1 MiB.
    assert max(sizes) == max(sizes[-chunk:]) and max(sizes) <= 1 << 20
    assert max(sizes) > after_chunks[0]


def test_save_load_round_trip_and_refusals(stream, tmp_path):
    mem = make_memory("ttt")
    for tok in stream.tokens[:100]:
        mem.observe(tok)
    path = tmp_path / "m.safetensors"
    mem.save(path)
    before = mem.inventory().to_json()
    other = make_memory("ttt")
    other.load(path)
    assert other.inventory().to_json()["objects"] == before["objects"]

    def crafted(stream_meta=None, tensors=None, signature=None):
        p = tmp_path / "bad.safetensors"
        meta = {"signature": json.dumps(signature or other.signature()),
                "stream": json.dumps(stream_meta or {"start_stamp": 0.0, "last_stamp": 1.0, "n_frames": 1,
                                                     "n_written": 1, "next_due": 1.0, "lo": [0, 0], "hi": [1, 1]})}
        save_file(tensors or {"w": torch.zeros_like(other.w)}, str(p), metadata=meta)
        return p

    bad = [
        crafted(stream_meta={"start_stamp": 0.0, "last_stamp": 1e30, "n_frames": 1, "n_written": 1, "next_due": 0.0, "lo": None, "hi": None}),
        crafted(stream_meta={"start_stamp": 0.0, "last_stamp": 1.0, "n_frames": 1e30, "n_written": 1, "next_due": 0.0, "lo": None, "hi": None}),
        crafted(tensors={"w": torch.zeros(10, 3)}),
        crafted(tensors={"w": torch.full_like(other.w, float("nan"))}),
        crafted(signature={"kind": "something else"}),
    ]
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    for p in bad + [junk]:
        with pytest.raises(ValueError):
            other.load(p)
        assert other.inventory().to_json()["objects"] == before["objects"]  # the memory is kept
