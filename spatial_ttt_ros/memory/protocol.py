"""The contract every spatial memory implements (TTT model and baselines alike).

A memory is fed one ``FrameTokens`` at a time and can, at any moment, decode the
scene inventory that the reasoning module answers questions from. The benchmark and
the pipeline only talk to this protocol, so the TTT model, its ablations and the
baselines are interchangeable.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # imported only for type checkers: perception may land later
    from spatial_ttt_ros.perception.tokens import FrameTokens
    from spatial_ttt_ros.inventory import Inventory


@runtime_checkable
class SpatialMemory(Protocol):
    """A streaming spatial memory.

    - ``name``: short identifier used in benchmark tables ("ttt", "object_map", ...).
    - ``reset()``: forget everything (start of a new episode / stream).
    - ``observe(tokens)``: take in one frame's tokens. Frames arrive in stream order.
      An implementation may buffer frames internally (e.g. to update in chunks), but
      ``inventory()`` must reflect every frame observed so far.
    - ``inventory()``: decode the current scene inventory (objects + room). Object
      ``first_seen`` is in seconds since the stream's first observed frame.
    - ``state_bytes()``: bytes of memory state currently held (the quantity whose
      growth with stream length the benchmarks report).
    - ``save(path)`` / ``load(path)``: persist / restore the memory *state* (not the
      model weights) so a robot can resume; safetensors or JSON, never pickle.
    """

    name: str

    def reset(self) -> None: ...

    def observe(self, tokens: "FrameTokens") -> None: ...

    def inventory(self) -> "Inventory": ...

    def state_bytes(self) -> int: ...

    def save(self, path: str | Path) -> None: ...

    def load(self, path: str | Path) -> None: ...
