"""qa_backend = geometry | vlm | hybrid: which answerer a question goes to (no ROS).

  geometry : the geometric memory's parser + solvers (positions, exact geometry).
  vlm      : Spatial-TTT-nano answers every question from its own stream.
  hybrid   : questions the parser understands (the VSI-Bench types) go to the
             geometry; free-form ones it refuses go to the VLM. With
             `record_both`, the other backend answers too (for evaluation reports).

The geometric memory keeps running beside the VLM in every mode: positions,
markers and ~/query always come from it; a VLM answer carries no positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .answer_mapper import map_answer

try:
    from spatial_ttt_ros.answer import Answer, QuestionError
except ImportError:  # pragma: no cover
    from spatial_ttt_ros.reasoning.answer import Answer, QuestionError

QA_BACKENDS = ("geometry", "vlm", "hybrid")


def task_hint(question: str, options: list[str] | None) -> str | None:
    """The VSI-Bench task the parser finds (units and option handling), or None."""
    from spatial_ttt_ros.reasoning.parser import parse_question

    try:
        return parse_question(question, options).task
    except QuestionError:
        return None


def route(question: str, options: list[str] | None, mode: str) -> str:
    if mode not in QA_BACKENDS:
        raise ValueError(f"qa_backend must be one of {QA_BACKENDS}, not {mode!r}")
    if mode != "hybrid":
        return mode
    return "geometry" if task_hint(question, options) is not None else "vlm"


class VLMAnswerer:
    """A VLMStream's reply mapped onto an Answer."""

    def __init__(self, stream):
        self.stream = stream

    def __call__(self, question: str, options: list[str] | None) -> Answer:
        gen = self.stream.ask(question, options)
        return map_answer(gen.text, task=task_hint(question, options), options=options,
                          token_probs=gen.token_probs, option_probs=gen.option_probs)


@dataclass
class RoutedAnswer:
    answer: Answer
    backend: str  # "geometry" or "vlm": who gave `answer`
    others: dict[str, Answer] = field(default_factory=dict)  # the other backend's answer (record_both)
    errors: dict[str, str] = field(default_factory=dict)


def answer_routed(
    question: str,
    options: list[str] | None,
    mode: str,
    geometry: Callable[[str, list[str] | None], Answer],
    vlm: Callable[[str, list[str] | None], Answer] | None,
    record_both: bool = False,
) -> RoutedAnswer:
    """Answer with the routed backend; QuestionError from the geometry propagates in mode geometry."""
    backend = route(question, options, mode)
    if backend == "vlm" and vlm is None:
        raise RuntimeError("qa_backend needs the VLM but none is loaded (vlm_checkpoint)")
    chosen = geometry if backend == "geometry" else vlm
    result = RoutedAnswer(answer=chosen(question, options), backend=backend)
    if record_both:
        other_name = "vlm" if backend == "geometry" else "geometry"
        other = vlm if other_name == "vlm" else geometry
        if other is not None:
            try:
                result.others[other_name] = other(question, options)
            except Exception as exc:  # a question the other backend cannot take
                result.errors[other_name] = f"{type(exc).__name__}: {exc}"
    return result
