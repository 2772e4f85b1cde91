"""The scene description: room, counts, closest pairs, first object; deterministic."""

from __future__ import annotations

import numpy as np

from spatial_ttt_ros.reasoning.describe import describe
from spatial_ttt_ros.inventory import Inventory, InventoryObject, Room


def _inventory(order):
    objects = [
        InventoryObject("bed", [0, 0, 0.3], [2.0, 1.6, 0.6], first_seen=1.5),
        InventoryObject("tv", [0, 4, 1.0], [1.0, 0.1, 0.6], first_seen=2.0),
        InventoryObject("sofa", [-3, 1, 0.4], [2.0, 0.9, 0.8], first_seen=3.0),
        InventoryObject("chair", [3, 3, 0.45], [0.5, 0.5, 0.9], first_seen=4.0),
        InventoryObject("chair", [3.6, 3, 0.45], [0.5, 0.5, 0.9], first_seen=5.0),
    ]
    return Inventory(
        objects=[objects[i] for i in order],
        room=Room(area_m2=30.0, min_xy=np.array([-4.0, -4.0]), max_xy=np.array([2.0, 1.0])),
    )


def test_description_mentions_room_counts_relations_and_first_object():
    text = describe(_inventory([0, 1, 2, 3, 4]))
    assert "30.0 square metres" in text and "6.0 m by 5.0 m" in text
    assert "I have seen 5 objects: 2 chairs, a bed, a sofa and a tv." in text
    # Closest pair: the two chairs, 0.6 - 0.5 = 0.10 m apart; next the bed and the sofa (x gap 2 - 1 = 1.0 m).
    assert "One chair is next to another chair (0.10 m)" in text
    assert "the bed is 1.0 m from the sofa" in text
    assert "first object seen was the bed, 1.5 s" in text


def test_description_does_not_depend_on_object_order():
    assert describe(_inventory([4, 3, 2, 1, 0])) == describe(_inventory([0, 1, 2, 3, 4]))


def test_empty_inventory():
    text = describe(Inventory(objects=[], room=None))
    assert "no extent of the room" in text and "not seen any objects" in text
