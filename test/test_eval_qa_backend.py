"""``spatial-ttt eval --qa-backend vlm|hybrid`` on the tiny random Spatial-TTT (CPU).

The same bag and questions through the VLM alone, and hybrid: VSI-Bench questions the
parser takes go to the geometric memory, one it refuses goes to the VLM, and every
question carries the other backend's answer too, scored, so report.json and report.md
compare the two backends. The tiny model's answers are random: the path is checked.
"""

from __future__ import annotations

import csv
import json

import pytest

pytest.importorskip("transformers")

from spatial_ttt_ros.cli import main as cli_main  # noqa: E402
from spatial_ttt_ros.sim.questions import generate_questions  # noqa: E402
from spatial_ttt_ros.sim.stream import simulate_stream  # noqa: E402
from spatial_ttt_ros.vlm.tiny import make_tiny_checkpoint  # noqa: E402
from test_eval_bag_reader import write_bag  # noqa: E402

FREE_ID = "free-form"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval_vlm")
    stream = simulate_stream(seed=3, n_rooms=1, n_frames=12, rate_hz=10.0, width=64, height=48)
    frames = [f for f, _ in stream.frames()]
    bag = write_bag(d / "bag", frames=frames)
    records = generate_questions(stream.scene, stream.first_seen, seed=3, scene_name="s3", per_type=1)[:4]
    free = {"id": FREE_ID, "scene_name": "s3", "question_type": "object_counting", "options": [],
            "question": "What would a guest notice first here?", "ground_truth": 1}  # the parser refuses it
    qa = d / "qa.json"
    qa.write_text(json.dumps(records + [free]))
    return bag, qa, make_tiny_checkpoint(d / "tiny"), len(records) + 1


def _eval(tmp_path, case, backend: str):
    bag, qa, ckpt, _ = case
    out = tmp_path / backend
    rc = cli_main(["eval", "--bag", str(bag), "--qa", str(qa), "--out", str(out), "--method", "object_map",
                   "--no-progress", "--allow-empty", "--qa-backend", backend, "--vlm-checkpoint", str(ckpt),
                   "--vlm-keyframe-interval", "0.3"])
    assert rc == 0
    return json.loads((out / "report.json").read_text()), out


def test_hybrid_records_and_scores_both_backends(case, tmp_path):
    rep, out = _eval(tmp_path, case, "hybrid")
    n = case[3]
    assert rep["qa_backend"] == "hybrid" and rep["config"]["qa_backend"] == "hybrid"
    routed = {q["id"]: q["backend"] for q in rep["questions"]}
    assert routed.pop(FREE_ID) == "vlm" and set(routed.values()) == {"geometry"}
    for q in rep["questions"]:
        other = "geometry" if q["backend"] == "vlm" else "vlm"
        assert set(q["others"]) == {other}
        assert 0.0 <= q["others"][other]["score"] <= 1.0
    free = next(q for q in rep["questions"] if q["id"] == FREE_ID)
    assert free["others"]["geometry"]["error"]  # the geometry could not take it: recorded, scored 0
    scores = rep["backend_scores"]
    assert set(scores) == {"geometry", "vlm"}
    assert scores["geometry"]["n_questions"] == scores["vlm"]["n_questions"] == n
    assert (scores["geometry"]["n_routed"], scores["vlm"]["n_routed"]) == (n - 1, 1)
    md = (out / "report.md").read_text()
    assert "## Answering backends (qa_backend hybrid)" in md and "| geometry |" in md and "| vlm |" in md


def test_vlm_answers_every_question_and_is_timed(case, tmp_path):
    rep, out = _eval(tmp_path, case, "vlm")
    assert {q["backend"] for q in rep["questions"]} == {"vlm"}
    assert all(not q["others"] and not q["positions"] for q in rep["questions"])  # no positions from the VLM
    assert set(rep["backend_scores"]) == {"vlm"} and "vlm" in rep["latency"]
    with open(out / "timing.csv") as f:
        rows = list(csv.DictReader(f))
    assert sum(1 for r in rows if r["vlm_ms"]) == len(rows)


def test_vlm_without_checkpoint_is_one_line_error(case, tmp_path, capsys):
    bag, qa, _, _ = case
    rc = cli_main(["eval", "--bag", str(bag), "--qa", str(qa), "--out", str(tmp_path / "o"), "--no-progress",
                   "--qa-backend", "vlm"])
    assert rc == 2
    assert "vlm_checkpoint" in capsys.readouterr().err
