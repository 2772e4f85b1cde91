"""What one frame writes into the learned TTT map: positions, value targets, learning-rate inputs.

Three kinds of write tokens per frame (arrays from ``perception.tokens.FrameTokens``):

- object tokens: one per detected object, at its world centre; targets the class one-hot,
  height, size^p, birth (1, t), mass = 1 and free = 0 (memory/learned_map.py's channels);
- see-through tokens: points along each geometry cell's central ray, short of the nearest
  surface in that cell (``free_range``) and low enough (``SEE_THROUGH_MAX_Z``) that an object
  standing there would have been in the way; every channel's target is 0 except free = 1,
  so a false positive that later views look through fades;
- floor tokens: points on the floor between the camera and each cell's mean hit (the seen
  floor, for the room's extent); they write only the free channel.

Learning-rate inputs per token (``LR_FEATURES``): detection score, range from the camera,
angle off the optical axis, the frame's valid-depth fraction, log object volume. The
learned heads that turn them into rates live in memory/learned_model.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from spatial_ttt_ros.memory.learned_map import CH_BIRTH, CH_BIRTH_T, CH_FREE, CH_MASS, CH_SIZE, CH_Z, N_CHANNELS, SIZE_POWER
from spatial_ttt_ros.perception.tokens import EGO_FIELDS, GEO_FIELDS, N_CLASSES, OBJ_FIELDS

KIND_OBJECT, KIND_SEE_THROUGH, KIND_FLOOR = 0, 1, 2
LR_FEATURES = 5
SEE_THROUGH_SAMPLES = 4  # per geometry cell
SEE_THROUGH_MARGIN = 0.3  # m short of the nearest surface of the cell
SEE_THROUGH_MAX_Z = 0.5  # m: above this a ray can pass over furniture, so it proves nothing below
# Floor samples per geometry cell ray, at these distances (m) short of the hit: dense near the
# walls, which bound the room; the open middle is covered by many rays of many frames.
FLOOR_BACKOFF = (0.15, 0.35, 0.6, 0.9, 1.3, 1.8, 2.4, 3.2)
FLOOR_SAMPLES = len(FLOOR_BACKOFF)
MIN_CELL_VALID = 0.2  # cells with less valid depth write no free space


@dataclass
class WriteTokens:
    """Write tokens of a group of frames, flattened: N tokens."""

    xy: Tensor  # [N, 2] world metres
    target: Tensor  # [N, C] value targets
    mask: Tensor  # [N, C] 1 where the token writes the channel
    lr_in: Tensor  # [N, LR_FEATURES] learning-rate inputs
    kind: Tensor  # [N] long: KIND_*

    @staticmethod
    def cat(parts: list["WriteTokens"]) -> "WriteTokens":
        return WriteTokens(*(torch.cat([getattr(p, f) for p in parts]) for f in ("xy", "target", "mask", "lr_in", "kind")))


def frame_floor(geo: Tensor) -> Tensor:
    """geo [F, GH, GW, GEO_DIM] -> [F] the lowest cell mean height each frame sees (NaN where none):
    the floor when a cell looks at it. The memory keeps a low percentile of these as the floor
    height (memory/learned_memory.py), since worlds differ in where z = 0 is. (A cell's mean, not
    its lowest pixel: single depth outliers put that a metre under a real floor.)"""
    ok = geo[..., GEO_FIELDS["valid_fraction"]][..., 0] >= MIN_CELL_VALID
    z = torch.where(ok, geo[..., GEO_FIELDS["mean_xyz"].start + 2], torch.full_like(ok, float("inf"), dtype=geo.dtype))
    low = z.flatten(1).min(1).values
    return torch.where(torch.isfinite(low), low, torch.full_like(low, float("nan")))


def frame_writes(ego: Tensor, geo: Tensor, obj: Tensor, valid: Tensor, floor_z: float = 0.0) -> WriteTokens:
    """ego [F, EGO_DIM], geo [F, GH, GW, GEO_DIM], obj [F, M, OBJ_DIM], valid [F, M] bool -> tokens.

    Heights are taken relative to ``floor_z`` (the world's floor height; the simulator's is 0).
    Tokens are ordered frame by frame (objects, see-through, floor), so a chunk of frames is a
    contiguous run. The frames are computed together (one set of tensor ops for a whole chunk,
    not one per frame: half of the memory's write time went into per-frame calls) and then put
    in that order.
    """
    if floor_z:
        ego, geo, obj = ego.clone(), geo.clone(), obj.clone()
        ego[:, EGO_FIELDS["position"].start + 2] -= floor_z
        geo[..., GEO_FIELDS["mean_xyz"].start + 2] -= floor_z
        obj[..., OBJ_FIELDS["center"].start + 2] -= floor_z
    g = geo.reshape(geo.shape[0], -1, geo.shape[-1])  # [F, R, GEO_DIM]: R cells a frame
    ok = (g[..., GEO_FIELDS["valid_fraction"]][..., 0] >= MIN_CELL_VALID) & torch.isfinite(g).all(-1)  # [F, R]
    parts = [_objects(ego, obj, valid), _see_through(ego, g, ok), _floor(ego, g, ok)]
    toks = WriteTokens.cat([t for t, _ in parts])
    frame = torch.cat([f for _, f in parts])
    # Each part lists its tokens frame by frame; a stable sort on (frame, kind) interleaves them.
    order = torch.sort(frame * 3 + toks.kind, stable=True).indices
    return WriteTokens(*(getattr(toks, f)[order] for f in ("xy", "target", "mask", "lr_in", "kind")))


def _objects(ego: Tensor, obj: Tensor, valid: Tensor) -> tuple[WriteTokens, Tensor]:
    """-> (object tokens, their frame index [N])."""
    frame = torch.nonzero(valid, as_tuple=True)[0]
    obj = obj[valid]  # [N, OBJ_DIM], frame by frame
    n = obj.shape[0]
    own = ego[frame]  # [N, EGO_DIM]: each token's frame
    cam = own[:, EGO_FIELDS["position"]]
    fwd = own[:, EGO_FIELDS["forward"]]
    c = obj[:, OBJ_FIELDS["center"]]
    size = obj[:, OBJ_FIELDS["size"]].clamp_min(0.01)
    t = obj[:, OBJ_FIELDS["time"]]
    target = torch.zeros(n, N_CHANNELS)
    target[:, :N_CLASSES] = obj[:, OBJ_FIELDS["class_onehot"]]
    target[:, CH_Z] = c[:, 2]
    target[:, CH_SIZE : CH_SIZE + 3] = size.pow(SIZE_POWER)
    target[:, CH_BIRTH] = 1.0
    target[:, CH_BIRTH_T] = t[:, 0]
    target[:, CH_MASS] = 1.0
    d = c - cam
    rng = d.norm(dim=-1).clamp_min(1e-3)
    off_axis = torch.acos(((d * fwd).sum(-1) / rng).clamp(-1.0, 1.0))
    frame_valid = own[:, EGO_FIELDS["valid_fraction"]][:, 0]
    lr_in = torch.stack([obj[:, OBJ_FIELDS["score"]][:, 0], rng / 4.0, off_axis, frame_valid, size.log().sum(-1) / 3.0], -1)
    return WriteTokens(c[:, :2], target, torch.ones(n, N_CHANNELS), lr_in, torch.full((n,), KIND_OBJECT)), frame


def _see_through(ego: Tensor, g: Tensor, ok: Tensor) -> tuple[WriteTokens, Tensor]:
    """g [F, R, GEO_DIM], ok [F, R] -> (see-through tokens, their frame index [N])."""
    f_, r_ = ok.shape
    cam = ego[:, EGO_FIELDS["position"]]  # [F, 3]
    ray = g[..., GEO_FIELDS["ray_dir"]]  # [F, R, 3] unit
    reach = (g[..., GEO_FIELDS["free_range"]][..., 0] - SEE_THROUGH_MARGIN).clamp_min(0.0)  # [F, R]
    frac = (torch.arange(SEE_THROUGH_SAMPLES, dtype=torch.float32) + 0.5) / SEE_THROUGH_SAMPLES
    s = reach.unsqueeze(-1) * frac  # [F, R, K]
    pts = cam[:, None, None, :] + s.unsqueeze(-1) * ray.unsqueeze(2)  # [F, R, K, 3]
    keep = (ok.unsqueeze(-1) & (reach.unsqueeze(-1) > 0) & (pts[..., 2] < SEE_THROUGH_MAX_Z) & (pts[..., 2] > 0.02)).reshape(-1)
    pts = pts.reshape(-1, 3)[keep]
    n = pts.shape[0]
    target = torch.zeros(n, N_CHANNELS)
    target[:, CH_FREE] = 1.0
    cell_valid = g[..., GEO_FIELDS["valid_fraction"]].expand(f_, r_, SEE_THROUGH_SAMPLES).reshape(-1)[keep]
    lr_in = torch.zeros(n, LR_FEATURES)
    lr_in[:, 1] = s.reshape(-1)[keep] / 4.0
    lr_in[:, 3] = cell_valid
    frame = torch.arange(f_).repeat_interleave(r_ * SEE_THROUGH_SAMPLES)[keep]
    return WriteTokens(pts[:, :2], target, torch.ones(n, N_CHANNELS), lr_in, torch.full((n,), KIND_SEE_THROUGH)), frame


def _floor(ego: Tensor, g: Tensor, ok: Tensor) -> tuple[WriteTokens, Tensor]:
    """g [F, R, GEO_DIM], ok [F, R] -> (floor tokens, their frame index [N])."""
    f_, r_ = ok.shape
    cam = ego[:, EGO_FIELDS["position"]][:, :2]  # [F, 2]
    hit = g[..., GEO_FIELDS["mean_xyz"]][..., :2]  # [F, R, 2]
    ray = hit - cam.unsqueeze(1)
    length = ray.norm(dim=-1)  # [F, R]
    dist = length.unsqueeze(-1) - torch.tensor(FLOOR_BACKOFF)  # [F, R, K] from the camera
    pts = cam[:, None, None, :] + (dist / length.clamp_min(1e-6).unsqueeze(-1)).unsqueeze(-1) * ray.unsqueeze(2)  # [F, R, K, 2]
    keep = (ok.unsqueeze(-1) & (dist > 0)).reshape(-1)
    pts = pts.reshape(-1, 2)[keep]
    n = pts.shape[0]
    target = torch.zeros(n, N_CHANNELS)
    target[:, CH_FREE] = 1.0
    mask = torch.zeros(n, N_CHANNELS)
    mask[:, CH_FREE] = 1.0
    lr_in = torch.zeros(n, LR_FEATURES)
    lr_in[:, 1] = dist.reshape(-1)[keep] / 4.0
    lr_in[:, 3] = g[..., GEO_FIELDS["valid_fraction"]].expand(f_, r_, FLOOR_SAMPLES).reshape(-1)[keep]
    frame = torch.arange(f_).repeat_interleave(r_ * FLOOR_SAMPLES)[keep]
    return WriteTokens(pts, target, mask, lr_in, torch.full((n,), KIND_FLOOR)), frame
