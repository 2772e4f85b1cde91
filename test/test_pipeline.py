"""SpatialMemoryPipeline end to end on a short simulated stream with label-image detections."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from spatial_ttt_ros.frames import CameraFrame
from spatial_ttt_ros.memory.object_map import ObjectMapMemory
from spatial_ttt_ros.perception.front_end import FrontEnd
from spatial_ttt_ros.pipeline import SpatialMemoryPipeline, metadata_path
from spatial_ttt_ros.answer import QuestionError

SEED, N_FRAMES, W, H = 9005, 120, 96, 72


@pytest.fixture(scope="module")
def sim_frames():
    """(scene, frames, instances seen >= 20 px) for one room, rendered once per module."""
    from spatial_ttt_ros.sim.render import Renderer
    from spatial_ttt_ros.sim.scene import generate_scene
    from spatial_ttt_ros.sim.trajectory import generate_trajectory

    scene = generate_scene(SEED, 1)
    renderer = Renderer(scene, W, H)
    frames, seen = [], set()
    for i, (stamp, T) in enumerate(generate_trajectory(scene, N_FRAMES, 10.0, SEED)):
        _, depth, labels, inst = renderer.render(T, shade=False)
        ids, counts = np.unique(inst[inst > 0], return_counts=True)
        seen.update(int(k) for k, c in zip(ids, counts) if c >= 20)
        # Offset stamps: the pipeline must report times relative to the first frame.
        frames.append(CameraFrame(stamp=50.0 + stamp, depth=depth, K=renderer.K, T_world_cam=T, labels=labels))
    return scene, frames, seen


def run_pipeline(frames) -> SpatialMemoryPipeline:
    pipe = SpatialMemoryPipeline(FrontEnd("labels", grid=(4, 4)), ObjectMapMemory())
    for f in frames:
        pipe.process(f)
    return pipe


def test_pipeline_counts_objects_like_the_scene(sim_frames):
    scene, frames, seen = sim_frames
    pipe = run_pipeline(frames)
    truth = Counter(scene.object(i).label for i in seen)
    assert truth, "the test stream must show objects"
    # Ask about the most numerous class (the most chances to over- or under-count).
    label, n = truth.most_common(1)[0]
    ans = pipe.ask(f"How many {label}(s) are in this room?")
    assert ans.task == "object_counting"
    assert ans.value == n
    assert len(ans.positions) == n
    # Every seen class is in the inventory with its true count.
    got = Counter(o.label for o in pipe.inventory().objects)
    assert got == truth
    # Structured query and description work off the same inventory.
    assert pipe.query("object_counting", [label]).value == n
    assert isinstance(pipe.describe(), str) and pipe.describe()
    # The room: one room, its floor area from free space within 15 %.
    assert pipe.inventory().room.area_m2 == pytest.approx(scene.rooms[0].area_m2, rel=0.15)
    assert pipe.inventory().start_stamp == pytest.approx(frames[0].stamp)
    c = pipe.counters()
    assert c["frames_processed"] == N_FRAMES and c["detections"] > 0 and c["state_bytes"] > 0


def test_pipeline_rejects_out_of_order_stamps_until_reset(sim_frames):
    _, frames, _ = sim_frames
    pipe = SpatialMemoryPipeline(FrontEnd("labels"), ObjectMapMemory())
    pipe.process(frames[5])
    with pytest.raises(ValueError, match=r"out-of-order.*stamp 50\.0+ s.*earlier.*50\.50+ s.*reset"):
        pipe.process(frames[0])
    assert pipe.frames_processed == 1  # the bad frame changed nothing
    pipe.reset()
    pipe.process(frames[0])  # a new stream may start anywhere
    assert pipe.frames_processed == 1
    assert pipe.inventory().start_stamp == pytest.approx(frames[0].stamp)


def test_pipeline_unknown_object_is_a_question_error(sim_frames):
    _, frames, _ = sim_frames
    pipe = SpatialMemoryPipeline(FrontEnd("labels"), ObjectMapMemory())
    pipe.process(frames[0])
    with pytest.raises(QuestionError):
        pipe.ask("How many unicorns are in this room?")


def test_pipeline_save_load_resumes_the_stream(sim_frames, tmp_path):
    _, frames, _ = sim_frames
    half = len(frames) // 2
    full = run_pipeline(frames)

    first = run_pipeline(frames[:half])
    path = first.save(tmp_path / "state.json")
    assert metadata_path(path).is_file()
    resumed = SpatialMemoryPipeline(FrontEnd("labels"), ObjectMapMemory())
    resumed.load(path)
    assert resumed.frames_processed == half
    with pytest.raises(ValueError, match="out-of-order"):
        resumed.process(frames[0])  # the loaded stream's last stamp is enforced
    for f in frames[half:]:
        resumed.process(f)
    assert resumed.inventory().to_json() == full.inventory().to_json()

    # A state saved by another kind of memory, or for another token layout, is refused.
    class Other(ObjectMapMemory):
        name = "other_map"

    with pytest.raises(ValueError, match="'object_map'.*'other_map'"):
        SpatialMemoryPipeline(FrontEnd("labels"), Other()).load(path)
    with pytest.raises(ValueError, match="token grid"):
        SpatialMemoryPipeline(FrontEnd("labels", grid=(2, 2)), ObjectMapMemory()).load(path)
    with pytest.raises(FileNotFoundError):
        resumed.load(tmp_path / "nothing.json")


def test_front_end_counts_skipped_detections_and_invalid_depth(sim_frames):
    _, frames, _ = sim_frames
    fe = FrontEnd("labels")
    f = frames[0]
    depth = f.depth.copy()
    depth[:, : W // 2] = np.nan  # left half without depth: objects there cannot be lifted
    obs, tokens = fe.process(CameraFrame(stamp=f.stamp, depth=depth, K=f.K, T_world_cam=f.T_world_cam, labels=f.labels))
    c = fe.counters()
    assert c["invalid_depth_fraction"] >= 0.5
    assert c["detections"] == c["observations"] + c["skipped_detections"]
    assert len(tokens.observations) == len(obs)
    fe.process(CameraFrame(stamp=f.stamp + 0.1, depth=f.depth, K=f.K, T_world_cam=f.T_world_cam))
    assert fe.counters()["frames_without_labels"] == 1
    with pytest.raises(ValueError, match="source"):
        FrontEnd("lidar")
    with pytest.raises(ValueError, match="detector object"):
        FrontEnd("detector")


def test_front_end_noise_is_seeded(sim_frames):
    _, frames, _ = sim_frames

    def tokens(seed):
        fe = FrontEnd("labels", noise="noisy", noise_seed=seed)
        return [fe.process(f)[1] for f in frames[:15]]

    a, b, c = tokens(1), tokens(1), tokens(2)
    assert all(np.array_equal(x.objects, y.objects) and np.array_equal(x.ego, y.ego) for x, y in zip(a, b))
    assert any(not np.array_equal(x.objects, y.objects) for x, y in zip(a, c))
    exact = FrontEnd("labels")
    e = [exact.process(f)[1] for f in frames[:15]]
    assert any(not np.array_equal(x.ego, y.ego) for x, y in zip(a, e))  # pose drift moved the camera
