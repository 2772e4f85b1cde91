"""Question files: VSI-Bench records as a JSON list or JSONL (one record per line).

Each record has ``id, scene_name, question_type, question, options, ground_truth`` and
optionally ``time`` (seconds since the stream's first frame: a streaming question asked
when the replay reaches that time, as VSI-SUPER asks them).

``load_questions(path) -> (good_records, errors)``: records that fail validation are
left out and each gets one error string naming its index, id and the problem, so the
good ones can still be scored. A file that is not JSON/JSONL at all raises ValueError
naming the file and line (nothing in it can be trusted).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from spatial_ttt_ros.evaluation.metrics import QUESTION_TYPES, option_letter
from spatial_ttt_ros.answer import NUMERIC_TASKS

REQUIRED_FIELDS: tuple[str, ...] = ("id", "scene_name", "question_type", "question", "options", "ground_truth")
_ALL_TYPES = QUESTION_TYPES + ("object_rel_direction",)


def _parse_file(path: Path) -> list:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text question file ({exc})") from exc
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"{path}: the question file is empty")
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from exc
        return data
    try:  # a single JSON object: {"questions": [...]} or one record
        data = json.loads(text)
        if isinstance(data, dict):
            return data["questions"] if isinstance(data.get("questions"), list) else [data]
    except json.JSONDecodeError:
        pass
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not valid JSON/JSONL ({exc.msg}, column {exc.colno})") from exc
    return records


def validate_record(record) -> str | None:
    """The problem with one record, or None when it can be scored."""
    if not isinstance(record, dict):
        return f"not an object but {type(record).__name__}"
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    if not isinstance(record["id"], (str, int)) or isinstance(record["id"], bool):
        return "id must be a string or integer"
    if not isinstance(record["scene_name"], str):
        return "scene_name must be a string"
    qtype = record["question_type"]
    if qtype not in _ALL_TYPES:
        return f"unknown question_type {qtype!r} (known: {', '.join(_ALL_TYPES)})"
    if not isinstance(record["question"], str) or not record["question"].strip():
        return "question must be a non-empty string"
    options = record["options"]
    if options is None:
        options = []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        return "options must be a list of strings"
    gt = record["ground_truth"]
    if qtype in NUMERIC_TASKS:
        try:
            value = float(gt)
        except (TypeError, ValueError):
            return f"ground_truth {gt!r} is not a number (numeric question type {qtype})"
        if isinstance(gt, bool) or not math.isfinite(value):
            return f"ground_truth {gt!r} is not a finite number"
    else:
        if len(options) < 2:
            return f"a {qtype} question needs at least two options"
        if option_letter(gt, options) is None:
            return f"ground_truth {gt!r} names none of the options {options}"
    if "time" in record and record["time"] is not None:
        t = record["time"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            return f"time {t!r} must be a non-negative number of seconds"
    return None


def load_questions(path: str | Path) -> tuple[list[dict], list[str]]:
    """Read and validate a question file; returns (good records, error messages)."""
    path = Path(path)
    data = _parse_file(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of question records, got {type(data).__name__}")
    good: list[dict] = []
    errors: list[str] = []
    seen_ids: set = set()
    for index, record in enumerate(data):
        rid = record.get("id") if isinstance(record, dict) else None
        problem = validate_record(record)
        if problem is None and rid in seen_ids:
            problem = "duplicate id"
        if problem is not None:
            errors.append(f"{path.name} record {index} (id {rid!r}): {problem}")
            continue
        seen_ids.add(rid)
        if record["options"] is None:
            record = {**record, "options": []}
        good.append(record)
    return good, errors
