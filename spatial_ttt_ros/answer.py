"""What an answer is: text for people, numbers and positions for planners."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The 8 VSI-Bench task types (object_rel_direction has easy/medium/hard variants).
TASK_TYPES: tuple[str, ...] = (
    "object_counting",
    "object_abs_distance",
    "object_size_estimation",
    "room_size_estimation",
    "object_rel_distance",
    "object_rel_direction",
    "route_planning",
    "obj_appearance_order",
)
NUMERIC_TASKS = frozenset(
    {"object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation"}
)


class QuestionError(ValueError):
    """A question that cannot be answered: unparseable, or about an unknown object.

    The message is meant for the person or planner who asked.
    """


@dataclass
class UsedPosition:
    label: str
    position: np.ndarray  # (3,) world metres


@dataclass
class Answer:
    task: str  # one of TASK_TYPES
    text: str  # a sentence
    value: float = float("nan")  # numeric answer (NaN for choice questions)
    unit: str = ""  # "count", "m", "cm", "m^2" or ""
    option: str = ""  # chosen option letter ("A".."D") for multiple-choice, else ""
    choice: str = ""  # chosen option text without its letter
    confidence: float = 0.0  # 0..1
    positions: list[UsedPosition] = field(default_factory=list)

    def prediction(self) -> str | float:
        """What the metric compares with ground truth: the letter, or the value."""
        return self.option if self.option else self.value
