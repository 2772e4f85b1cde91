"""VSI-Bench scoring: MRA for numeric answers, accuracy for multiple choice, task aggregation.

- ``mra(pred, gt)``: mean over t in {0.50, 0.55, ..., 0.95} of ``|pred - gt| / |gt| <= 1 - t``.
  A ground truth of 0 (a count of none) has no relative error; there the error is
  measured against 1 instead (``|pred| / 1``), so predicting 0 scores 1, 0.3 scores 0.5
  and 1 or more scores 0. A non-finite prediction (NaN: "not seen") scores 0.
  Comparisons allow 1e-9 so that an error of exactly ``1 - t`` passes threshold t
  despite floating-point rounding of the thresholds.
- ``score_record(record, prediction)``: numeric tasks -> MRA; choice tasks -> 1.0 when the
  prediction names the ground-truth option (a letter "B", "B. sofa", or the option text
  "sofa"; the ground truth may also be a letter or option text), else 0.0.
- Abstention: a prediction that names no option (None, "", NaN: the memory said "I
  cannot tell") scores 0 and is never read as a default option; ``is_abstention`` says
  which predictions those are so reports can count them per task.
- Duplicates: ``question_key(record)`` is the same for two records that ask the same
  thing (same question type, same objects, in any order where order does not change
  the question, same options, same ``time``). ``aggregate`` scores each key once (the
  first record) and counts the others under ``duplicates``, so a question asked twice
  does not weigh double in its task.
- ``aggregate(scored)``: per-task means in percent; object_rel_direction is the mean of
  its levels' means (easy, medium, hard, as VSI-Bench averages them); overall is the
  unweighted mean over the task types present.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Any, Iterable

import numpy as np

from spatial_ttt_ros.answer import NUMERIC_TASKS, TASK_TYPES
from spatial_ttt_ros.reasoning.parser import split_options

MRA_THRESHOLDS: tuple[float, ...] = tuple(round(0.50 + 0.05 * i, 2) for i in range(10))
_TOLERANCE = 1e-9
REL_DIRECTION_LEVELS: tuple[str, ...] = (
    "object_rel_direction_easy",
    "object_rel_direction_medium",
    "object_rel_direction_hard",
)
QUESTION_TYPES: tuple[str, ...] = tuple(t for t in TASK_TYPES if t != "object_rel_direction") + REL_DIRECTION_LEVELS


def mra(pred: float, gt: float) -> float:
    """Mean relative accuracy of one numeric prediction (see module doc for gt == 0)."""
    pred, gt = float(pred), float(gt)
    if not (math.isfinite(pred) and math.isfinite(gt)):
        return 0.0
    scale = abs(gt) if gt != 0.0 else 1.0
    rel_err = abs(pred - gt) / scale
    return float(np.mean([rel_err <= (1.0 - t) + _TOLERANCE for t in MRA_THRESHOLDS]))


def task_of(record: dict) -> str:
    """The task type a record scores under (rel_direction levels -> object_rel_direction)."""
    qtype = str(record.get("question_type", ""))
    if qtype in REL_DIRECTION_LEVELS:
        return "object_rel_direction"
    if qtype in TASK_TYPES:
        return qtype
    raise ValueError(f"unknown question_type {qtype!r}; known: {', '.join(QUESTION_TYPES + ('object_rel_direction',))}")


def _normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().strip(".").lower()


def option_letter(value: Any, options: list[str] | None) -> str | None:
    """The option letter ``value`` names: "B", "b", "B.", "B. sofa" or the text "sofa"; else None."""
    if value is None:
        return None
    if hasattr(value, "prediction"):  # an Answer
        value = value.prediction()
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip()
    pairs = split_options(options)
    letters = {letter for letter, _ in pairs}
    m = re.fullmatch(r"\(?([A-Za-z])\)?[.):]?", text)
    if m and (not letters or m.group(1).upper() in letters):
        return m.group(1).upper()
    norm = _normalise_text(text)
    for letter, option_text in pairs:
        full = f"{letter}. {option_text}"
        if norm in (_normalise_text(option_text), _normalise_text(full)):
            return letter
    m = re.match(r"^\(?([A-Za-z])\)?[.):]\s", text)  # "B. something" not matching any text exactly
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    return None


def _as_number(value: Any) -> float:
    if hasattr(value, "prediction"):
        value = value.prediction()
    try:
        return float(value)
    except (TypeError, ValueError):
        m = re.search(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", str(value))
        return float(m.group(0)) if m else math.nan


def is_abstention(record: dict, prediction: Any) -> bool:
    """True when ``prediction`` answers nothing: no number for a numeric task, no option
    (nor option text) for a choice task. An abstention always scores 0."""
    if hasattr(prediction, "prediction"):  # an Answer
        prediction = prediction.prediction()
    if prediction is None:
        return True
    if isinstance(prediction, float) and not math.isfinite(prediction):
        return True
    if isinstance(prediction, str) and not prediction.strip():
        return True
    if task_of(record) in NUMERIC_TASKS:
        return not math.isfinite(_as_number(prediction))
    return False


def score_record(record: dict, prediction: Any) -> float:
    """Score in [0, 1] of ``prediction`` (a number, letter, option text or Answer) for one record."""
    task = task_of(record)
    gt = record.get("ground_truth")
    if is_abstention(record, prediction):
        return 0.0  # "I cannot tell" is wrong, never a default option
    if task in NUMERIC_TASKS:
        return mra(_as_number(prediction), _as_number(gt))
    options = record.get("options") or []
    gt_letter = option_letter(gt, options)
    pred_letter = option_letter(prediction, options)
    if gt_letter is not None and pred_letter is not None:
        return float(gt_letter == pred_letter)
    if not options:  # free-form choice without options: compare texts
        pred_text = prediction.choice if hasattr(prediction, "choice") else prediction
        return float(_normalise_text(pred_text) == _normalise_text(gt))
    return 0.0


# Tasks whose question means the same whatever order its objects are named in: the
# distance between A and B, the order in which A, B, C first appeared, how many A.
# (Relative direction and routes depend on the order: standing by A facing B.)
_ORDER_FREE_TASKS = frozenset({"object_abs_distance", "obj_appearance_order", "object_counting",
                               "object_size_estimation", "room_size_estimation"})


def question_key(record: dict) -> tuple:
    """What a record asks, independent of wording order: two records with the same key are
    the same question (see module doc)."""
    from spatial_ttt_ros.answer import QuestionError
    from spatial_ttt_ros.reasoning.parser import parse_question

    qtype = str(record.get("question_type", ""))
    options = record.get("options") or []
    option_texts = tuple(sorted(_normalise_text(t) for _, t in split_options(options)))
    try:
        parsed = parse_question(str(record.get("question", "")), options or None)
        objects = list(parsed.objects)
        if task_of(record) in _ORDER_FREE_TASKS:
            objects = sorted(objects)
        elif task_of(record) == "object_rel_distance" and objects:
            objects = objects[:1] + sorted(objects[1:])  # the reference, then the candidate set
        what: tuple = ("objects",) + tuple(objects) + tuple(str(s) for s in parsed.route_steps)
    except (QuestionError, ValueError):
        what = ("text", _normalise_text(record.get("question", "")))  # unparseable: exact text only
    return (str(record.get("scene_name", "")), qtype, what, option_texts, record.get("time"))


def find_duplicates(records: Iterable[dict]) -> dict[int, int]:
    """{index of a repeated record: index of its first occurrence} over ``records``."""
    first: dict[tuple, int] = {}
    dup: dict[int, int] = {}
    for i, r in enumerate(records):
        if not str(r.get("question", "")).strip():
            continue  # nothing asked (a bare score record): cannot be a repeat
        k = question_key(r)
        if k in first:
            dup[i] = first[k]
        else:
            first[k] = i
    return dup


def aggregate(scored: Iterable[tuple[dict, float]], dedupe: bool = True) -> dict:
    """``{"overall": %, "tasks": {task: %}, "levels": {rel_direction level: %}, "counts": {task: n},
    "duplicates": {task: n}}``.

    Each distinct question (``question_key``) is scored once: its first record counts, its
    repeats are left out and counted under ``duplicates``. Overall is the unweighted mean
    over task types present (0.0 when nothing was scored). ``dedupe=False``: the caller has
    already left the repeats out (the benchmark's bootstrap pools de-duplicated scenes).
    """
    scored = list(scored)
    repeats = find_duplicates(r for r, _ in scored) if dedupe else {}
    by_type: dict[str, list[float]] = defaultdict(list)
    duplicates: dict[str, int] = defaultdict(int)
    for i, (record, score) in enumerate(scored):
        qtype = str(record.get("question_type", ""))
        task = task_of(record)  # raises on an unknown type
        if i in repeats:
            duplicates[task] += 1
            continue
        by_type[qtype].append(float(score))

    tasks: dict[str, float] = {}
    counts: dict[str, int] = {}
    levels = {lvl: 100.0 * float(np.mean(by_type[lvl])) for lvl in REL_DIRECTION_LEVELS if by_type.get(lvl)}
    if by_type.get("object_rel_direction"):  # records without a level count as their own level
        levels["object_rel_direction"] = 100.0 * float(np.mean(by_type["object_rel_direction"]))
    for task in TASK_TYPES:
        if task == "object_rel_direction":
            if levels:
                tasks[task] = float(np.mean(list(levels.values())))
                counts[task] = sum(len(by_type[k]) for k in levels)
        elif by_type.get(task):
            tasks[task] = 100.0 * float(np.mean(by_type[task]))
            counts[task] = len(by_type[task])
    overall = float(np.mean(list(tasks.values()))) if tasks else 0.0
    return {"overall": overall, "tasks": tasks, "levels": levels, "counts": counts, "duplicates": dict(duplicates)}
