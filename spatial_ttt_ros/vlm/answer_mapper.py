"""Generated text (+ token probabilities) -> the package's Answer.

  options given   -> the option letter ("B", "(b)", "B. table", or the option's text
                     quoted in the reply); confidence: the letter's probability at the
                     first decoding step, renormalised over the offered letters.
  numeric task    -> the first number in the reply (digits or a small number word),
                     with its unit; sizes are reported in cm, distances in m, rooms in
                     m^2 (VSI-Bench units), converting when the model used another.
  anything else   -> free text (task "free_form", value NaN).
  confidence      -> geometric mean of the generated tokens' probabilities otherwise.

The VLM never gives world positions: `positions` stays empty.
"""

from __future__ import annotations

import math
import re

try:  # the Answer type moved to the package top level (issue 16)
    from spatial_ttt_ros.answer import Answer
except ImportError:  # pragma: no cover
    from spatial_ttt_ros.reasoning.answer import Answer

FREE_FORM = "free_form"
TASK_UNITS = {
    "object_counting": "count",
    "object_abs_distance": "m",
    "object_size_estimation": "cm",
    "room_size_estimation": "m^2",
}
NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_NUMBER = re.compile(r"(-?\d+(?:[.,]\d+)?)\s*(square\s+met(?:er|re)s?|sq\.?\s*m|m\^?2|m²|cm|centimet(?:er|re)s?|mm|"
                     r"millimet(?:er|re)s?|met(?:er|re)s?|m\b|feet|ft)?", re.IGNORECASE)
_UNIT_CANON = [
    (re.compile(r"^(square|sq|m\^?2|m²)", re.I), "m^2"),
    (re.compile(r"^(cm|centi)", re.I), "cm"),
    (re.compile(r"^(mm|milli)", re.I), "mm"),
    (re.compile(r"^(feet|ft)", re.I), "ft"),
    (re.compile(r"^(m|met)", re.I), "m"),
]
_TO_METRES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "ft": 0.3048}


def _canon_unit(raw: str | None) -> str:
    if not raw:
        return ""
    for pattern, unit in _UNIT_CANON:
        if pattern.match(raw.strip()):
            return unit
    return ""


def parse_number(text: str) -> tuple[float, str] | None:
    """First number in the text with its unit ("" when none), or None."""
    m = _NUMBER.search(text)
    if m:
        return float(m.group(1).replace(",", ".")), _canon_unit(m.group(2))
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in NUMBER_WORDS:
            return float(NUMBER_WORDS[word]), ""
    return None


def _convert(value: float, unit: str, target: str) -> float:
    if not unit or unit == target or target in ("count", "m^2"):
        return value
    if unit in _TO_METRES and target in _TO_METRES:
        return value * _TO_METRES[unit] / _TO_METRES[target]
    return value


def parse_option(text: str, options: list[str]) -> str:
    """The chosen letter, or "" when the reply names none of the options."""
    letters = [o.split(".", 1)[0].strip().upper() if "." in o[:3] else chr(65 + i) for i, o in enumerate(options)]
    t = text.strip()
    m = re.match(r"^\(?([A-Za-z])\)?(?:[.):\s]|$)", t)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    m = re.search(r"\b(?:answer|option)\s*(?:is|:)?\s*\(?([A-Za-z])\b", t, re.IGNORECASE)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    low = t.lower()
    for letter, opt in zip(letters, options):
        body = opt.split(".", 1)[1].strip().lower() if "." in opt[:3] else opt.lower()
        if body and body in low:
            return letter
    return ""


def _option_text(options: list[str], letter: str) -> str:
    for o in options:
        if o.strip().upper().startswith(letter + "."):
            return o.split(".", 1)[1].strip()
    return ""


def map_answer(
    text: str,
    task: str | None = None,
    options: list[str] | None = None,
    token_probs: list[float] | None = None,
    option_probs: dict[str, float] | None = None,
) -> Answer:
    """Map one generated reply onto an Answer (task: a VSI-Bench type when known)."""
    token_probs = token_probs or []
    mean_conf = (
        math.exp(sum(math.log(max(p, 1e-12)) for p in token_probs) / len(token_probs)) if token_probs else 0.0
    )
    text = text.strip()
    if options:
        letter = parse_option(text, options)
        conf = mean_conf
        if letter and option_probs:
            total = sum(option_probs.values())
            conf = option_probs.get(letter, 0.0) / total if total > 0 else mean_conf
        choice = _option_text(options, letter) if letter else ""
        sentence = f"{letter}. {choice}" if letter else (text or "(no answer)")
        return Answer(task=task or FREE_FORM, text=sentence, option=letter, choice=choice,
                      confidence=float(conf) if letter else 0.0)
    if task in TASK_UNITS:
        parsed = parse_number(text)
        if parsed is None:
            return Answer(task=task, text=text or "(no answer)", confidence=0.0)
        value, unit = parsed
        target = TASK_UNITS[task]
        value = _convert(value, unit, target)
        if target == "count":
            value = float(round(value))
        shown = f"{value:g}" if target == "count" else f"{value:.2f} {target}"
        return Answer(task=task, text=shown, value=value, unit=target, confidence=float(mean_conf))
    parsed = parse_number(text) if task is None else None
    if parsed is not None and re.fullmatch(r"[\d.,\s]*[a-zA-Z^²\s.]*", text) and len(text) < 24:
        value, unit = parsed  # a bare number reply to an unparsed question: keep it as a number
        return Answer(task=FREE_FORM, text=text, value=value, unit=unit, confidence=float(mean_conf))
    return Answer(task=task or FREE_FORM, text=text or "(no answer)", confidence=float(mean_conf))
