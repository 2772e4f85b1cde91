"""Question answering entry points: words (``~/ask``) and structured queries (``~/query``).

``answer_question`` parses text then solves; ``answer_structured`` takes a task type
and object names in the task's role order (see ``parser`` module doc) and skips the
parser. Both raise ``QuestionError`` with a message for the asker when the question
cannot be answered (unparseable, unknown task, unknown object, wrong number of objects).
"""

from __future__ import annotations

from spatial_ttt_ros.answer import Answer, QuestionError
from spatial_ttt_ros.inventory import Inventory
from spatial_ttt_ros.reasoning.parser import (
    ParsedQuestion,
    parse_question,
    parse_task_name,
    resolve_objects,
    split_options,
)
from spatial_ttt_ros.reasoning.solvers import solve

# How many object names each task takes in a structured query: (min, max); None = no max.
_OBJECT_COUNTS: dict[str, tuple[int, int | None, str]] = {
    "object_counting": (1, 1, "one class to count"),
    "object_abs_distance": (2, 2, "two objects [a, b]"),
    "object_size_estimation": (1, 1, "one object"),
    "room_size_estimation": (0, 0, "no objects"),
    "object_rel_distance": (1, None, "a reference then candidates [reference, candidate, ...]"),
    "object_rel_direction": (3, 3, "three objects [standing_by, facing, query]"),
    "route_planning": (3, None, "[start, facing, waypoint..., end]"),
    "obj_appearance_order": (0, None, "two or more classes (or options listing them)"),
}


def answer_question(text: str, options: list[str] | None, inventory: Inventory) -> Answer:
    """Answer a question in words (VSI-Bench phrasing or short free form)."""
    parsed = parse_question(text, options)
    return solve(parsed, inventory, options)


def _infer_direction_level(options: list[str] | None) -> str:
    """rel_direction level from the options' words; "hard" (quadrants) without options."""
    words = " ".join(t.lower() for _, t in split_options(options))
    if "front" in words or "back-" in words:
        return "hard"
    if "back" in words:
        return "medium"
    if "left" in words or "right" in words:
        return "easy"
    return "hard"


def answer_structured(
    task: str, object_names: list[str] | None, options: list[str] | None, inventory: Inventory
) -> Answer:
    """Answer a structured query: task type (VSI-Bench name; rel_direction may carry its level)
    plus object names in the task's order, e.g. ("object_abs_distance", ["sofa", "tv"])."""
    task_name, variant = parse_task_name(task)
    names = [n for n in (object_names or []) if str(n).strip()]
    lo, hi, what = _OBJECT_COUNTS[task_name]
    if len(names) < lo or (hi is not None and len(names) > hi):
        raise QuestionError(f"{task_name} takes {what}; got {len(names)} object name(s): {names}.")
    objects = resolve_objects(names)
    if task_name == "obj_appearance_order" and len(objects) < 2 and not split_options(options):
        raise QuestionError("obj_appearance_order needs two or more classes, or options listing them.")
    if task_name == "object_rel_direction" and not variant:
        variant = _infer_direction_level(options)
    parsed = ParsedQuestion(
        task=task_name,
        variant=variant,
        objects=objects,
        choices=[t for _, t in split_options(options)],
        raw="",
    )
    return solve(parsed, inventory, options)
