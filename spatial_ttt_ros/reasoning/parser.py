"""Question parser: VSI-Bench phrasings and short free-form questions -> ``ParsedQuestion``.

Every VSI-Bench template (the ten question types the simulator writes) is matched by
its own regular expression first; short free-form questions ("how many chairs",
"how far is the sofa from the tv", "how big is the room", "which is closer to the bed,
the sofa or the tv", ...) are tried after. Object words go through
``classes.canonical_class`` (plurals, synonyms such as couch/fridge).

``ParsedQuestion.objects`` lists canonical class names in the *task's role order*
(the same order the structured ``~/query`` service takes), which is the question
order for every template except object_rel_distance, whose reference comes first:

===========================  ====================================================
task                         objects
===========================  ====================================================
object_counting              [category]
object_abs_distance          [a, b]
object_size_estimation       [object]
room_size_estimation         []
object_rel_distance          [reference, candidate, candidate, ...] (candidates may
                             be empty: "what is closest to the bed" = any object)
object_rel_direction         [standing_by, facing, query]
route_planning               [start, facing, waypoint..., end]
obj_appearance_order         [category, category, ...] as listed
===========================  ====================================================

Failures raise ``QuestionError`` with a message meant for the person who asked: an
empty question, a question matching no known form (with examples of what works), or
object words that are not classes (naming them and listing the known classes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from spatial_ttt_ros.classes import CLASSES, canonical_class
from spatial_ttt_ros.answer import TASK_TYPES, QuestionError

REL_DIRECTION_VARIANTS: tuple[str, ...] = ("easy", "medium", "hard")

# Step kinds of a route plan (ParsedQuestion.route_steps).
STEP_FORWARD = "forward"  # ("forward", canonical label): walk to that object
STEP_FILL = "fill"  # ("fill", ""): a turn to choose ([please fill in])
STEP_TURN = "turn"  # ("turn", "left" | "right" | "back"): a turn already given

EXAMPLES = (
    "how many chairs",
    "how far is the sofa from the tv",
    "how big is the bed",
    "how big is the room",
    "which is closer to the bed, the sofa or the tv",
    "if I am standing by the bed and facing the tv, is the sofa to my left or right",
    "which did you see first, the sofa or the tv",
)


@dataclass
class ParsedQuestion:
    task: str  # one of TASK_TYPES
    variant: str = ""  # "easy" | "medium" | "hard" for object_rel_direction, else ""
    objects: list[str] = field(default_factory=list)  # canonical names, role order (module doc)
    choices: list[str] = field(default_factory=list)  # option texts without their letters
    raw: str = ""  # the question as asked
    route_steps: list[tuple[str, str]] = field(default_factory=list)  # route_planning only

    @property
    def question_type(self) -> str:
        """VSI-Bench question_type (rel_direction carries its level: object_rel_direction_hard)."""
        return f"{self.task}_{self.variant}" if self.variant else self.task


# --------------------------------------------------------------------------- options

_OPTION_RE = re.compile(r"^\s*([A-Za-z])\s*[.):]\s*(.*?)\s*$", re.S)


def split_options(options: list[str] | tuple[str, ...] | None) -> list[tuple[str, str]]:
    """``["A. sofa", "B. tv"]`` -> ``[("A", "sofa"), ("B", "tv")]``.

    Options without a letter prefix get letters by position (A, B, ...), so a caller
    may pass bare choice texts.
    """
    pairs: list[tuple[str, str]] = []
    for i, opt in enumerate(options or []):
        opt = str(opt)
        m = _OPTION_RE.match(opt)
        if m and m.group(2):
            pairs.append((m.group(1).upper(), m.group(2)))
        else:
            pairs.append((chr(ord("A") + i), opt.strip()))
    return pairs


# --------------------------------------------------------------------------- words

_ARTICLE_RE = re.compile(r"^(?:the|a|an|my|this|that|these|those|any)\s+", re.I)


def _clean_phrase(phrase: str) -> str:
    phrase = phrase.strip().strip("?.!,;:'\" ")
    phrase = re.sub(r"\s+", " ", phrase)
    while True:
        stripped = _ARTICLE_RE.sub("", phrase)
        if stripped == phrase:
            return phrase
        phrase = stripped


def _unknown_error(words: list[str]) -> QuestionError:
    quoted = ", ".join(f"'{w}'" for w in words)
    noun = "object" if len(words) == 1 else "objects"
    return QuestionError(
        f"I do not know the {noun} {quoted}. Known objects: {', '.join(CLASSES)}."
    )


def resolve_objects(phrases: list[str]) -> list[str]:
    """Canonical names for the phrases; QuestionError naming every phrase that is not a class."""
    names: list[str] = []
    unknown: list[str] = []
    for phrase in phrases:
        cleaned = _clean_phrase(phrase)
        name = canonical_class(cleaned) if cleaned else None
        if name is None:
            unknown.append(cleaned or phrase)
        else:
            names.append(name)
    if unknown:
        raise _unknown_error(unknown)
    return names


def _split_list(text: str) -> list[str]:
    """"chair, table, and sofa" / "the sofa or the tv" -> ["chair", "table", "sofa"]."""
    parts = re.split(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+", text.strip())
    return [p for p in (_clean_phrase(p) for p in parts) if p]


# --------------------------------------------------------------------------- templates
# Each template handler gets the regex match and the normalised text and returns
# (task, variant, object phrases) or a ParsedQuestion for the complex ones.

_OBJ = r"(?:the\s+)?(.+?)"

_VSI_COUNT = re.compile(r"how many (.+?)\s+(?:are|is) (?:there )?in (?:this|the) (?:room|space|scene)", re.I)
_VSI_ABS_DIST = re.compile(
    r"distance between " + _OBJ + r" and " + _OBJ + r"\s*\(in meters\)", re.I
)
_VSI_SIZE = re.compile(
    r"longest dimension .*? of " + _OBJ + r",?\s*measured in centimet(?:er|re)s", re.I
)
_VSI_ROOM = re.compile(r"what is the size of this room", re.I)
_VSI_REL_DIST = re.compile(
    r"which of these objects \((.+?)\) is (?:the )?closest to " + _OBJ + r"\s*\?", re.I
)
_VSI_REL_DIR = re.compile(
    r"if i am standing by " + _OBJ + r" and facing " + _OBJ + r", is " + _OBJ
    + r" to (?:the left or the right of|my left, right,? or back|my front-left)",
    re.I,
)
_VSI_ROUTE = re.compile(
    r"you are a robot beginning at " + _OBJ + r" facing " + _OBJ + r"\.\s*"
    r"you want to navigate to " + _OBJ + r"\.",
    re.I,
)
_VSI_ORDER = re.compile(
    r"what will be the first[- ]time appearance order of the following categories in the video:\s*(.+?)\s*\?",
    re.I,
)

# Free-form patterns, tried after the templates (order matters: specific first).
_FREE_ROOM = re.compile(
    r"^(?:how (?:big|large) is (?:the|this) (?:room|space|apartment|place)"
    r"|what is the (?:size|area) of (?:the|this) (?:room|space)"
    r"|(?:the )?room (?:size|area))\b",
    re.I,
)
_FREE_COUNT = re.compile(
    r"^(?:how many (.+?)(?:\s+(?:are|is|were|was|do|did|does|have|has|can|could|in|on|near|around)\b.*)?"
    r"|count (?:the |all )?(.+?)|(?:what is )?the number of (.+?)(?:\s+in (?:the|this) room)?)$",
    re.I,
)
_FREE_ABS_DIST = [
    re.compile(r"^how far (?:away )?(?:is|are) " + _OBJ + r" (?:from|to) " + _OBJ + r"$", re.I),
    re.compile(r"^how far apart are " + _OBJ + r" and " + _OBJ + r"$", re.I),
    re.compile(r"^how far is it from " + _OBJ + r" to " + _OBJ + r"$", re.I),
    re.compile(r"^(?:what is )?the distance (?:between|from) " + _OBJ + r" (?:and|to) " + _OBJ + r"$", re.I),
]
_FREE_SIZE = [
    re.compile(r"^how (?:big|large|long|tall|wide) is " + _OBJ + r"$", re.I),
    re.compile(r"^what is the (?:size|length|longest (?:side|dimension)) of " + _OBJ + r"$", re.I),
    re.compile(r"^(?:the )?size of " + _OBJ + r"$", re.I),
]
_FREE_REL_DIST = [
    # which is closer to the bed, the sofa or the tv
    re.compile(r"^which (?:one |object )?is (?:closer|closest|nearer|nearest) to " + _OBJ + r"\s*[,:]\s*(.+)$", re.I),
    # which of the sofa, tv and lamp is closest to the bed
    re.compile(r"^which of (.+?) is (?:the )?(?:closer|closest|nearer|nearest) to " + _OBJ + r"$", re.I),
    # is the sofa or the tv closer to the bed
    re.compile(r"^is (.+?) (?:closer|nearer) to " + _OBJ + r"$", re.I),
]
_FREE_NEAREST_ANY = re.compile(
    r"^what(?: object)? is (?:the )?(?:closest|nearest)(?: object)? to " + _OBJ + r"$", re.I
)
_FREE_REL_DIR = re.compile(
    r"^if i (?:am standing|stand|was standing|were standing) (?:by|at|next to|near) " + _OBJ
    + r"(?:,)? (?:and )?(?:i am )?facing " + _OBJ + r"\s*,\s*(?:is|where is) " + _OBJ
    + r"(?:\s+(?:to|on) (.*))?$",
    re.I,
)
_FREE_ORDER = [
    # which did you see first, the sofa or the tv
    re.compile(r"^which (?:did you see|(?:one )?(?:was|did i) (?:seen|see)|appeared|appears) first\s*[,:]?\s*(.+)$", re.I),
    # in what order did you see the sofa, the tv and the bed
    re.compile(r"^in (?:what|which) order did (?:you|i) see (.+)$", re.I),
    re.compile(r"^what is the (?:first[- ]time )?appearance order of (.+)$", re.I),
]


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _parse_route_steps(text: str) -> list[tuple[str, str]]:
    """Numbered actions "1. Go forward until the x 2. [please fill in] 3. ..." -> steps."""
    m = re.search(r"following actions.*?\):\s*(.*)$", text, re.I | re.S)
    body = m.group(1) if m else text
    first = re.search(r"(?:^|\s)1\.\s", body)
    if first is None:
        raise QuestionError("The route question lists no numbered actions ('1. Go forward until the ...').")
    body = body[first.start():]
    raw_steps = [s for s in re.split(r"(?:^|\s)\d+\.\s+", body) if s.strip()]
    steps: list[tuple[str, str]] = []
    for raw in raw_steps:
        step = raw.strip()
        if re.match(r"\[?\s*please fill in\s*\]?", step, re.I):
            steps.append((STEP_FILL, ""))
            continue
        fwd = re.match(r"go forward (?:until|to) (?:you reach )?(?:the )?(.+?)(?:\.|,|$)", step, re.I)
        if fwd:
            steps.append((STEP_FORWARD, resolve_objects([fwd.group(1)])[0]))
            continue
        turn = re.match(r"turn (left|right|back|around)", step, re.I)
        if turn:
            word = turn.group(1).lower()
            steps.append((STEP_TURN, "back" if word == "around" else word))
            continue
        raise QuestionError(f"I do not understand the route step '{step}'.")
    if not any(kind == STEP_FORWARD for kind, _ in steps):
        raise QuestionError("The route question has no 'Go forward until the ...' step.")
    return steps


def _free_rel_direction_variant(tail: str) -> str:
    """Level of a free-form direction question from the answer words it mentions."""
    tail = tail.lower()
    if re.search(r"front[- ]?(?:left|right)|back[- ]?(?:left|right)|quadrant", tail):
        return "hard"
    if "back" in tail or "behind" in tail:
        return "medium"
    if "left" in tail or "right" in tail:
        return "easy"  # a left-or-right question wants one of two answers, as easy does
    return "hard"  # "where is the sofa": the most informative answer


def parse_question(text: str, options: list[str] | None = None) -> ParsedQuestion:
    """Parse a VSI-Bench or free-form question; raise QuestionError with a helpful message."""
    if text is None or not str(text).strip():
        raise QuestionError("The question is empty. Try e.g. " + "; ".join(f"'{e}'" for e in EXAMPLES[:4]) + ".")
    raw = str(text)
    norm = _normalise(raw)
    choices = [t for _, t in split_options(options)]

    def done(task: str, phrases: list[str], variant: str = "", **kw) -> ParsedQuestion:
        return ParsedQuestion(task=task, variant=variant, objects=resolve_objects(phrases), choices=choices, raw=raw, **kw)

    # ---- VSI-Bench templates
    if m := _VSI_ROUTE.search(norm):
        start, facing, end = resolve_objects([m.group(1), m.group(2), m.group(3)])
        steps = _parse_route_steps(norm)
        waypoints = [label for kind, label in steps if kind == STEP_FORWARD]
        if waypoints[-1] != end:
            waypoints.append(end)  # the plan must finish at the destination
            steps.append((STEP_FORWARD, end))
        return ParsedQuestion(
            task="route_planning", objects=[start, facing, *waypoints], choices=choices, raw=raw, route_steps=steps
        )
    if m := _VSI_REL_DIR.search(norm):
        lowered = norm.lower()
        if "front-left" in lowered or "quadrant" in lowered:
            variant = "hard"
        elif "left, right, or back" in lowered or "left, right or back" in lowered:
            variant = "medium"
        else:
            variant = "easy"
        return done("object_rel_direction", [m.group(1), m.group(2), m.group(3)], variant)
    if m := _VSI_REL_DIST.search(norm):
        return done("object_rel_distance", [m.group(2), *_split_list(m.group(1))])
    if m := _VSI_ORDER.search(norm):
        return done("obj_appearance_order", _split_list(m.group(1)))
    if m := _VSI_ABS_DIST.search(norm):
        return done("object_abs_distance", [m.group(1), m.group(2)])
    if m := _VSI_SIZE.search(norm):
        return done("object_size_estimation", [m.group(1)])
    if _VSI_ROOM.search(norm):
        return done("room_size_estimation", [])
    if m := _VSI_COUNT.search(norm):
        return done("object_counting", [_strip_plural_paren(m.group(1))])

    # ---- free form (one sentence, trailing punctuation dropped)
    short = norm.rstrip("?.! ").strip()
    if _FREE_ROOM.search(short):
        return done("room_size_estimation", [])
    if m := _FREE_REL_DIR.match(short):
        variant = _free_rel_direction_variant(m.group(4) or "")
        return done("object_rel_direction", [m.group(1), m.group(2), m.group(3)], variant)
    for pattern in _FREE_ORDER:
        if m := pattern.match(short):
            return done("obj_appearance_order", _split_list(m.group(1)))
    if m := _FREE_REL_DIST[0].match(short):
        return done("object_rel_distance", [m.group(1), *_split_list(m.group(2))])
    if m := _FREE_REL_DIST[1].match(short):
        return done("object_rel_distance", [m.group(2), *_split_list(m.group(1))])
    if m := _FREE_REL_DIST[2].match(short):
        return done("object_rel_distance", [m.group(2), *_split_list(m.group(1))])
    if m := _FREE_NEAREST_ANY.match(short):
        return done("object_rel_distance", [m.group(1)])
    for pattern in _FREE_ABS_DIST:
        if m := pattern.match(short):
            return done("object_abs_distance", [m.group(1), m.group(2)])
    for pattern in _FREE_SIZE:
        if m := pattern.match(short):
            return done("object_size_estimation", [m.group(1)])
    if m := _FREE_COUNT.match(short):
        phrase = next(g for g in m.groups() if g)
        return done("object_counting", [_strip_plural_paren(phrase)])

    raise QuestionError(
        f"I could not understand the question '{_normalise(raw)[:120]}'. "
        "I answer questions about counts, distances, sizes, the room size, which object is closest, "
        "directions, routes and the order objects were seen in, e.g. "
        + "; ".join(f"'{e}'" for e in EXAMPLES)
        + "."
    )


def _strip_plural_paren(phrase: str) -> str:
    """"chair(s)" -> "chair" (VSI-Bench writes the counted category that way)."""
    return re.sub(r"\((?:e?s)\)$", "", phrase.strip())


def parse_task_name(task: str) -> tuple[str, str]:
    """"object_rel_direction_hard" -> ("object_rel_direction", "hard"); QuestionError if unknown."""
    name = (task or "").strip().lower()
    if name in TASK_TYPES:
        return name, ""
    for variant in REL_DIRECTION_VARIANTS:
        if name == f"object_rel_direction_{variant}":
            return "object_rel_direction", variant
    known = list(TASK_TYPES) + [f"object_rel_direction_{v}" for v in REL_DIRECTION_VARIANTS]
    raise QuestionError(f"Unknown task type '{task}'. Known task types: {', '.join(known)}.")
