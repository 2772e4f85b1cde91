"""Each task type answered from hand-built inventories; expected values worked out by hand here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spatial_ttt_ros.answer import QuestionError
from spatial_ttt_ros.inventory import Inventory, InventoryObject, Room
from spatial_ttt_ros.reasoning.qa import answer_question, answer_structured
from spatial_ttt_ros.reasoning.solvers import closest_box_distance

ROUTE_NOTE = "You will perform the following actions (Note: for each [please fill in], choose either 'turn back,' 'turn left,' or 'turn right.'): "
EASY = "If I am standing by the {p} and facing the {o}, is the {q} to the left or the right of the {o}?"
MEDIUM = (
    "If I am standing by the {p} and facing the {o}, is the {q} to my left, right, or back? "
    "An object is to my back if I would have to turn at least 135 degrees in order to face it."
)
HARD = (
    "If I am standing by the {p} and facing the {o}, is the {q} to my front-left, front-right, back-left, or back-right? "
    "The directions refer to the quadrants of a Cartesian plane (if I am standing at the origin and facing along the positive y-axis)."
)


def obj(label, center, size, first_seen=0.0, confidence=1.0, yaw=0.0):
    return InventoryObject(label=label, center=center, size=size, first_seen=first_seen, confidence=confidence, yaw=yaw)


@pytest.fixture
def flat():
    """Bed at the origin facing a tv straight ahead (+y); everything 1 m tall on the floor."""
    return Inventory(
        objects=[
            obj("bed", [0, 0, 0.5], [2.0, 1.6, 1.0], first_seen=2.0),
            obj("tv", [0, 4, 0.5], [1.0, 0.2, 1.0], first_seen=3.0),
            obj("sofa", [-3, 1, 0.5], [1.0, 1.0, 1.0], first_seen=7.0),
            obj("lamp", [1, -3, 0.5], [0.4, 0.4, 1.0], first_seen=9.0),
            obj("clock", [2, -1, 0.5], [0.2, 0.2, 1.0], first_seen=4.0),
            obj("chair", [3, 0, 0.5], [0.4, 0.4, 1.0], first_seen=6.0),
            obj("chair", [5, 5, 0.5], [0.4, 0.4, 1.0], first_seen=1.0),
            obj("chair", [-5, -5, 0.5], [0.4, 0.4, 1.0], first_seen=8.0),
        ],
        room=Room(area_m2=42.5, min_xy=np.array([-6.0, -6.0]), max_xy=np.array([6.0, 6.0])),
    )


# ---------------------------------------------------------------- box distances


def test_axis_aligned_boxes_side_by_side_diagonal_and_stacked():
    a = obj("table", [0, 0, 0.5], [2, 2, 1])  # x, y in [-1, 1], z in [0, 1]
    assert closest_box_distance(a, obj("sofa", [4, 0, 0.5], [2, 2, 1])) == pytest.approx(2.0)  # x gap 3 - 1
    assert closest_box_distance(a, obj("sofa", [4, 5, 0.5], [2, 2, 1])) == pytest.approx(math.sqrt(2**2 + 3**2))
    # z in [2.5, 3.5] above a box 2 m away in x: sqrt(2^2 + 1.5^2) = 2.5
    assert closest_box_distance(a, obj("clock", [4, 0, 3.0], [2, 2, 1])) == pytest.approx(2.5)
    assert closest_box_distance(a, obj("vase", [0.5, 0.5, 1.2], [0.2, 0.2, 0.4])) == pytest.approx(0.0)  # sits on top


def test_yaw_turns_the_footprint():
    # A 2x2 square turned 45 deg reaches sqrt(2) along +x; a box whose face is at x = 3.
    diamond = obj("table", [0, 0, 0.5], [2, 2, 1], yaw=math.pi / 4)
    assert closest_box_distance(diamond, obj("sofa", [4, 0, 0.5], [2, 2, 1])) == pytest.approx(3 - math.sqrt(2))
    # Bounding boxes overlap but the diamond's edge x + y = sqrt(2) stays clear of the corner (0.8, 0.8):
    # distance (1.6 - sqrt 2) / sqrt 2.
    small = obj("chair", [1.3, 1.3, 0.5], [1, 1, 1])
    assert closest_box_distance(diamond, small) == pytest.approx(1.6 / math.sqrt(2) - 1)
    # Without yaw the same boxes would overlap.
    assert closest_box_distance(obj("table", [0, 0, 0.5], [2, 2, 1]), small) == 0.0
    # Size is along the yawed axes: a 4 x 0.2 bar turned 90 deg spans y in [-2, 2].
    bar = obj("table", [0, 0, 0.5], [4, 0.2, 1], yaw=math.pi / 2)
    assert closest_box_distance(bar, obj("lamp", [0, 3, 0.5], [0.2, 0.2, 1])) == pytest.approx(0.9)


# ---------------------------------------------------------------- numeric tasks


def test_counting(flat):
    answer = answer_question("How many chair(s) are in this room?", None, flat)
    assert (answer.task, answer.value, answer.unit) == ("object_counting", 3.0, "count")
    assert sorted(tuple(p.position[:2]) for p in answer.positions) == [(-5, -5), (3, 0), (5, 5)]
    assert "3 chairs" in answer.text
    assert answer.prediction() == 3.0


def test_counting_a_known_class_not_seen_is_zero_with_some_confidence(flat):
    answer = answer_question("how many fridges", None, flat)
    assert answer.value == 0.0
    assert 0.0 < answer.confidence < 1.0
    assert "not seen" in answer.text


def test_abs_distance(flat):
    answer = answer_question(
        "Measuring from the closest point of each object, what is the direct distance between the sofa and the tv (in meters)?",
        None,
        flat,
    )
    # sofa x in [-3.5, -2.5], y in [0.5, 1.5]; tv x in [-0.5, 0.5], y in [3.9, 4.1]: gaps 2.0 and 2.4.
    assert answer.value == pytest.approx(math.hypot(2.0, 2.4))
    assert answer.unit == "m"
    assert [p.label for p in answer.positions] == ["sofa", "tv"]
    np.testing.assert_allclose(answer.positions[0].position, [-3, 1, 0.5])


def test_abs_distance_to_an_object_not_seen(flat):
    answer = answer_question("how far is the oven from the tv", None, flat)
    assert math.isnan(answer.value) and answer.confidence == 0.0
    assert "not seen the oven" in answer.text


def test_size_uses_the_most_confident_instance_and_lowers_confidence():
    inv = Inventory(
        objects=[
            obj("bed", [0, 0, 0.3], [2.0, 1.6, 0.6], confidence=0.9),
            obj("bed", [5, 0, 0.3], [1.0, 0.8, 0.6], confidence=0.3),
            obj("lamp", [2, 2, 0.75], [0.3, 0.3, 1.5], confidence=0.8),
        ],
        room=None,
    )
    bed = answer_question(
        "What is the length of the longest dimension (length, width, or height) of the bed, measured in centimeters?", None, inv
    )
    assert bed.value == pytest.approx(200.0) and bed.unit == "cm"
    assert bed.confidence == pytest.approx(0.9 * 0.9 / 1.2)  # its confidence times its share of the beds
    assert answer_question("how tall is the lamp", None, inv).value == pytest.approx(150.0)  # height is longest


def test_room_size(flat):
    answer = answer_question(
        "What is the size of this room (in square meters)? If multiple rooms are shown, estimate the size of the combined space.",
        None,
        flat,
    )
    assert (answer.value, answer.unit) == (42.5, "m^2")


def test_room_size_without_a_room_falls_back_to_the_objects_span():
    inv = Inventory(objects=[obj("bed", [0, 0, 0.5], [2, 2, 1]), obj("tv", [4, 3, 0.5], [2, 2, 1])], room=None)
    answer = answer_question("how big is the room", None, inv)
    assert answer.value == pytest.approx(6 * 5)  # x in [-1, 5], y in [-1, 4]
    assert answer.confidence < 0.5


# ---------------------------------------------------------------- multiple choice


def test_rel_distance_uses_closest_points_not_centres():
    # Centres: chair 3.0 m, sofa 3.5 m from the bed. Closest points: chair 2.8 - 1 = 1.8, sofa 2.0 - 0.8 = 1.2.
    inv = Inventory(
        objects=[
            obj("bed", [0, 0, 0.5], [2.0, 1.6, 1.0]),
            obj("chair", [3.0, 0, 0.5], [0.4, 0.4, 1.0]),
            obj("sofa", [0, 3.5, 0.5], [4.0, 3.0, 1.0]),
            obj("tv", [-6, 0, 0.5], [1.0, 0.2, 1.0]),
        ],
        room=None,
    )
    question = (
        "Measuring from the closest point of each object, which of these objects (chair, sofa, tv, toilet) is the closest to the bed?"
    )
    answer = answer_question(question, ["A. chair", "B. sofa", "C. tv", "D. toilet"], inv)
    assert (answer.option, answer.choice) == ("B", "sofa")
    assert answer.prediction() == "B"
    assert [p.label for p in answer.positions] == ["bed", "sofa"]
    free = answer_question("which is closer to the bed, the chair or the tv", None, inv)
    assert (free.option, free.choice) == ("", "chair")


def test_rel_distance_takes_the_nearest_instance_of_a_category(flat):
    # Chairs at (3,0), (5,5), (-5,-5): the one at (3,0) is 3 - 0.2 - 1 = 1.8 m from the bed; the sofa 1.5 m.
    answer = answer_question("which is closer to the bed, the sofa or the chair", None, flat)
    assert answer.choice == "sofa"
    flat.objects[5].center = np.array([1.5, 0.0, 0.5])  # chair now 0.3 m from the bed
    assert answer_question("which is closer to the bed, the sofa or the chair", None, flat).choice == "chair"


def test_rel_distance_reference_not_seen_abstains(flat):
    answer = answer_question("which is closer to the oven, the sofa or the tv", ["A. sofa", "B. tv"], flat)
    assert answer.option == "" and answer.choice == "" and answer.confidence == 0.0
    assert "not seen the oven" in answer.text


@pytest.mark.parametrize(
    "query,easy,medium,hard",
    [
        # From the bed (0,0) facing the tv (+y): the sofa at (-3,1) is ahead-left (72 deg).
        ("sofa", "left", "left", "front-left"),
        # The lamp at (1,-3): behind, right, 162 deg round: back in medium.
        ("lamp", "right", "back", "back-right"),
        # The clock at (2,-1): behind-right but only 117 deg round: right in medium, back-right in hard.
        ("clock", "right", "right", "back-right"),
    ],
)
def test_rel_direction_levels(flat, query, easy, medium, hard):
    cases = [
        (EASY, ["A. left", "B. right"], easy),
        (MEDIUM, ["A. left", "B. right", "C. back"], medium),
        (HARD, ["A. front-left", "B. front-right", "C. back-left", "D. back-right"], hard),
    ]
    for template, options, expected in cases:
        answer = answer_question(template.format(p="bed", o="tv", q=query), options, flat)
        assert answer.task == "object_rel_direction"
        assert answer.choice == expected
        assert answer.option == {o[3:]: o[0] for o in options}[expected]
        assert [p.label for p in answer.positions] == ["bed", "tv", query]


def test_rel_direction_left_when_facing_along_x():
    # Facing +x with z up, +y is on the left.
    inv = Inventory(
        objects=[obj("bed", [0, 0, 0.5], [1, 1, 1]), obj("tv", [4, 0, 0.5], [1, 1, 1]), obj("sofa", [1, 3, 0.5], [1, 1, 1])],
        room=None,
    )
    answer = answer_structured("object_rel_direction_hard", ["bed", "tv", "sofa"], None, inv)
    assert answer.choice == "front-left"
    answer = answer_structured("object_rel_direction", ["bed", "tv", "sofa"], ["A. left", "B. right"], inv)
    assert (answer.option, answer.choice) == ("A", "left")


ROUTE_LAYOUT = Inventory(
    objects=[
        obj("bed", [0, 0, 0.5], [1, 1, 1]),
        obj("tv", [0, 6, 0.5], [1, 1, 1]),
        obj("chair", [0, 3, 0.5], [0.4, 0.4, 1]),
        obj("sofa", [-3, 3, 0.5], [1, 1, 1]),
        obj("toilet", [-3, -1, 0.5], [0.5, 0.5, 1]),
        obj("sink", [0, -2, 0.5], [0.5, 0.5, 1]),
        obj("lamp", [4, 3, 0.5], [0.3, 0.3, 1]),
    ],
    room=None,
)


def route(start, facing, end, steps):
    return (
        f"You are a robot beginning at the {start} facing the {facing}. You want to navigate to the {end}. "
        + ROUTE_NOTE + " ".join(f"{i + 1}. {s}" for i, s in enumerate(steps))
        + " You have reached the final destination."
    )


@pytest.mark.parametrize(
    "waypoint,expected",
    [
        ("sofa", "Turn Left"),  # walking north to the chair, the sofa is due west: left
        ("lamp", "Turn Right"),  # due east: right
        ("sink", "Turn Back"),  # due south: back
    ],
)
def test_route_single_turn(waypoint, expected):
    text = route("bed", "tv", waypoint, ["Go forward until the chair", "[please fill in]", f"Go forward until the {waypoint}."])
    options = ["A. Turn Left", "B. Turn Right", "C. Turn Back"]
    answer = answer_question(text, options, ROUTE_LAYOUT)
    assert answer.task == "route_planning"
    assert answer.choice == expected
    assert answer.option == {o[3:]: o[0] for o in options}[expected]


def test_route_two_turns():
    # North to the chair, left (west) to the sofa, then south to the toilet: facing west, south is on the left.
    text = route(
        "bed", "tv", "toilet",
        ["Go forward until the chair", "[please fill in]", "Go forward until the sofa", "[please fill in]", "Go forward until the toilet."],
    )
    options = ["A. Turn Right, Turn Left", "B. Turn Left, Turn Right", "C. Turn Left, Turn Left", "D. Turn Back, Turn Right"]
    answer = answer_question(text, options, ROUTE_LAYOUT)
    assert (answer.option, answer.choice) == ("C", "Turn Left, Turn Left")
    assert {p.label for p in answer.positions} == {"bed", "tv", "chair", "sofa", "toilet"}
    structured = answer_structured("route_planning", ["bed", "tv", "chair", "sofa", "toilet"], None, ROUTE_LAYOUT)
    assert structured.choice == "Turn Left, Turn Left"


def test_route_options_that_are_not_turns_are_refused():
    text = route("bed", "tv", "sofa", ["Go forward until the chair", "[please fill in]", "Go forward until the sofa."])
    with pytest.raises(QuestionError, match="turn"):
        answer_question(text, ["A. Fly", "B. Swim"], ROUTE_LAYOUT)


def test_appearance_order_uses_each_category_s_earliest_instance(flat):
    # bed 2.0, tv 3.0, clock 4.0, sofa 7.0; the chairs' earliest instance is 1.0 (not the first listed one).
    question = "What will be the first-time appearance order of the following categories in the video: sofa, chair, tv, bed?"
    options = ["A. sofa, chair, tv, bed", "B. bed, tv, sofa, chair", "C. chair, bed, tv, sofa", "D. bed, chair, tv, sofa"]
    answer = answer_question(question, options, flat)
    assert (answer.option, answer.choice) == ("C", "chair, bed, tv, sofa")
    assert [p.label for p in answer.positions] == ["chair", "bed", "tv", "sofa"]
    assert answer.positions[0].position.tolist() == [5, 5, 0.5]
    free = answer_question("which did you see first, the sofa or the clock", None, flat)
    assert free.choice == "clock, sofa"


# ---------------------------------------------------------------- structured queries


def test_structured_query_uses_synonyms_and_task_order(flat):
    answer = answer_structured("object_abs_distance", ["couch", "television"], [], flat)
    assert answer.value == pytest.approx(math.hypot(2.0, 2.4))


@pytest.mark.parametrize(
    "task,names,message",
    [
        ("object_teleport", ["sofa"], "Unknown task type"),
        ("object_counting", ["unicorn"], "'unicorn'"),
        ("object_abs_distance", ["sofa"], "two objects"),
        ("object_rel_direction", ["bed", "tv"], "three objects"),
    ],
)
def test_structured_query_errors(flat, task, names, message):
    with pytest.raises(QuestionError, match=message):
        answer_structured(task, names, None, flat)
