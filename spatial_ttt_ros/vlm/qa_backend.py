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


class QARouter:
    """What the node and the evaluation hold: the qa_backend mode and, when the mode
    needs it, the VLM stream (frames in, questions routed). Built by `build_router`."""

    def __init__(self, mode: str, stream=None):
        if mode not in QA_BACKENDS:
            raise ValueError(f"qa_backend must be one of {QA_BACKENDS}, not {mode!r}")
        if mode != "geometry" and stream is None:
            raise ValueError(f"qa_backend {mode} needs a VLM stream")
        self.mode = mode
        self.stream = stream
        self.vlm = VLMAnswerer(stream) if stream is not None else None
        self.keyframes = 0  # taken by the VLM since the last reset

    def summary(self) -> str:
        """One line for /diagnostics: the mode and the VLM stream's size."""
        if self.stream is None:
            return self.mode
        return f"{self.mode} (VLM: {self.keyframes} keyframes, {self.state_bytes()} state bytes)"

    @property
    def uses_vlm(self) -> bool:
        return self.stream is not None

    def offer_frame(self, rgb, stamp: float) -> bool:
        """A colour frame for the VLM; True when it was taken as a keyframe."""
        if self.stream is None or not self.stream.offer_frame(rgb, stamp):
            return False
        self.keyframes += 1
        return True

    def reset(self) -> None:
        if self.stream is not None:
            self.stream.reset()
        self.keyframes = 0

    def state_bytes(self) -> int:
        return int(self.stream.state_bytes()) if self.stream is not None else 0

    def route(self, question: str, options: list[str] | None) -> str:
        return route(question, options, self.mode)

    def answer(self, question: str, options: list[str] | None,
               geometry: Callable[[str, list[str] | None], Answer], record_both: bool = False) -> RoutedAnswer:
        return answer_routed(question, options, self.mode, geometry, self.vlm, record_both)


def build_router(
    mode: str,
    checkpoint: str | None = None,
    dtype: str = "auto",
    device: str = "cpu",
    keyframe_interval_s: float = 1.0,
    max_new_tokens: int = 24,
) -> QARouter:
    """The router for `mode`; for vlm / hybrid, load the model from the local `checkpoint`
    directory onto `device` (dtype auto: bfloat16 on a GPU, float32 on the CPU).
    Raises ImportError (the `vlm` extra is missing), FileNotFoundError (no checkpoint
    there) or ValueError, each with a one-line reason."""
    if mode not in QA_BACKENDS:
        raise ValueError(f"qa_backend must be one of {', '.join(QA_BACKENDS)}, not {mode!r}")
    if mode == "geometry":
        return QARouter(mode)
    from pathlib import Path

    from . import MISSING_EXTRA, available

    if not available():
        raise ImportError(f"qa_backend {mode}: {MISSING_EXTRA}")
    if not checkpoint or not str(checkpoint).strip():
        raise ValueError(f"qa_backend {mode} needs vlm_checkpoint: the local directory of the downloaded weights")
    path = Path(checkpoint).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"vlm_checkpoint {path}: no config.json there (download the weights first, see README)")
    from .engine import SpatialTTTEngine
    from .loader import load_model, load_tokenizer
    from .streamer import VLMStream

    if dtype == "auto":
        dtype = "bfloat16" if str(device).startswith("cuda") else "float32"
    model, cfg = load_model(path, dtype=dtype, device=device)
    stream = VLMStream(SpatialTTTEngine(model, cfg), load_tokenizer(path), keyframe_interval_s=keyframe_interval_s,
                       frame_size=tuple(cfg.frame_size), max_new_tokens=max_new_tokens)
    return QARouter(mode, stream)
