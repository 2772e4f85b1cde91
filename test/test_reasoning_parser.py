"""The question parser on every VSI-Bench template, free-form questions and bad questions."""

from __future__ import annotations

import pytest

from spatial_ttt_ros.answer import QuestionError
from spatial_ttt_ros.reasoning.parser import (
    STEP_FILL,
    STEP_FORWARD,
    STEP_TURN,
    parse_question,
    parse_task_name,
    split_options,
)

ROUTE_NOTE = "You will perform the following actions (Note: for each [please fill in], choose either 'turn back,' 'turn left,' or 'turn right.'): "

VSI_TEMPLATES = [
    ("How many chair(s) are in this room?", "object_counting", "", ["chair"]),
    ("How many potted plant(s) are in this room?", "object_counting", "", ["potted plant"]),
    (
        "Measuring from the closest point of each object, what is the direct distance between the sofa and the tv (in meters)?",
        "object_abs_distance", "", ["sofa", "tv"],
    ),
    (
        "What is the length of the longest dimension (length, width, or height) of the refrigerator, measured in centimeters?",
        "object_size_estimation", "", ["refrigerator"],
    ),
    (
        "What is the size of this room (in square meters)? If multiple rooms are shown, estimate the size of the combined space.",
        "room_size_estimation", "", [],
    ),
    (
        "Measuring from the closest point of each object, which of these objects (chair, table, potted plant, tv) is the closest to the bed?",
        "object_rel_distance", "", ["bed", "chair", "table", "potted plant", "tv"],
    ),
    (
        "If I am standing by the bed and facing the tv, is the sofa to the left or the right of the tv?",
        "object_rel_direction", "easy", ["bed", "tv", "sofa"],
    ),
    (
        "If I am standing by the bed and facing the tv, is the sofa to my left, right, or back? "
        "An object is to my back if I would have to turn at least 135 degrees in order to face it.",
        "object_rel_direction", "medium", ["bed", "tv", "sofa"],
    ),
    (
        "If I am standing by the potted plant and facing the tv, is the sofa to my front-left, front-right, back-left, or back-right? "
        "The directions refer to the quadrants of a Cartesian plane (if I am standing at the origin and facing along the positive y-axis).",
        "object_rel_direction", "hard", ["potted plant", "tv", "sofa"],
    ),
    (
        "What will be the first-time appearance order of the following categories in the video: chair, table, sofa, tv?",
        "obj_appearance_order", "", ["chair", "table", "sofa", "tv"],
    ),
]


@pytest.mark.parametrize("text,task,variant,objects", VSI_TEMPLATES)
def test_vsi_templates(text, task, variant, objects):
    parsed = parse_question(text)
    assert (parsed.task, parsed.variant, parsed.objects) == (task, variant, objects)
    assert parsed.raw == text


def test_question_type_carries_the_direction_level():
    parsed = parse_question(VSI_TEMPLATES[8][0])
    assert parsed.question_type == "object_rel_direction_hard"
    assert parse_question("how many chairs").question_type == "object_counting"


def test_route_template_with_one_fill():
    text = (
        "You are a robot beginning at the bed facing the tv. You want to navigate to the toilet. " + ROUTE_NOTE
        + "1. Go forward until the chair 2. [please fill in] 3. Go forward until the toilet. You have reached the final destination."
    )
    parsed = parse_question(text, ["A. Turn Left", "B. Turn Right", "C. Turn Back"])
    assert parsed.task == "route_planning"
    assert parsed.objects == ["bed", "tv", "chair", "toilet"]
    assert parsed.route_steps == [(STEP_FORWARD, "chair"), (STEP_FILL, ""), (STEP_FORWARD, "toilet")]
    assert parsed.choices == ["Turn Left", "Turn Right", "Turn Back"]


def test_route_template_starting_with_a_fill_and_a_given_turn():
    text = (
        "You are a robot beginning at the couch facing the fridge. You want to navigate to the sink. " + ROUTE_NOTE
        + "1. [please fill in] 2. Go forward until the table 3. Turn left 4. Go forward until the oven "
        "5. [please fill in] 6. Go forward until the sink. You have reached the final destination."
    )
    parsed = parse_question(text)
    assert parsed.objects == ["sofa", "refrigerator", "table", "oven", "sink"]
    assert parsed.route_steps == [
        (STEP_FILL, ""), (STEP_FORWARD, "table"), (STEP_TURN, "left"),
        (STEP_FORWARD, "oven"), (STEP_FILL, ""), (STEP_FORWARD, "sink"),
    ]


FREE_FORM = [
    ("how many chairs", "object_counting", "", ["chair"]),
    ("How many couches are there?", "object_counting", "", ["sofa"]),
    ("count the lamps", "object_counting", "", ["lamp"]),
    ("how many tables in the kitchen?", "object_counting", "", ["table"]),
    ("How many potted plants have you seen so far?", "object_counting", "", ["potted plant"]),
    ("how far is the sofa from the tv", "object_abs_distance", "", ["sofa", "tv"]),
    ("How far apart are the fridge and the microwave?", "object_abs_distance", "", ["refrigerator", "microwave"]),
    ("what is the distance between the bed and the lamp?", "object_abs_distance", "", ["bed", "lamp"]),
    ("how big is the bed", "object_size_estimation", "", ["bed"]),
    ("How tall is the potted plant?", "object_size_estimation", "", ["potted plant"]),
    ("how big is the room", "room_size_estimation", "", []),
    ("What is the area of this room?", "room_size_estimation", "", []),
    ("which is closer to the bed, the sofa or the tv", "object_rel_distance", "", ["bed", "sofa", "tv"]),
    ("which of the sofa, the tv and the lamp is closest to the bed?", "object_rel_distance", "", ["bed", "sofa", "tv", "lamp"]),
    ("what is closest to the fridge?", "object_rel_distance", "", ["refrigerator"]),
    ("if I stand by the bed facing the tv, where is the sofa?", "object_rel_direction", "hard", ["bed", "tv", "sofa"]),
    (
        "If I am standing by the bed and facing the tv, is the sofa to my left or right?",
        "object_rel_direction", "easy", ["bed", "tv", "sofa"],
    ),
    (
        "if I am standing at the bed facing the tv, is the sofa to my left, right or behind me?",
        "object_rel_direction", "medium", ["bed", "tv", "sofa"],
    ),
    ("which did you see first, the sofa or the tv", "obj_appearance_order", "", ["sofa", "tv"]),
    ("In what order did you see the bed, the sofa and the clock?", "obj_appearance_order", "", ["bed", "sofa", "clock"]),
]


@pytest.mark.parametrize("text,task,variant,objects", FREE_FORM)
def test_free_form(text, task, variant, objects):
    parsed = parse_question(text)
    assert (parsed.task, parsed.variant, parsed.objects) == (task, variant, objects)


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_question_is_refused(text):
    with pytest.raises(QuestionError, match="empty"):
        parse_question(text)


@pytest.mark.parametrize("text", ["asdf qwer zxcv", "how many", "the sofa", "?!"])
def test_gibberish_is_refused_with_examples(text):
    with pytest.raises(QuestionError) as err:
        parse_question(text)
    message = str(err.value)
    assert "could not understand" in message
    assert "how many chairs" in message  # tells the asker what works


def test_unknown_object_is_named_and_known_classes_listed():
    with pytest.raises(QuestionError) as err:
        parse_question("How many unicorns?")
    message = str(err.value)
    assert "'unicorns'" in message
    assert "chair" in message and "potted plant" in message


def test_unknown_objects_in_a_template_are_all_named():
    with pytest.raises(QuestionError) as err:
        parse_question(
            "Measuring from the closest point of each object, what is the direct distance between the trash bin and the piano (in meters)?"
        )
    assert "'trash bin'" in str(err.value) and "'piano'" in str(err.value)


def test_unknown_route_waypoint_is_named():
    text = (
        "You are a robot beginning at the bed facing the tv. You want to navigate to the toilet. " + ROUTE_NOTE
        + "1. Go forward until the door 2. [please fill in] 3. Go forward until the toilet."
    )
    with pytest.raises(QuestionError, match="'door'"):
        parse_question(text)


def test_split_options_with_and_without_letters():
    assert split_options(["A. sofa", "B. potted plant", "C) tv"]) == [("A", "sofa"), ("B", "potted plant"), ("C", "tv")]
    assert split_options(["left", "right"]) == [("A", "left"), ("B", "right")]
    assert split_options(["A. Turn Left, Turn Right"]) == [("A", "Turn Left, Turn Right")]
    assert split_options(None) == []


def test_task_names():
    assert parse_task_name("object_rel_direction_medium") == ("object_rel_direction", "medium")
    assert parse_task_name("route_planning") == ("route_planning", "")
    with pytest.raises(QuestionError, match="object_teleport"):
        parse_task_name("object_teleport")
