"""``spatial-ttt eval`` offline: the report files and their keys, streaming questions,
bad question records, and one-line errors for bad bags. Uses the explicit object map
(no weights, fast) on a short simulated 2-room walk."""

from __future__ import annotations

import csv
import json

import pytest

from spatial_ttt_ros.cli import main as cli_main
from spatial_ttt_ros.sim.questions import generate_questions
from spatial_ttt_ros.sim.stream import simulate_stream
from test_eval_bag_reader import write_bag

N_FRAMES = 100
RATE = 10.0


@pytest.fixture(scope="module")
def sim_case(tmp_path_factory):
    """(bag, question file with one bad record and one streaming question, good records)."""
    d = tmp_path_factory.mktemp("sim")
    stream = simulate_stream(seed=3, n_rooms=2, n_frames=N_FRAMES, rate_hz=RATE, width=160, height=120)
    frames = [f for f, _ in stream.frames()]
    bag = write_bag(d / "bag", frames=frames)
    records = generate_questions(stream.scene, stream.first_seen, seed=3, scene_name="s3", per_type=2)
    assert len(records) >= 6
    streaming = dict(records[0], id="at-2s", time=2.0)
    bad = {"id": "broken", "scene_name": "s3", "question_type": "object_counting", "options": [], "ground_truth": 2}
    qa = d / "qa.json"
    qa.write_text(json.dumps(records + [streaming, bad]))
    return bag, qa, records + [streaming]


def _eval(tmp_path, bag, qa, *extra):
    out = tmp_path / "out"
    rc = cli_main(["eval", "--bag", str(bag), "--qa", str(qa), "--out", str(out), "--method", "object_map",
                   "--no-progress", *extra])
    return rc, out


def test_report_files_keys_and_bad_record(sim_case, tmp_path, capsys):
    bag, qa, good = sim_case
    rc, out = _eval(tmp_path, bag, qa)
    assert rc == 0
    err = capsys.readouterr().err
    assert "'broken'" in err and "missing field(s) question" in err  # reported, then skipped

    rep = json.loads((out / "report.json").read_text())
    for key in ("overall", "tasks", "questions", "throughput_fps", "latency", "state_bytes", "config",
                "git_commit", "model_checksum", "dropped_frames", "errors"):
        assert key in rep, key
    assert len(rep["errors"]) == 1 and "broken" in rep["errors"][0]
    # the good records were all scored
    assert [q["id"] for q in rep["questions"]] == [r["id"] for r in good]
    for q in rep["questions"]:
        for key in ("id", "type", "question", "options", "ground_truth", "prediction", "answer", "score",
                    "positions", "asked_at"):
            assert key in q
        assert 0.0 <= q["score"] <= 1.0
    assert any(q["positions"] for q in rep["questions"])  # answers carry the positions they used
    tasks = rep["tasks"]
    assert set(tasks) <= {"object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation",
                          "object_rel_distance", "object_rel_direction", "route_planning", "obj_appearance_order"}
    assert rep["overall"] == pytest.approx(sum(tasks.values()) / len(tasks))
    assert rep["frames_processed"] == N_FRAMES and rep["dropped_frames"] == 0
    assert rep["throughput_fps"] > 0
    assert rep["latency"]["process"]["p50"] > 0 and rep["latency"]["process"]["p95"] >= rep["latency"]["process"]["p50"]
    assert {"front_end", "observe", "ask"} <= set(rep["latency"])
    assert len(rep["state_bytes"]["bytes"]) == N_FRAMES and rep["state_bytes"]["bytes"][-1] > 0
    assert rep["config"]["method"] == "object_map" and rep["model_checksum"] is None  # no weights
    assert rep["git_commit"]

    # the streaming question is asked when the replay reaches 2 s: after frames 0..20
    at2 = next(q for q in rep["questions"] if q["id"] == "at-2s")
    assert at2["frames_seen"] == 21 and at2["asked_at"] == pytest.approx(2.0)
    assert all(q["frames_seen"] == N_FRAMES for q in rep["questions"] if q["id"] != "at-2s")

    md = (out / "report.md").read_text()
    assert "| object_counting |" in md and "## Questions" in md and "broken" in md
    rows = list(csv.reader((out / "timing.csv").open()))
    assert rows[0][:2] == ["frame_index", "stamp"] and "process_ms" in rows[0] and rows[0][-1] == "state_bytes"
    assert len(rows) == N_FRAMES + 1 and rows[1][0] == "0"
    for png in ("scores_by_task.png", "per_frame.png", "latency_hist.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000

    # deterministic: a second run answers the same
    rc, out2 = _eval(tmp_path / "again", bag, qa)
    rep2 = json.loads((out2 / "report.json").read_text())
    assert [q["prediction"] for q in rep2["questions"]] == [q["prediction"] for q in rep["questions"]]
    # an existing report is not overwritten without --force
    assert _eval(tmp_path, bag, qa)[0] == 2
    assert "--force" in capsys.readouterr().err
    assert _eval(tmp_path, bag, qa, "--force")[0] == 0


def test_corrupt_bag_is_one_line_error(sim_case, tmp_path, capsys):
    _, qa, _ = sim_case
    bag = write_bag(tmp_path / "bag", n=3)
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:300])
    rc, out = _eval(tmp_path, bag, qa)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len([ln for ln in err if "error" in ln]) == 1
    assert err[-1].startswith("spatial-ttt eval: error: cannot open bag") and str(bag) in err[-1]
    assert not (out / "report.json").exists()


def test_bag_without_needed_topics_is_one_line_error(sim_case, tmp_path, capsys):
    _, qa, _ = sim_case
    bag = write_bag(tmp_path / "bag", n=3, pose="none")
    rc, _ = _eval(tmp_path, bag, qa)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2
    assert "lacks the topics needed: camera pose (PoseStamped, Odometry or /tf): not at /camera/pose" in last
    assert "set --pose-topic, --odom-topic or --tf-topic" in last
    assert "Topics present:" in last and "/camera/depth/image_raw" in last


def test_question_file_that_is_not_json_names_the_line(sim_case, tmp_path, capsys):
    bag, _, _ = sim_case
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": 1}\n{not json\n')
    rc, _ = _eval(tmp_path, bag, qa)
    assert rc == 2 and f"{qa}:2: not valid JSON" in capsys.readouterr().err


def test_hololens_question_file_is_valid_and_parses():
    """The real-camera question file (docs/real_camera.md) loads cleanly and every question parses to its type."""
    from pathlib import Path

    from spatial_ttt_ros.evaluation.metrics import task_of
    from spatial_ttt_ros.evaluation.questions_io import load_questions
    from spatial_ttt_ros.reasoning.parser import parse_question

    path = Path(__file__).resolve().parents[1] / "spatial_ttt_ros" / "evaluation" / "data" / "hololens_office_qa.json"
    records, errors = load_questions(path)
    assert errors == [] and len(records) >= 10
    for r in records:
        assert r["evidence"]  # every ground truth says how it was established
        assert parse_question(r["question"], r["options"] or None).task == task_of(r)
