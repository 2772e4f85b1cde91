"""qa_backend routing (geometry | vlm | hybrid), with stand-in answerers (no model)."""

from __future__ import annotations

import pytest

from spatial_ttt_ros.answer import Answer, QuestionError
from spatial_ttt_ros.vlm.qa_backend import answer_routed, route, task_hint

VSI = "How many chair(s) are in this room?"
FREE = "What colour is the mug next to the kettle?"


def geometry(q, o):
    if task_hint(q, o) is None:
        raise QuestionError("not a spatial question I know")
    return Answer(task="object_counting", text="2", value=2.0, unit="count")


def vlm(q, o):
    return Answer(task="free_form", text="red", confidence=0.7)


def test_route():
    assert task_hint(VSI, None) == "object_counting"
    assert route(VSI, None, "hybrid") == "geometry"
    assert route(FREE, None, "hybrid") == "vlm"
    assert route(VSI, None, "vlm") == "vlm" and route(FREE, None, "geometry") == "geometry"
    with pytest.raises(ValueError):
        route(VSI, None, "oracle")


def test_hybrid_records_both():
    r = answer_routed(VSI, None, "hybrid", geometry, vlm, record_both=True)
    assert (r.backend, r.answer.value, r.others["vlm"].text) == ("geometry", 2.0, "red")
    r = answer_routed(FREE, None, "hybrid", geometry, vlm, record_both=True)
    assert r.backend == "vlm" and r.answer.text == "red" and "geometry" in r.errors


def test_vlm_mode_without_a_model_is_a_clear_error():
    with pytest.raises(RuntimeError, match="vlm_checkpoint"):
        answer_routed(VSI, None, "vlm", geometry, None)
