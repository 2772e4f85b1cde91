"""VSI-Bench questions with exact answers, from a scene and what the camera saw.

Conventions (the answer functions below are small and tested on their own):

- Only objects the camera actually saw (``first_seen``) are asked about.
- A question that names one object (distance, size, direction, route) only uses
  categories with exactly one instance in the whole scene, and that instance seen.
- Distances (``object_abs_distance``, ``object_rel_distance``) are between the
  closest points of the objects' oriented 3D bounding boxes (upright boxes:
  ``closest_box_distance``). For ``object_rel_distance`` an option category may
  have several instances; its distance is that of its nearest seen instance, and
  the question is only asked when the nearest option wins by at least 0.15 m.
- Sizes: the longest of the bounding box's l, w, h, in centimetres.
- Room size: total floor area (inside the walls) of the rooms the camera stood in.
- Directions and routes use object centres projected on the floor plane (world
  x, y; z up). Angles are counter-clockwise, so a positive angle is to the left.
  "Standing by P facing O": origin at P's centre, forward towards O's centre.
  easy: left / right of the line of sight; medium: back when |angle| >= 135 deg,
  else left / right; hard: front-left, front-right, back-left, back-right
  quadrants. Cases within a margin of a boundary are not asked.
- Routes: after "go forward until X" the walker's heading is the direction it
  came from; the turn towards the next object is left / right for 45-135 deg,
  back beyond 135 deg, and a leg that needs no turn (< 45 deg) is not asked.
- Appearance order: a category appears when its first instance is first seen;
  the four categories' first appearances must be at least 1 s apart.

Numeric ground truths: counts as integers, metres and square metres to 2
decimals, centimetres to the nearest centimetre. Choice ground truths are the
option letter. Record ids are ``{scene_name}-{n:04d}`` in generation order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from spatial_ttt_ros.sim.geometry2d import box_footprint, polygon_distance
from spatial_ttt_ros.sim.scene_types import Scene, SceneObject

LETTERS = "ABCD"
REL_DISTANCE_MARGIN = 0.15  # metres between the closest and the second closest option
APPEARANCE_GAP = 1.0  # seconds between consecutive first appearances
ANGLE_MARGIN = 12.0  # degrees kept clear of every direction boundary
MIN_PAIR_DISTANCE = 0.2  # metres: closer pairs (touching objects) make poor distance questions

TEMPLATES = {
    "object_counting": "How many {category}(s) are in this room?",
    "object_abs_distance": (
        "Measuring from the closest point of each object, what is the direct distance between the {a} and the {b} "
        "(in meters)?"
    ),
    "object_size_estimation": (
        "What is the length of the longest dimension (length, width, or height) of the {a}, measured in centimeters?"
    ),
    "room_size_estimation": (
        "What is the size of this room (in square meters)? If multiple rooms are shown, estimate the size of the "
        "combined space."
    ),
    "object_rel_distance": (
        "Measuring from the closest point of each object, which of these objects ({c1}, {c2}, {c3}, {c4}) is the "
        "closest to the {a}?"
    ),
    "object_rel_direction_easy": (
        "If I am standing by the {p} and facing the {o}, is the {q} to the left or the right of the {o}?"
    ),
    "object_rel_direction_medium": (
        "If I am standing by the {p} and facing the {o}, is the {q} to my left, right, or back? An object is to my "
        "back if I would have to turn at least 135 degrees in order to face it."
    ),
    "object_rel_direction_hard": (
        "If I am standing by the {p} and facing the {o}, is the {q} to my front-left, front-right, back-left, or "
        "back-right? The directions refer to the quadrants of a Cartesian plane (if I am standing at the origin and "
        "facing along the positive y-axis)."
    ),
    "route_planning": (
        "You are a robot beginning at the {start} facing the {facing}. You want to navigate to the {end}. You will "
        "perform the following actions (Note: for each [please fill in], choose either 'turn back,' 'turn left,' or "
        "'turn right.'): {steps} You have reached the final destination."
    ),
    "obj_appearance_order": (
        "What will be the first-time appearance order of the following categories in the video: {a}, {b}, {c}, {d}?"
    ),
}

DIRECTION_OPTIONS = {
    "object_rel_direction_easy": ["left", "right"],
    "object_rel_direction_medium": ["left", "right", "back"],
    "object_rel_direction_hard": ["front-left", "front-right", "back-left", "back-right"],
}
TURNS = ("Turn Left", "Turn Right", "Turn Back")

# ----------------------------------------------------------------------------- answer functions


def _interval_gap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, b0 - a1, a0 - b1)


def closest_box_distance(a: SceneObject, b: SceneObject) -> float:
    """Distance in metres between the closest points of two upright oriented boxes.

    For prisms (footprint x height interval) the squared distance separates into the
    squared footprint distance plus the squared vertical gap, so this is exact.
    """
    d_xy = polygon_distance(box_footprint(a.center[:2], a.size[:2], a.yaw), box_footprint(b.center[:2], b.size[:2], b.yaw))
    d_z = _interval_gap(a.center[2] - a.size[2] / 2, a.center[2] + a.size[2] / 2,
                        b.center[2] - b.size[2] / 2, b.center[2] + b.size[2] / 2)
    return float(math.hypot(d_xy, d_z))


def longest_side_cm(obj: SceneObject) -> float:
    return float(np.max(obj.size) * 100.0)


def relative_angle(standing: np.ndarray, facing: np.ndarray, target: np.ndarray) -> float:
    """Degrees from the line of sight (standing -> facing) to target, on the floor; + = left (counter-clockwise)."""
    f = np.asarray(facing, dtype=np.float64)[:2] - np.asarray(standing, dtype=np.float64)[:2]
    t = np.asarray(target, dtype=np.float64)[:2] - np.asarray(standing, dtype=np.float64)[:2]
    return math.degrees(math.atan2(f[0] * t[1] - f[1] * t[0], f[0] * t[0] + f[1] * t[1]))


def _clear(angle: float, boundaries: Sequence[float], margin: float) -> bool:
    return all(abs(abs(angle) - b) >= margin for b in boundaries)


def direction_easy(angle: float, margin: float = ANGLE_MARGIN) -> str | None:
    """'left' / 'right' of the line of sight, or None within ``margin`` of straight ahead or behind."""
    if not _clear(angle, (0.0, 180.0), margin):
        return None
    return "left" if angle > 0 else "right"


def direction_medium(angle: float, margin: float = ANGLE_MARGIN) -> str | None:
    """'back' when |angle| >= 135, else 'left' / 'right'; None near 0 or 135 degrees."""
    if not _clear(angle, (0.0, 135.0), margin):
        return None
    if abs(angle) >= 135.0:
        return "back"
    return "left" if angle > 0 else "right"


def direction_hard(angle: float, margin: float = ANGLE_MARGIN) -> str | None:
    """Quadrant ('front-left', 'front-right', 'back-left', 'back-right'); None near an axis."""
    if not _clear(angle, (0.0, 90.0, 180.0), margin):
        return None
    front = "front" if abs(angle) < 90.0 else "back"
    side = "left" if angle > 0 else "right"
    return f"{front}-{side}"


def turn_between(previous: np.ndarray, at: np.ndarray, following: np.ndarray, margin: float = ANGLE_MARGIN) -> str | None:
    """The turn at ``at`` when arriving from ``previous`` and heading to ``following``.

    'Turn Left' / 'Turn Right' for 45-135 deg, 'Turn Back' beyond 135 deg; None when
    no turn is needed (< 45 deg) or within ``margin`` of 45 or 135 deg.
    """
    heading_point = 2 * np.asarray(at, dtype=np.float64)[:2] - np.asarray(previous, dtype=np.float64)[:2]
    angle = relative_angle(at, heading_point, following)
    if not _clear(angle, (45.0, 135.0), margin) or abs(angle) < 45.0:
        return None
    if abs(angle) >= 135.0:
        return "Turn Back"
    return "Turn Left" if angle > 0 else "Turn Right"


def appearance_order(first_times: dict[str, float]) -> list[str]:
    """Categories sorted by first appearance time (ties broken by name)."""
    return [c for c, _ in sorted(first_times.items(), key=lambda kv: (kv[1], kv[0]))]


def floor_xy(obj: SceneObject) -> np.ndarray:
    return np.asarray(obj.center[:2], dtype=np.float64)


# ----------------------------------------------------------------------------- generation


def _letter_options(texts: list[str]) -> list[str]:
    return [f"{LETTERS[i]}. {t}" for i, t in enumerate(texts)]


class _Builder:
    def __init__(self, scene: Scene, first_seen: dict[int, float], rng: np.random.Generator, scene_name: str,
                 visited_rooms: list[int], per_type: int):
        self.scene, self.rng, self.scene_name, self.per_type = scene, rng, scene_name, per_type
        self.first_seen = {int(k): float(v) for k, v in first_seen.items()}
        self.visited_rooms = visited_rooms
        self.seen = [o for o in scene.objects if o.instance_id in self.first_seen]
        counts: dict[str, int] = {}
        for o in scene.objects:
            counts[o.label] = counts.get(o.label, 0) + 1
        self.scene_counts = counts
        # Categories with exactly one instance in the scene, and it was seen: unambiguous single objects.
        self.unique = [o for o in self.seen if counts[o.label] == 1]
        self.seen_by_class: dict[str, list[SceneObject]] = {}
        for o in self.seen:
            self.seen_by_class.setdefault(o.label, []).append(o)
        self.records: list[dict] = []

    def _add(self, qtype: str, question: str, options: list[str], gt) -> None:
        self.records.append({
            "id": f"{self.scene_name}-{len(self.records):04d}",
            "scene_name": self.scene_name,
            "question_type": qtype,
            "question": question,
            "options": options,
            "ground_truth": gt,
        })

    def _shuffled(self, items: list) -> list:
        return [items[int(i)] for i in self.rng.permutation(len(items))]

    def _choice(self, correct: str, distractors: list[str]) -> tuple[list[str], str]:
        texts = self._shuffled([correct] + distractors)
        return _letter_options(texts), LETTERS[texts.index(correct)]

    # ---- numeric tasks
    def counting(self) -> None:
        # A class is counted only when every instance of it was seen (otherwise the video cannot tell).
        classes = [c for c in self.seen_by_class if len(self.seen_by_class[c]) == self.scene_counts[c]]
        for c in self._shuffled(sorted(classes))[: self.per_type]:
            self._add("object_counting", TEMPLATES["object_counting"].format(category=c), [], len(self.seen_by_class[c]))

    def abs_distance(self) -> None:
        pairs = [(a, b) for a, b in itertools.combinations(self.unique, 2)
                 if closest_box_distance(a, b) >= MIN_PAIR_DISTANCE]
        for a, b in self._shuffled(pairs)[: self.per_type]:
            if self.rng.random() < 0.5:
                a, b = b, a
            q = TEMPLATES["object_abs_distance"].format(a=a.label, b=b.label)
            self._add("object_abs_distance", q, [], round(closest_box_distance(a, b), 2))

    def size(self) -> None:
        for a in self._shuffled(list(self.unique))[: self.per_type]:
            q = TEMPLATES["object_size_estimation"].format(a=a.label)
            self._add("object_size_estimation", q, [], int(round(longest_side_cm(a))))

    def room_size(self) -> None:
        if not self.visited_rooms:
            return
        area = sum(self.scene.rooms[r].area_m2 for r in self.visited_rooms)
        self._add("room_size_estimation", TEMPLATES["room_size_estimation"], [], round(float(area), 2))

    # ---- choice tasks
    def rel_distance(self) -> None:
        made = 0
        for a in self._shuffled(list(self.unique)):
            if made >= self.per_type:
                break
            others = [c for c in sorted(self.seen_by_class) if c != a.label]
            if len(others) < 4:
                continue
            dist = {c: min(closest_box_distance(a, o) for o in self.seen_by_class[c]) for c in others}
            for _ in range(6):  # a few draws of four option categories for this target
                cats = self._shuffled(others)[:4]
                ranked = sorted(cats, key=lambda c: dist[c])
                if dist[ranked[1]] - dist[ranked[0]] < REL_DISTANCE_MARGIN:
                    continue
                options = _letter_options(cats)
                q = TEMPLATES["object_rel_distance"].format(c1=cats[0], c2=cats[1], c3=cats[2], c4=cats[3], a=a.label)
                self._add("object_rel_distance", q, options, LETTERS[cats.index(ranked[0])])
                made += 1
                break

    def rel_direction(self) -> None:
        triples = [t for t in itertools.permutations(self.unique, 3)
                   if np.linalg.norm(floor_xy(t[1]) - floor_xy(t[0])) >= 0.5
                   and np.linalg.norm(floor_xy(t[2]) - floor_xy(t[0])) >= 0.5]
        for qtype, fn in (("object_rel_direction_easy", direction_easy),
                          ("object_rel_direction_medium", direction_medium),
                          ("object_rel_direction_hard", direction_hard)):
            made = 0
            for p, o, q in self._shuffled(triples):  # a fresh draw per level
                if made >= self.per_type:
                    break
                answer = fn(relative_angle(floor_xy(p), floor_xy(o), floor_xy(q)))
                if answer is None:
                    continue
                texts = DIRECTION_OPTIONS[qtype]
                question = TEMPLATES[qtype].format(p=p.label, o=o.label, q=q.label)
                self._add(qtype, question, _letter_options(texts), LETTERS[texts.index(answer)])
                made += 1

    def route(self) -> None:
        """Routes start -> x (-> y) -> end with one or two turns to fill in."""
        objs = self.unique
        if len(objs) < 3:
            return
        made = 0
        candidates = []
        for n_turns in (1, 2):
            for chain in itertools.permutations(objs, n_turns + 2):
                candidates.append(chain)
        for chain in self._shuffled(candidates):
            if made >= self.per_type:
                break
            pts = [floor_xy(o) for o in chain]
            if min(np.linalg.norm(pts[i + 1] - pts[i]) for i in range(len(pts) - 1)) < 0.8:
                continue
            turns = [turn_between(pts[i - 1], pts[i], pts[i + 1]) for i in range(1, len(pts) - 1)]
            if any(t is None for t in turns):
                continue
            start, first = chain[0], chain[1]
            # Facing: another object roughly in the first leg's direction, else the first waypoint itself.
            facing = first
            for o in self._shuffled([o for o in objs if o not in chain]):
                ang = relative_angle(pts[0], pts[1], floor_xy(o))
                if abs(ang) < 20.0 and np.linalg.norm(floor_xy(o) - pts[0]) >= 0.8:
                    facing = o
                    break
            steps, n = [], 1
            for i, o in enumerate(chain[1:]):
                steps.append(f"{n}. Go forward until the {o.label}")
                n += 1
                if i < len(turns):
                    steps.append(f"{n}. [please fill in]")
                    n += 1
            question = TEMPLATES["route_planning"].format(start=start.label, facing=facing.label, end=chain[-1].label,
                                                          steps=" ".join(steps) + ".")
            correct = ", ".join(turns)
            combos = [", ".join(c) for c in itertools.product(TURNS, repeat=len(turns))]
            # Plausible wrong answers: sequences differing in one turn first, then any other.
            near = [c for c in combos if c != correct and sum(x != y for x, y in zip(c.split(", "), turns)) == 1]
            far = [c for c in combos if c != correct and c not in near]
            distractors = (self._shuffled(near) + self._shuffled(far))[:3]
            options, gt = self._choice(correct, distractors)
            self._add("route_planning", question, options, gt)
            made += 1

    def appearance(self) -> None:
        first = {c: min(self.first_seen[o.instance_id] for o in objs) for c, objs in self.seen_by_class.items()}
        cats = sorted(first)
        if len(cats) < 4:
            return
        made, tries = 0, 0
        used: set[tuple[str, ...]] = set()
        while made < self.per_type and tries < 200:
            tries += 1
            pick = self._shuffled(cats)[:4]
            order = appearance_order({c: first[c] for c in pick})
            times = [first[c] for c in order]
            if min(b - a for a, b in zip(times, times[1:])) < APPEARANCE_GAP or tuple(order) in used:
                continue
            used.add(tuple(order))
            # Near misses: two neighbours swapped; then any other order.
            near = []
            for i in range(3):
                w = list(order)
                w[i], w[i + 1] = w[i + 1], w[i]
                near.append(w)
            near = self._shuffled(near)[:2]
            rest = [list(p) for p in itertools.permutations(order) if list(p) != order and list(p) not in near]
            distractors = near + [rest[int(self.rng.integers(len(rest)))]]
            options, gt = self._choice(", ".join(order), [", ".join(d) for d in distractors])
            q = TEMPLATES["obj_appearance_order"].format(a=pick[0], b=pick[1], c=pick[2], d=pick[3])
            self._add("obj_appearance_order", q, options, gt)
            made += 1


def generate_questions(scene: Scene, first_seen: dict[int, float], seed: int, scene_name: str,
                       visited_rooms: list[int] | None = None, per_type: int = 8) -> list[dict]:
    """VSI-Bench records (id, scene_name, question_type, question, options, ground_truth).

    ``first_seen``: instance_id -> seconds since the first frame (only these objects are
    asked about). ``visited_rooms``: room indices the camera stood in (for room size);
    by default the rooms that hold a seen object. At most ``per_type`` questions per type
    (per level for relative direction).
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x9A]))
    if visited_rooms is None:
        visited_rooms = sorted({scene.object(i).room for i in first_seen})
    b = _Builder(scene, first_seen, rng, scene_name, sorted(int(r) for r in visited_rooms), per_type)
    b.counting()
    b.abs_distance()
    b.size()
    b.room_size()
    b.rel_distance()
    b.rel_direction()
    b.route()
    b.appearance()
    return b.records
