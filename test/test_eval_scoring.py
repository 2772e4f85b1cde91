"""Issue 14 scoring rules: an abstention scores 0 (never a default option) and is counted
per task; a question asked twice (same objects in either order) is scored once."""

from __future__ import annotations

import math

from spatial_ttt_ros.answer import Answer
from spatial_ttt_ros.evaluation.metrics import aggregate, find_duplicates, is_abstention, score_record
from spatial_ttt_ros.inventory import Inventory
from spatial_ttt_ros.reasoning.qa import answer_question

ORDER = {
    "id": 1, "scene_name": "s", "question_type": "obj_appearance_order",
    "question": "What will be the first-time appearance order of the following categories in the video: sofa, tv, bed?",
    "options": ["A. sofa, tv, bed", "B. tv, sofa, bed", "C. bed, tv, sofa", "D. tv, bed, sofa"],
    "ground_truth": "A",
}


def test_abstention_scores_zero_even_where_the_truth_is_a():
    for pred in (None, "", float("nan"), Answer(task="obj_appearance_order", text="I cannot tell.")):
        assert is_abstention(ORDER, pred)
        assert score_record(ORDER, pred) == 0.0
    assert score_record(ORDER, "A") == 1.0 and not is_abstention(ORDER, "A")
    numeric = {**ORDER, "question_type": "object_counting", "options": [], "ground_truth": 0}
    assert is_abstention(numeric, float("nan")) and score_record(numeric, float("nan")) == 0.0
    assert not is_abstention(numeric, 0.0)


def test_blind_memory_abstains_and_scores_zero():
    """An empty memory cannot tell the order: it must not pick option A."""
    answer = answer_question(ORDER["question"], ORDER["options"], Inventory(objects=[], room=None))
    assert answer.option == "" and answer.confidence == 0.0
    assert score_record(ORDER, answer.prediction()) == 0.0


def _dist(i, a, b, gt=2.0):
    return {"id": i, "scene_name": "s", "question_type": "object_abs_distance", "options": [],
            "question": f"Measuring from the closest point of each object, what is the direct distance between the {a} and the {b} (in meters)?",
            "ground_truth": gt}


def test_duplicate_questions_in_either_order_are_scored_once():
    recs = [_dist(1, "sofa", "tv"), _dist(2, "tv", "sofa"), _dist(3, "sofa", "bed"),
            {**_dist(4, "sofa", "tv"), "scene_name": "other"}]  # another scene: not a duplicate
    assert find_duplicates(recs) == {1: 0}
    agg = aggregate(zip(recs, [1.0, 1.0, 0.0, 0.0]))
    assert agg["counts"]["object_abs_distance"] == 3
    assert agg["duplicates"] == {"object_abs_distance": 1}
    assert math.isclose(agg["tasks"]["object_abs_distance"], 100.0 / 3)
    # relative direction depends on who stands where: swapping objects is another question
    rd = {"id": 5, "scene_name": "s", "question_type": "object_rel_direction_easy", "ground_truth": "A",
          "options": ["A. left", "B. right"]}
    q1 = {**rd, "question": "If I am standing by the sofa and facing the tv, is the bed to my left or right?"}
    q2 = {**rd, "id": 6, "question": "If I am standing by the tv and facing the sofa, is the bed to my left or right?"}
    assert find_duplicates([q1, q2]) == {}
