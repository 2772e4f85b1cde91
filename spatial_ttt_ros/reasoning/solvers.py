"""Exact geometry over an ``Inventory``: one solver per VSI-Bench task type.

Conventions (shared with the scene simulator's question generator):

- World frame REP-103, z up. Directions live on the floor plane (x, y) and are taken
  between object *centres*.
- A viewer standing at the centre of object p and facing the centre of object o sees
  object q at the signed angle ``atan2(cross, dot)`` of ``d_face = o - p`` and
  ``d_query = q - p``, positive counter-clockwise. "Left" is ``cross(d_face, d_query).z > 0``.
  easy: left/right of the line from p through o (sign of the cross product);
  medium: back when ``|angle| >= 135`` degrees, else left/right;
  hard: front when ``dot > 0`` else back, combined with left/right (quadrants).
- Distances "from the closest point of each object" are exact distances between the
  two boxes. Boxes only yaw about z, so each is a rectangle on the floor times a height
  interval and ``dist = sqrt(d_xy**2 + d_z**2)``, with ``d_xy`` the distance between the
  rotated footprints (0 when they overlap) and ``d_z`` the gap between the intervals.
- Size: the longest of the box's three extents, in centimetres.
- Route planning walks from the start centre, first facing the "facing" object; a
  "Go forward until X" step moves to X's centre and leaves the robot heading along that
  walk; each [please fill in] is the turn (left = +90 deg, right = -90 deg, back = 180)
  that points closest to the next walk. Among the options, the one with the smallest
  summed angle between the turned heading and the next walk is chosen.
- Appearance order sorts categories by ``first_seen`` of their earliest instance.

When a task needs *one* object of a class and the inventory holds several, the most
confident is used and the answer's confidence is scaled by its share of the class's
total confidence. A known class that has not been seen gives an Answer with
confidence 0 that says so (counting answers 0 with confidence 0.5: absence is weaker
evidence than presence). Multiple-choice answers pick an option when the objects
were seen; the confidence reflects the margin over the runner-up. When they were not,
no option is picked (an abstention: ``option == ""``), which scores 0.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np

from spatial_ttt_ros.classes import canonical_class
from spatial_ttt_ros.answer import Answer, QuestionError, UsedPosition
from spatial_ttt_ros.inventory import Inventory, InventoryObject
from spatial_ttt_ros.reasoning.parser import (
    STEP_FILL,
    STEP_FORWARD,
    STEP_TURN,
    ParsedQuestion,
    split_options,
)

TURN_DEGREES: dict[str, float] = {"left": 90.0, "right": -90.0, "back": 180.0}
# Angle of each direction word about the viewer's facing direction (CCW positive).
DIRECTION_DEGREES: dict[str, float] = {
    "front": 0.0,
    "left": 90.0,
    "right": -90.0,
    "back": 180.0,
    "front-left": 45.0,
    "front-right": -45.0,
    "back-left": 135.0,
    "back-right": -135.0,
}
# Decision boundaries of each rel_direction level (degrees), for the confidence margin.
_DIRECTION_BOUNDARIES: dict[str, tuple[float, ...]] = {
    "easy": (0.0, 180.0, -180.0),
    "medium": (0.0, 135.0, -135.0),
    "hard": (0.0, 90.0, -90.0, 180.0, -180.0),
}
MEDIUM_BACK_DEGREES = 135.0


# =========================================================================== geometry


def plural(label: str, n: int = 2) -> str:
    """"chair" -> "chairs", "couch" -> "couches" (n == 1 keeps the singular)."""
    if n == 1:
        return label
    if label.endswith(("s", "sh", "ch", "x")):
        return label + "es"
    return label + "s"


def footprint(obj: InventoryObject) -> np.ndarray:
    """(4, 2) floor corners of the yawed box, counter-clockwise."""
    half = obj.size[:2] / 2.0
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    rot = np.array([[c, -s], [s, c]])
    local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half
    return obj.center[:2] + local @ rot.T


def _polygons_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test for two convex polygons (touching counts as overlapping)."""
    for poly in (a, b):
        for i in range(len(poly)):
            edge = poly[(i + 1) % len(poly)] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            if not np.any(axis):
                continue  # degenerate edge (zero-size box side)
            pa, pb = a @ axis, b @ axis
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


def _points_to_segments(points: np.ndarray, poly: np.ndarray) -> float:
    """Smallest distance from any of ``points`` (N, 2) to any edge of ``poly`` (M, 2)."""
    s0 = poly
    seg = np.roll(poly, -1, axis=0) - poly  # (M, 2) edge vectors
    rel = points[:, None, :] - s0[None, :, :]  # (N, M, 2)
    length2 = np.einsum("md,md->m", seg, seg)
    t = np.einsum("nmd,md->nm", rel, seg) / np.where(length2 > 0.0, length2, 1.0)
    t = np.clip(t, 0.0, 1.0)
    nearest = s0[None, :, :] + t[..., None] * seg[None, :, :]
    return float(np.sqrt(((points[:, None, :] - nearest) ** 2).sum(axis=-1)).min())


def polygon_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two convex polygons (0 when they overlap).

    Between disjoint convex polygons the closest pair always involves a vertex of one
    and an edge of the other, so checking all vertex-edge pairs is exact.
    """
    if _polygons_overlap(a, b):
        return 0.0
    return min(_points_to_segments(a, b), _points_to_segments(b, a))


def vertical_gap(a: InventoryObject, b: InventoryObject) -> float:
    a_lo, a_hi = a.center[2] - a.size[2] / 2, a.center[2] + a.size[2] / 2
    b_lo, b_hi = b.center[2] - b.size[2] / 2, b.center[2] + b.size[2] / 2
    return float(max(0.0, b_lo - a_hi, a_lo - b_hi))


def closest_box_distance(a: InventoryObject, b: InventoryObject) -> float:
    """Exact distance in metres between the closest points of two z-yawed boxes."""
    d_xy = polygon_distance(footprint(a), footprint(b))
    return math.hypot(d_xy, vertical_gap(a, b))


def relative_angle(standing: np.ndarray, facing: np.ndarray, query: np.ndarray) -> float:
    """Signed floor-plane angle (degrees, CCW = left positive) of query seen from standing facing facing."""
    d_face = np.asarray(facing, dtype=np.float64)[:2] - np.asarray(standing, dtype=np.float64)[:2]
    d_query = np.asarray(query, dtype=np.float64)[:2] - np.asarray(standing, dtype=np.float64)[:2]
    cross = d_face[0] * d_query[1] - d_face[1] * d_query[0]
    dot = float(d_face @ d_query)
    return math.degrees(math.atan2(cross, dot))


def relative_direction(angle_deg: float, variant: str) -> str:
    """Direction word of a rel_direction level for a signed angle (see module conventions)."""
    left = angle_deg > 0.0
    if variant == "easy":
        return "left" if left else "right"
    if variant == "medium":
        if abs(angle_deg) >= MEDIUM_BACK_DEGREES:
            return "back"
        return "left" if left else "right"
    if variant == "hard":
        front = abs(angle_deg) < 90.0  # dot > 0
        return f"{'front' if front else 'back'}-{'left' if left else 'right'}"
    raise QuestionError(f"Unknown direction level '{variant}' (easy, medium or hard).")


def _wrap_degrees(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


def _heading_degrees(vec: np.ndarray) -> float:
    return math.degrees(math.atan2(vec[1], vec[0]))


def route_cost(
    start_xy: np.ndarray,
    facing_xy: np.ndarray,
    steps: list[tuple[str, np.ndarray | str]],
    turns: list[str],
) -> float:
    """Summed |angle| (degrees) between the heading after each chosen turn and the walk that follows.

    ``steps`` are ("forward", target_xy), ("fill", "") or ("turn", word); ``turns``
    fills the "fill" steps in order. Only walks that follow a fill are charged: the
    given steps are facts of the plan, the fills are what is being chosen.
    """
    position = np.asarray(start_xy, dtype=np.float64)
    heading = _heading_degrees(np.asarray(facing_xy, dtype=np.float64) - position)
    pending_fill = False
    cost = 0.0
    fills = iter(turns)
    for kind, arg in steps:
        if kind == STEP_FILL:
            heading += TURN_DEGREES[next(fills)]
            pending_fill = True
        elif kind == STEP_TURN:
            heading += TURN_DEGREES[str(arg)]
        elif kind == STEP_FORWARD:
            walk = np.asarray(arg, dtype=np.float64) - position
            if np.linalg.norm(walk) > 1e-9:
                walk_heading = _heading_degrees(walk)
                if pending_fill:
                    cost += abs(_wrap_degrees(walk_heading - heading))
                heading = walk_heading
                position = np.asarray(arg, dtype=np.float64)
            pending_fill = False
    return cost


def best_route_turns(start_xy, facing_xy, steps) -> tuple[list[str], float]:
    """The fill-in turns with the smallest route_cost (exhaustive: plans have a few fills)."""
    n_fill = sum(1 for kind, _ in steps if kind == STEP_FILL)
    if n_fill == 0:
        return [], route_cost(start_xy, facing_xy, steps, [])
    best: tuple[list[str], float] = ([], math.inf)
    for combo in itertools.product(("left", "right", "back"), repeat=n_fill):
        cost = route_cost(start_xy, facing_xy, steps, list(combo))
        if cost < best[1] - 1e-9:
            best = (list(combo), cost)
    return best


# =========================================================================== helpers


def _pick(inventory: Inventory, label: str) -> tuple[InventoryObject | None, float]:
    """Most confident instance of ``label`` and its share of the class's confidence."""
    instances = inventory.of_class(label)
    if not instances:
        return None, 0.0
    best = max(instances, key=lambda o: o.confidence)
    total = sum(max(o.confidence, 0.0) for o in instances)
    share = 1.0 if total <= 0.0 else max(best.confidence, 0.0) / total
    return best, float(np.clip(best.confidence, 0.0, 1.0) * share)


def _used(*objs: InventoryObject) -> list[UsedPosition]:
    return [UsedPosition(label=o.label, position=o.center.copy()) for o in objs]


def _margin_confidence(margin: float, scale: float, n_options: int) -> float:
    """Chance level plus the rest scaled by how clear the winner is."""
    chance = 1.0 / max(n_options, 1)
    return chance + (1.0 - chance) * float(np.clip(margin / scale, 0.0, 1.0))


def _not_seen(task: str, missing: list[str], what: str, options=None) -> Answer:
    names = " or ".join(f"the {m}" for m in missing)
    answer = Answer(task=task, text=f"I have not seen {names} yet, so I cannot tell {what}.", confidence=0.0)
    # No option is chosen: an abstention, which scoring counts as wrong. (Picking the first
    # option here once let a blind memory score wherever the truth happened to be A.)
    return answer


def _option_label(text: str) -> str | None:
    return canonical_class(re.sub(r"^(?:the|a|an)\s+", "", text.strip().lower()))


def _require(parsed: ParsedQuestion, n: int, what: str) -> None:
    if len(parsed.objects) < n:
        raise QuestionError(f"{parsed.task} needs {what}; got {parsed.objects or 'no objects'}.")


# =========================================================================== solvers


def solve_counting(parsed: ParsedQuestion, inventory: Inventory, options=None) -> Answer:
    _require(parsed, 1, "one object class")
    label = parsed.objects[0]
    instances = inventory.of_class(label)
    n = len(instances)
    if n == 0:
        return Answer(
            task="object_counting", text=f"I have not seen any {plural(label)}.", value=0.0, unit="count", confidence=0.5
        )
    confidence = float(np.mean([np.clip(o.confidence, 0.0, 1.0) for o in instances]))
    verb = "is" if n == 1 else "are"
    return Answer(
        task="object_counting",
        text=f"There {verb} {n} {plural(label, n)}.",
        value=float(n),
        unit="count",
        confidence=confidence,
        positions=_used(*instances),
    )


def solve_abs_distance(parsed: ParsedQuestion, inventory: Inventory, options=None) -> Answer:
    _require(parsed, 2, "two objects")
    la, lb = parsed.objects[:2]
    a, ca = _pick(inventory, la)
    if la == lb:  # "distance between the two chairs": the two most confident instances
        others = sorted(inventory.of_class(la), key=lambda o: -o.confidence)
        b, cb = (others[1], float(np.clip(others[1].confidence, 0, 1))) if len(others) > 1 else (None, 0.0)
    else:
        b, cb = _pick(inventory, lb)
    missing = [lab for lab, o in ((la, a), (lb, b)) if o is None]
    if missing:
        return _not_seen("object_abs_distance", missing, f"how far apart the {la} and the {lb} are")
    dist = closest_box_distance(a, b)
    return Answer(
        task="object_abs_distance",
        text=f"The {la} and the {lb} are {dist:.2f} m apart (closest points).",
        value=dist,
        unit="m",
        confidence=ca * cb,
        positions=_used(a, b),
    )


def solve_size(parsed: ParsedQuestion, inventory: Inventory, options=None) -> Answer:
    _require(parsed, 1, "one object")
    label = parsed.objects[0]
    obj, conf = _pick(inventory, label)
    if obj is None:
        return _not_seen("object_size_estimation", [label], "how big it is")
    longest_cm = float(np.max(obj.size)) * 100.0
    return Answer(
        task="object_size_estimation",
        text=f"The longest side of the {label} is about {longest_cm:.0f} cm.",
        value=longest_cm,
        unit="cm",
        confidence=conf,
        positions=_used(obj),
    )


def solve_room_size(parsed: ParsedQuestion, inventory: Inventory, options=None) -> Answer:
    if inventory.room is not None:
        area = float(inventory.room.area_m2)
        return Answer(
            task="room_size_estimation",
            text=f"The space seen so far is about {area:.1f} square metres.",
            value=area,
            unit="m^2",
            confidence=1.0,
        )
    if inventory.objects:
        # No room extent decoded: the objects' floor bounding box is a lower bound.
        corners = np.concatenate([footprint(o) for o in inventory.objects])
        extent = corners.max(axis=0) - corners.min(axis=0)
        area = float(extent[0] * extent[1])
        return Answer(
            task="room_size_estimation",
            text=f"I have no room extent yet; the objects seen span about {area:.1f} square metres.",
            value=area,
            unit="m^2",
            confidence=0.2,
        )
    return Answer(
        task="room_size_estimation", text="I have not seen the room yet.", unit="m^2", confidence=0.0
    )


def solve_rel_distance(parsed: ParsedQuestion, inventory: Inventory, options=None) -> Answer:
    _require(parsed, 1, "a reference object")
    ref_label = parsed.objects[0]
    pairs = split_options(options)
    candidates = list(parsed.objects[1:])
    option_labels = [lab for lab in (_option_label(t) for _, t in pairs) if lab]
    ref, ref_conf = _pick(inventory, ref_label)
    if ref is None:
        return _not_seen("object_rel_distance", [ref_label], f"what is closest to the {ref_label}", options)

    # Each candidate category is as close as its closest instance (VSI-Bench's rule).
    nearest: dict[str, tuple[float, InventoryObject | None]] = {}
    pool = list(dict.fromkeys(candidates + option_labels)) or sorted({o.label for o in inventory.objects})
    for label in pool:
        instances = [o for o in inventory.of_class(label) if o is not ref]
        if instances:
            dists = [closest_box_distance(ref, o) for o in instances]
            i = int(np.argmin(dists))
            nearest[label] = (dists[i], instances[i])
        else:
            nearest[label] = (math.inf, None)

    if pairs:
        scored = [(nearest.get(_option_label(t) or "", (math.inf, None))[0], letter, t) for letter, t in pairs]
    else:
        scored = [(d, "", label) for label, (d, _) in nearest.items()]
    scored.sort(key=lambda s: s[0])
    best_d, letter, choice = scored[0]
    if not math.isfinite(best_d):
        missing = candidates or option_labels or ["any other object"]
        return _not_seen("object_rel_distance", missing, f"which is closest to the {ref_label}", options)
    second_d = scored[1][0] if len(scored) > 1 else math.inf
    margin = 1.0 if not math.isfinite(second_d) else (second_d - best_d) / max(second_d, 1e-6)
    best_label = _option_label(choice) if pairs else choice
    best_obj = nearest[best_label][1]
    confidence = ref_conf * float(np.clip(best_obj.confidence, 0, 1)) * _margin_confidence(margin, 0.25, len(scored))
    return Answer(
        task="object_rel_distance",
        text=f"The {best_label} is closest to the {ref_label} ({best_d:.2f} m, closest points).",
        option=letter,
        choice=choice,
        confidence=confidence,
        positions=_used(ref, best_obj),
    )


def _match_direction_option(pairs: list[tuple[str, str]], word: str, angle: float) -> tuple[str, str]:
    """The option naming ``word``; if none does, the option whose direction is nearest ``angle``."""
    def norm(t: str) -> str:
        return re.sub(r"[\s_]+", "-", t.strip().lower().rstrip("."))

    for letter, text in pairs:
        if norm(text) == word:
            return letter, text
    best = min(
        pairs,
        key=lambda p: abs(_wrap_degrees(DIRECTION_DEGREES.get(norm(p[1]), math.inf) - angle))
        if norm(p[1]) in DIRECTION_DEGREES
        else math.inf,
    )
    return best


def solve_rel_direction(parsed: ParsedQuestion, inventory: Inventory, options=None) -> Answer:
    _require(parsed, 3, "three objects (standing by, facing, and the one asked about)")
    variant = parsed.variant or "hard"
    lp, lo, lq = parsed.objects[:3]
    (p, cp), (o, co), (q, cq) = _pick(inventory, lp), _pick(inventory, lo), _pick(inventory, lq)
    missing = [lab for lab, obj in ((lp, p), (lo, o), (lq, q)) if obj is None]
    if missing:
        return _not_seen("object_rel_direction", missing, f"where the {lq} is", options)
    angle = relative_angle(p.center, o.center, q.center)
    word = relative_direction(angle, variant)
    margin = min(abs(_wrap_degrees(angle - b)) for b in _DIRECTION_BOUNDARIES[variant])
    pairs = split_options(options)
    letter, choice = _match_direction_option(pairs, word, angle) if pairs else ("", word)
    n_choices = len(pairs) or {"easy": 2, "medium": 3, "hard": 4}[variant]
    if variant == "easy":
        text = f"Standing by the {lp} facing the {lo}, the {lq} is to the {word} of the {lo}."
    elif word == "back":
        text = f"Standing by the {lp} facing the {lo}, the {lq} is behind me."
    else:
        text = f"Standing by the {lp} facing the {lo}, the {lq} is to my {word}."
    return Answer(
        task="object_rel_direction",
        text=text + f" ({angle:+.0f} deg)",
        option=letter,
        choice=choice,
        confidence=cp * co * cq * _margin_confidence(margin, 20.0, n_choices),
        positions=_used(p, o, q),
    )


def parse_turns(text: str) -> list[str] | None:
    """"Turn Left, Turn Back" -> ["left", "back"]; None if the text is not a turn list."""
    turns = []
    for part in re.split(r"\s*,\s*|\s+then\s+", text.strip().rstrip(".")):
        m = re.fullmatch(r"(?:turn\s+)?(left|right|back|around)", part.strip(), re.I)
        if not m:
            return None
        word = m.group(1).lower()
        turns.append("back" if word == "around" else word)
    return turns


def _route_steps(parsed: ParsedQuestion, n_option_turns: int | None) -> list[tuple[str, str]]:
    """The plan's steps; for structured queries (no text) a fill before each walk after the first.

    When options say how many turns to fill and that equals the number of walks, a
    fill comes before the first walk too.
    """
    if parsed.route_steps:
        return parsed.route_steps
    walks = parsed.objects[2:]
    fill_first = n_option_turns is not None and n_option_turns == len(walks)
    steps: list[tuple[str, str]] = []
    for i, label in enumerate(walks):
        if i > 0 or fill_first:
            steps.append((STEP_FILL, ""))
        steps.append((STEP_FORWARD, label))
    return steps


def solve_route(parsed: ParsedQuestion, inventory: Inventory, options=None) -> Answer:
    _require(parsed, 3, "a start, a facing object and a destination")
    pairs = split_options(options)
    option_turns = [(letter, text, parse_turns(text)) for letter, text in pairs]
    n_turns = next((len(t) for _, _, t in option_turns if t is not None), None)
    steps = _route_steps(parsed, n_turns)
    labels = [parsed.objects[0], parsed.objects[1], *[lab for kind, lab in steps if kind == STEP_FORWARD]]
    picked = {lab: _pick(inventory, lab) for lab in dict.fromkeys(labels)}
    missing = [lab for lab, (obj, _) in picked.items() if obj is None]
    end = parsed.objects[-1]
    if missing:
        return _not_seen("route_planning", missing, f"how to get to the {end}", options)
    xy = {lab: obj.center[:2] for lab, (obj, _) in picked.items()}
    geo_steps = [(kind, xy[arg] if kind == STEP_FORWARD else arg) for kind, arg in steps]
    start_xy, facing_xy = xy[parsed.objects[0]], xy[parsed.objects[1]]
    n_fill = sum(1 for kind, _ in steps if kind == STEP_FILL)
    object_conf = float(np.prod([c for _, c in picked.values()]))
    used = _used(*[obj for obj, _ in picked.values()])

    if pairs:
        costs = []
        for letter, text, turns in option_turns:
            ok = turns is not None and len(turns) == n_fill
            costs.append((route_cost(start_xy, facing_xy, geo_steps, turns) if ok else math.inf, letter, text))
        costs.sort(key=lambda c: c[0])
        best_cost, letter, choice = costs[0]
        if not math.isfinite(best_cost):
            raise QuestionError(
                f"None of the options {list(options)} is a list of {n_fill} turn(s) (left, right or back)."
            )
        second = costs[1][0] if len(costs) > 1 else math.inf
        margin = 180.0 if not math.isfinite(second) else second - best_cost
        turns = parse_turns(choice) or []
        confidence = object_conf * _margin_confidence(margin, 45.0, len(costs))
    else:
        turns, best_cost = best_route_turns(start_xy, facing_xy, geo_steps)
        letter, choice = "", ", ".join(f"Turn {t.capitalize()}" for t in turns)
        confidence = object_conf * (1.0 - float(np.clip(best_cost / max(n_fill, 1) / 90.0, 0.0, 1.0)))

    # The plan in words, with the chosen turns in place of the fills.
    words, fills = [], iter(turns)
    for kind, arg in steps:
        if kind == STEP_FORWARD:
            words.append(f"go forward to the {arg}")
        elif kind == STEP_FILL:
            words.append(f"turn {next(fills, '?')}")
        else:
            words.append(f"turn {arg}")
    text = f"From the {parsed.objects[0]} facing the {parsed.objects[1]}: " + ", ".join(words) + "."
    return Answer(
        task="route_planning", text=text, option=letter, choice=choice, confidence=confidence, positions=used
    )


def _concordance(predicted: list[str], proposed: list[str], times: dict[str, float]) -> float:
    """Fraction of category pairs that ``proposed`` orders as ``times`` do (ties count half)."""
    if sorted(proposed) != sorted(predicted):
        return -1.0  # a different set of categories cannot be the answer
    n = len(proposed)
    if n < 2:
        return 1.0
    agree = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            ti, tj = times[proposed[i]], times[proposed[j]]
            agree += 1.0 if ti < tj else (0.5 if ti == tj else 0.0)
    return agree / (n * (n - 1) / 2)


def solve_appearance_order(parsed: ParsedQuestion, inventory: Inventory, options=None) -> Answer:
    pairs = split_options(options)
    categories = list(parsed.objects)
    if not categories and pairs:
        categories = [lab for lab in (_option_label(t) for t in pairs[0][1].split(",")) if lab]
    if len(categories) < 2:
        raise QuestionError("obj_appearance_order needs at least two object classes.")
    times: dict[str, float] = {}
    firsts: list[InventoryObject] = []
    for label in categories:
        instances = inventory.of_class(label)
        if instances:
            first = min(instances, key=lambda o: o.first_seen)
            times[label] = float(first.first_seen)
            firsts.append(first)
        else:
            times[label] = math.inf  # not seen yet: after everything seen
    seen = [c for c in categories if math.isfinite(times[c])]
    if not seen:
        return _not_seen("obj_appearance_order", categories, "in which order they appeared", options)
    order = sorted(categories, key=lambda c: (times[c], categories.index(c)))
    seen_share = len(seen) / len(categories)

    if pairs:
        scored = []
        for letter, text in pairs:
            proposed = [_option_label(t) or t.strip() for t in text.split(",")]
            scored.append((_concordance(order, proposed, times), letter, text))
        scored.sort(key=lambda s: -s[0])
        best, letter, choice = scored[0]
        second = scored[1][0] if len(scored) > 1 else -1.0
        confidence = seen_share * _margin_confidence(best - max(second, 0.0), 0.34, len(scored))
    else:
        letter, choice = "", ", ".join(order)
        gaps = np.diff([times[c] for c in order if math.isfinite(times[c])])
        clear = 1.0 if gaps.size == 0 else float(np.clip(gaps.min() / 1.0, 0.0, 1.0))  # a second apart is clear
        confidence = seen_share * (0.5 + 0.5 * clear)
    listed = ", ".join(f"the {c}" + (f" ({times[c]:.1f} s)" if math.isfinite(times[c]) else " (not seen)") for c in order)
    return Answer(
        task="obj_appearance_order",
        text=f"First seen in this order: {listed}.",
        option=letter,
        choice=choice,
        confidence=confidence,
        positions=_used(*sorted(firsts, key=lambda o: o.first_seen)),
    )


SOLVERS = {
    "object_counting": solve_counting,
    "object_abs_distance": solve_abs_distance,
    "object_size_estimation": solve_size,
    "room_size_estimation": solve_room_size,
    "object_rel_distance": solve_rel_distance,
    "object_rel_direction": solve_rel_direction,
    "route_planning": solve_route,
    "obj_appearance_order": solve_appearance_order,
}


def solve(parsed: ParsedQuestion, inventory: Inventory, options=None) -> Answer:
    """Answer a parsed question from the inventory (dispatch on ``parsed.task``)."""
    solver = SOLVERS.get(parsed.task)
    if solver is None:
        raise QuestionError(f"Unknown task type '{parsed.task}'. Known: {', '.join(SOLVERS)}.")
    return solver(parsed, inventory, options)
