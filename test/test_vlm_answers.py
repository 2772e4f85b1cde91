"""The VLM reply -> Answer mapping (no model needed)."""

from __future__ import annotations

import math

import pytest

from spatial_ttt_ros.vlm.answer_mapper import map_answer, parse_number, parse_option

OPTS = ["A. sofa", "B. table", "C. chair", "D. bed"]


@pytest.mark.parametrize(
    "reply, letter",
    [("B", "B"), ("B.", "B"), ("(c)", "C"), ("D. bed", "D"), ("The answer is A", "A"), ("It is the table.", "B"), ("E", "")],
)
def test_option_letters(reply, letter):
    assert parse_option(reply, OPTS) == letter


def test_option_answer_confidence_from_letter_probabilities():
    a = map_answer("C", task="object_rel_distance", options=OPTS, token_probs=[0.5],
                   option_probs={"A": 0.1, "B": 0.1, "C": 0.6, "D": 0.2})
    assert (a.option, a.choice, a.prediction()) == ("C", "chair", "C")
    assert a.confidence == pytest.approx(0.6)
    assert math.isnan(a.value) and a.positions == []


@pytest.mark.parametrize(
    "reply, task, value, unit",
    [
        ("3", "object_counting", 3.0, "count"),
        ("three", "object_counting", 3.0, "count"),
        ("2.5 meters", "object_abs_distance", 2.5, "m"),
        ("180 cm", "object_abs_distance", 1.8, "m"),
        ("1.2 m", "object_size_estimation", 120.0, "cm"),
        ("85", "object_size_estimation", 85.0, "cm"),
        ("about 24.5 square meters", "room_size_estimation", 24.5, "m^2"),
    ],
)
def test_numbers_with_units(reply, task, value, unit):
    a = map_answer(reply, task=task, token_probs=[0.9, 0.8])
    assert a.value == pytest.approx(value)
    assert a.unit == unit and a.option == ""
    assert a.confidence == pytest.approx(math.sqrt(0.72))
    assert a.prediction() == pytest.approx(value)


def test_unreadable_number_has_zero_confidence():
    a = map_answer("I cannot tell", task="object_counting", token_probs=[0.9])
    assert math.isnan(a.value) and a.confidence == 0.0


def test_free_text():
    a = map_answer("The mug is on the kitchen counter, left of the sink.", token_probs=[0.5, 0.5])
    assert a.task == "free_form" and a.text.startswith("The mug")
    assert math.isnan(a.value) and a.option == "" and a.confidence == pytest.approx(0.5)


def test_parse_number():
    assert parse_number("roughly 3,5 m") == (3.5, "m")
    assert parse_number("no idea") is None
