"""Pose-drift handling inside the write: align each chunk to what the map already holds.

Odometry drifts slowly (about 1 % of the distance walked, noise preset "noisy"), so an
object seen again after a loop is placed beside where the map holds it, and the map grows
a second copy. Before a chunk is written, its object tokens read the map at a small set of
shifts (``SHIFTS``, +-0.6 m); where the map already holds their class nearby, the shift
under which the chunk agrees best with the map is the drift accumulated since those objects
were written. The offset carried in the memory's state moves a fraction ``GAIN`` of the way
towards it (many chunks agree before it moves far), and every token of the chunk (objects,
free space, floor) is written shifted by the offset. Translation in x and y only: heading
drift shows up as a translation that changes slowly along the walk.

Dead band (``MIN_IMPROVE``): the best shift must hold at least that much more of the chunk's
classes than no shift at all. Without it, noise in the sightings and the map's 0.3 m fine cells
made some shift win by a little on about one chunk in six even with no drift, and the offset
random-walked: the decoded centres of exact (drift-free) 300-frame streams were 0.19 m from
the truth, 0.15 m with the dead band (0.25 -> 0.14 m on noisy ones). ``GAIN`` and
``MIN_IMPROVE`` were chosen on validation seeds (weights/README.md).

This is read-before-write: it uses only the fast weights and the chunk, no extra state but
the offset (2 floats). ``Ablation(align=False)`` turns it off for the measurement.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spatial_ttt_ros.memory import learned_map as lm
from spatial_ttt_ros.memory.learned_keys import PositionKeys
from spatial_ttt_ros.memory.learned_writes import KIND_OBJECT, WriteTokens
from spatial_ttt_ros.perception.tokens import N_CLASSES

_STEP = 0.15
SHIFTS = torch.stack(
    torch.meshgrid(torch.arange(-4, 5) * _STEP, torch.arange(-4, 5) * _STEP, indexing="xy"), -1
).reshape(-1, 2)  # [81, 2] m
HELD_MIN = 0.3  # class evidence near a token for it to count as a re-sighting
MIN_RESIGHTINGS = 3  # object tokens of a chunk that must be re-sightings
GAIN = 0.1
MIN_IMPROVE = 0.1  # the best shift must hold this much more of the chunk's classes than no shift (relative)


@torch.no_grad()
def chunk_shift(keys: PositionKeys, w: Tensor, toks: WriteTokens) -> Tensor | None:
    """The shift [2] (m) that best aligns the chunk's re-sighted objects with the map, or None."""
    obj = toks.kind == KIND_OBJECT
    if int(obj.sum()) < MIN_RESIGHTINGS:
        return None
    xy = toks.xy[obj]
    cls = toks.target[obj, :N_CLASSES]
    n, s = xy.shape[0], SHIFTS.shape[0]
    index, weight = keys((xy[:, None, :] + SHIFTS[None]).reshape(-1, 2))
    held = lm.read(w[:, :N_CLASSES], index, weight).reshape(n, s, -1)  # class channels only: 81 reads a token
    agree = (held * cls[:, None, :]).sum(-1)  # [n, S]: the token's class held at each shift
    resighted = agree.max(1).values > HELD_MIN
    if int(resighted.sum()) < MIN_RESIGHTINGS:
        return None
    total = agree[resighted].sum(0)  # [S]
    if float(total.max()) < (1.0 + MIN_IMPROVE) * float(total[s // 2]):
        return torch.zeros(2)
    # Soft arg-max over the shifts that beat no shift at all (a plateau gives its centre).
    gain = (total - total[s // 2]).clamp_min(0.0)
    if float(gain.sum()) <= 1e-6:
        return torch.zeros(2)
    return (gain[:, None] * SHIFTS).sum(0) / gain.sum()


def shifted(toks: WriteTokens, offset: Tensor) -> WriteTokens:
    return WriteTokens(toks.xy + offset.to(toks.xy.dtype), toks.target, toks.mask, toks.lr_in, toks.kind)


def align(keys: PositionKeys, w: Tensor, toks: WriteTokens, offset: Tensor) -> tuple[WriteTokens, Tensor]:
    """Shift the chunk by the carried offset, re-estimate it from the chunk -> (tokens to write, new offset)."""
    moved = shifted(toks, offset)
    d = chunk_shift(keys, w, moved)
    if d is None:
        return moved, offset
    new = offset + GAIN * d
    return shifted(toks, new), new
