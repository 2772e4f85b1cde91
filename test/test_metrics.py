"""VSI-Bench metrics on hand-made predictions, and question files with bad records."""

from __future__ import annotations

import json
import math

import pytest

from spatial_ttt_ros.evaluation.metrics import aggregate, mra, score_record, task_of
from spatial_ttt_ros.evaluation.questions_io import load_questions
from spatial_ttt_ros.answer import Answer

# ---------------------------------------------------------------- MRA


@pytest.mark.parametrize(
    "pred,gt,expected",
    [
        (100.0, 100.0, 1.0),
        (105.0, 100.0, 1.0),  # error 0.05 = 1 - 0.95: passes every threshold
        (105.01, 100.0, 0.9),  # just over: fails t = 0.95 only
        (95.0, 100.0, 1.0),
        (90.0, 100.0, 0.9),  # error 0.10 passes t = 0.50 .. 0.90
        (110.5, 100.0, 0.8),  # error 0.105 fails 0.90 and 0.95
        (150.0, 100.0, 0.1),  # error 0.50 passes t = 0.50 only
        (150.01, 100.0, 0.0),
        (50.0, 100.0, 0.1),
        (0.0, 100.0, 0.0),
        (3.0, 4.0, 0.6),  # error 0.25 passes t = 0.50 .. 0.75
        (-2.0, -2.0, 1.0),  # a negative truth is scaled by its magnitude
    ],
)
def test_mra_at_threshold_edges(pred, gt, expected):
    assert mra(pred, gt) == pytest.approx(expected)


def test_mra_with_zero_truth_uses_absolute_error():
    assert mra(0.0, 0.0) == 1.0
    assert mra(0.3, 0.0) == pytest.approx(0.5)  # |0.3| / 1 passes t = 0.50 .. 0.70
    assert mra(1.0, 0.0) == 0.0


def test_mra_of_a_missing_prediction_is_zero():
    assert mra(math.nan, 3.0) == 0.0
    assert mra(math.inf, 3.0) == 0.0


# ---------------------------------------------------------------- records

CHOICE = {
    "id": "q1",
    "scene_name": "s",
    "question_type": "object_rel_distance",
    "question": "which is closest to the bed",
    "options": ["A. chair", "B. sofa", "C. potted plant", "D. tv"],
    "ground_truth": "B",
}
COUNT = {
    "id": "q2",
    "scene_name": "s",
    "question_type": "object_counting",
    "question": "How many chair(s) are in this room?",
    "options": [],
    "ground_truth": 4,
}


@pytest.mark.parametrize("prediction", ["B", "b", "B.", "(B)", "B. sofa", "sofa", "Sofa.", " sofa "])
def test_choice_prediction_matches_letter_or_text(prediction):
    assert score_record(CHOICE, prediction) == 1.0


@pytest.mark.parametrize("prediction", ["A", "chair", "D. tv", "", "E", "potted", None, math.nan])
def test_wrong_or_unusable_choice_scores_zero(prediction):
    assert score_record(CHOICE, prediction) == 0.0


def test_ground_truth_given_as_option_text():
    for gt in ("B. sofa", "sofa"):
        record = {**CHOICE, "ground_truth": gt}
        assert score_record(record, "B") == 1.0
        assert score_record(record, "A. chair") == 0.0


def test_multi_word_option_text():
    assert score_record({**CHOICE, "ground_truth": "C"}, "potted plant") == 1.0


def test_answers_are_scored_directly():
    assert score_record(CHOICE, Answer(task="object_rel_distance", text="", option="B", choice="sofa")) == 1.0
    assert score_record(COUNT, Answer(task="object_counting", text="", value=3.0, unit="count")) == pytest.approx(0.6)


def test_numeric_record_with_string_prediction():
    assert score_record(COUNT, "4") == 1.0
    assert score_record(COUNT, "about 3 chairs") == pytest.approx(0.6)
    assert score_record(COUNT, "no idea") == 0.0


def test_task_of_folds_direction_levels():
    assert task_of({"question_type": "object_rel_direction_hard"}) == "object_rel_direction"
    assert task_of({"question_type": "route_planning"}) == "route_planning"
    with pytest.raises(ValueError, match="object_teleport"):
        task_of({"question_type": "object_teleport"})


# ---------------------------------------------------------------- aggregation


def _rec(qtype):
    return {"question_type": qtype}


def test_rel_direction_is_the_mean_of_its_levels_and_overall_the_mean_of_tasks():
    scored = (
        [(_rec("object_rel_direction_easy"), 1.0)] * 2
        + [(_rec("object_rel_direction_medium"), 0.0)]
        + [(_rec("object_rel_direction_hard"), s) for s in (1.0, 0.0, 0.0, 0.0)]
        + [(_rec("object_counting"), 0.5), (_rec("object_counting"), 0.7)]
        + [(_rec("route_planning"), 0.0)]
    )
    result = aggregate(scored)
    # Levels 100, 0, 25 -> 41.67 (pooled over questions it would be 3/7 = 42.9).
    assert result["tasks"]["object_rel_direction"] == pytest.approx(125.0 / 3)
    assert result["levels"]["object_rel_direction_hard"] == pytest.approx(25.0)
    assert result["tasks"]["object_counting"] == pytest.approx(60.0)
    assert result["tasks"]["route_planning"] == 0.0
    assert set(result["tasks"]) == {"object_rel_direction", "object_counting", "route_planning"}
    assert result["overall"] == pytest.approx((125.0 / 3 + 60.0 + 0.0) / 3)
    assert result["counts"]["object_rel_direction"] == 7


def test_overall_is_unweighted_over_task_types():
    scored = [(_rec("object_counting"), 1.0)] * 9 + [(_rec("room_size_estimation"), 0.0)]
    assert aggregate(scored)["overall"] == pytest.approx(50.0)  # not 90: one task, one vote


def test_aggregate_of_nothing():
    assert aggregate([]) == {"overall": 0.0, "tasks": {}, "levels": {}, "counts": {}, "duplicates": {}}


# ---------------------------------------------------------------- question files

GOOD = [
    CHOICE,
    COUNT,
    {**COUNT, "id": "q3", "question_type": "object_rel_direction_easy", "question": "left or right?",
     "options": ["A. left", "B. right"], "ground_truth": "B. right", "time": 12.5},
]


def test_bad_records_are_reported_and_good_ones_kept(tmp_path):
    bad = [
        {k: v for k, v in COUNT.items() if k != "ground_truth"} | {"id": "no_gt"},
        {**COUNT, "id": "bad_type", "question_type": "object_teleport"},
        {**CHOICE, "id": "bad_gt", "ground_truth": "E"},
        {**COUNT, "id": "bad_time", "time": -1},
        {**COUNT, "id": "bad_number", "ground_truth": "many"},
        "not a record",
        {**COUNT},  # duplicate id q2
    ]
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(GOOD[:2] + bad[:3] + GOOD[2:] + bad[3:]))
    good, errors = load_questions(path)
    assert [r["id"] for r in good] == ["q1", "q2", "q3"]
    assert len(errors) == 7
    joined = "\n".join(errors)
    assert "record 2 (id 'no_gt'): missing field(s) ground_truth" in joined
    assert "'object_teleport'" in joined
    assert "id 'bad_gt'" in joined and "names none of the options" in joined
    assert "id 'bad_time'" in joined and "time" in joined
    assert "id 'bad_number'" in joined and "not a number" in joined
    assert "record 8" in joined and "not an object" in joined
    assert "duplicate id" in joined
    # The good ones still score.
    assert score_record(good[2], "right") == 1.0


def test_jsonl_and_single_object_files(tmp_path):
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in GOOD) + "\n\n")
    good, errors = load_questions(jsonl)
    assert [r["id"] for r in good] == ["q1", "q2", "q3"] and errors == []
    assert good[2]["time"] == 12.5
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"questions": GOOD}))
    assert len(load_questions(wrapped)[0]) == 3


def test_corrupt_files_name_the_file_and_line(tmp_path):
    broken_list = tmp_path / "broken.json"
    broken_list.write_text('[\n{"id": "q1",\n "scene_name": oops}\n]')
    with pytest.raises(ValueError, match=r"broken\.json:3: not valid JSON"):
        load_questions(broken_list)
    broken_lines = tmp_path / "broken.jsonl"
    broken_lines.write_text(json.dumps(COUNT) + "\n" + "{truncated\n")
    with pytest.raises(ValueError, match=r"broken\.jsonl:2"):
        load_questions(broken_lines)
    binary = tmp_path / "bag.db3"
    binary.write_bytes(b"\x89\xff\x00\x01SQLite")
    with pytest.raises(ValueError, match=r"bag\.db3"):
        load_questions(binary)
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        load_questions(empty)
