"""A short, deterministic description of an inventory for people (the ``~/describe`` text).

Sentences: the room extent, object counts by class, up to three closest pairs of
objects (closest-point distances between their boxes), and the first object seen.
The same inventory always gives the same text (objects are ordered by class and
position before anything is chosen).
"""

from __future__ import annotations

import numpy as np

from spatial_ttt_ros.inventory import Inventory
from spatial_ttt_ros.reasoning.solvers import closest_box_distance, plural

MAX_RELATIONS = 3
NEXT_TO_M = 0.5  # closer than this reads as "next to"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


class PairDistances:
    """Box distances between inventory objects, remembered by the objects' identity.

    Inventory objects are never changed once made, and the object map hands out the same
    object again for an instance it did not change, so from one read-out to the next most
    pairs are known already. Entries hold their two objects, so an id is never reused
    while its entry lives; ``keep_only`` drops the pairs of objects gone from the scene.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[int, int], tuple] = {}

    def __call__(self, a, b) -> float:
        key = (id(a), id(b))
        hit = self._known.get(key)
        if hit is not None and hit[0] is a and hit[1] is b:
            return hit[2]
        d = round(closest_box_distance(a, b), 6)
        self._known[key] = (a, b, d)
        return d

    def keep_only(self, objects: list) -> None:
        ids = {id(o) for o in objects}
        self._known = {k: v for k, v in self._known.items() if k[0] in ids and k[1] in ids}

    def clear(self) -> None:
        self._known = {}


def _distance(a, b) -> float:
    return round(closest_box_distance(a, b), 6)


def _closest_pairs(objects: list, k: int, distance=_distance) -> list[tuple[float, int, int]]:
    """The k closest object pairs as (distance, i, j), exact box distances (``distance(a, b)``,
    rounded to the micrometre).

    Bounding-circle gaps (centre distance minus both half-diagonals) are lower bounds
    of the box distance, so pairs are checked in that order and the search stops once
    the bound passes the k-th best exact distance: a scene of many objects stays fast.
    """
    n = len(objects)
    if n < 2:
        return []
    centers = np.array([o.center for o in objects])
    radii = np.array([0.5 * float(np.linalg.norm(o.size)) for o in objects])
    i_idx, j_idx = np.triu_indices(n, k=1)
    bounds = np.maximum(np.linalg.norm(centers[i_idx] - centers[j_idx], axis=1) - radii[i_idx] - radii[j_idx], 0.0)
    best: list[tuple[float, int, int]] = []
    for p in np.lexsort((j_idx, i_idx, bounds)):
        if len(best) >= k and bounds[p] > best[k - 1][0]:
            break
        i, j = int(i_idx[p]), int(j_idx[p])
        best.append((distance(objects[i], objects[j]), i, j))
        best.sort()
    return best[:k]


def describe(inventory: Inventory, distances: PairDistances | None = None) -> str:
    """The description of ``inventory``; ``distances`` (optional) remembers pair distances
    from one call to the next (same text, less work)."""
    sentences: list[str] = []
    room = inventory.room
    if room is not None:
        span = room.max_xy - room.min_xy
        sentences.append(
            f"The space seen so far covers about {room.area_m2:.1f} square metres "
            f"({span[0]:.1f} m by {span[1]:.1f} m)."
        )
    else:
        sentences.append("I have no extent of the room yet.")

    objects = sorted(inventory.objects, key=lambda o: (o.label, *(round(float(v), 3) for v in o.center)))
    if not objects:
        sentences.append("I have not seen any objects yet.")
        return " ".join(sentences)

    counts: dict[str, int] = {}
    for obj in objects:
        counts[obj.label] = counts.get(obj.label, 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = [f"{n} {plural(label, n)}" if n > 1 else f"a {label}" for label, n in ordered]
    total = len(objects)
    sentences.append(f"I have seen {total} object{'s' if total != 1 else ''}: {_join(parts)}.")

    pairs = _closest_pairs(objects, MAX_RELATIONS, distances or _distance)
    relations = []
    for dist, i, j in pairs[:MAX_RELATIONS]:
        a, b = objects[i].label, objects[j].label
        if a == b:
            a, b = f"one {a}", f"another {b}"
        else:
            a, b = f"the {a}", f"the {b}"
        if dist < NEXT_TO_M:
            relations.append(f"{a} is next to {b} ({dist:.2f} m)")
        else:
            relations.append(f"{a} is {dist:.1f} m from {b}")
    if relations:
        text = _join(relations)
        sentences.append(text[0].upper() + text[1:] + ".")

    first = min(objects, key=lambda o: (o.first_seen, o.label))
    sentences.append(f"The first object seen was the {first.label}, {first.first_seen:.1f} s into the stream.")
    return " ".join(sentences)
