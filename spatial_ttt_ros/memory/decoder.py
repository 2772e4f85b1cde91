"""Readout: learned slot queries and a room query read the memory, heads decode an inventory.

Each slot query is a learned slot embedding plus the embedding of the class the slot
is "responsible" for (a fixed, bounded layout: ``slot_classes``). Conditioning the
query on a class lets the memory be asked "where are the chairs?" instead of
"what is there?", which trains much faster than DETR-style anonymous slots on one
CPU core; the head still predicts full class logits (len(CLASSES) + 1, last = none),
so a slot may in principle report another class. Training matches slots to
ground-truth objects with the Hungarian algorithm (training.py).

Per slot: class logits (C+1), world centre (3), log size (3), first-seen time (1), all
in the model's normalised frame (see model.Normaliser). Room query: min_xy (2),
max_xy (2), log area (1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spatial_ttt_ros.classes import CLASSES
from spatial_ttt_ros.inventory import Inventory, InventoryObject, Room

N_CLASSES = len(CLASSES)
NONE_CLASS = N_CLASSES  # index of the "no object" logit


def default_slot_classes(slots_per_class: dict[str, int] | None = None, default: int = 3) -> list[int]:
    """Class index per slot: ``default`` slots per class, more where scenes hold many."""
    per = {c: default for c in CLASSES}
    per.update(slots_per_class or {})
    return [i for i, c in enumerate(CLASSES) for _ in range(per[c])]


@dataclass
class DecodedSlots:
    """Raw decoder outputs (normalised frame), batch-first."""

    logits: torch.Tensor  # [B, S, C+1]
    center: torch.Tensor  # [B, S, 3] normalised world centre
    log_size: torch.Tensor  # [B, S, 3] log metres
    first_seen: torch.Tensor  # [B, S] normalised time (seconds / time_scale)
    room: torch.Tensor  # [B, 5]: min_xy (2), max_xy (2) normalised, log area (1) in log m^2
    cells: torch.Tensor | None = None  # grid readout: [B, S, 2] cell centres (normalised xy)
    cell_size: torch.Tensor | None = None  # grid readout: [B] cell edge (normalised)


class SlotDecoder(nn.Module):
    def __init__(self, d_model: int, slot_classes: list[int], hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or 2 * d_model
        self.n_slots = len(slot_classes)
        self.register_buffer("slot_classes", torch.tensor(slot_classes, dtype=torch.long), persistent=False)
        self.slot_embed = nn.Parameter(torch.randn(self.n_slots, d_model) * 0.02)
        self.class_embed = nn.Embedding(N_CLASSES, d_model)
        self.room_embed = nn.Parameter(torch.randn(1, d_model) * 0.02)
        self.norm = nn.LayerNorm(d_model)
        self.slot_head = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, N_CLASSES + 1 + 3 + 3 + 1))
        self.room_head = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, 5))
        with torch.no_grad():
            # Start every slot at "none" so early training is not flooded with false objects.
            self.slot_head[-1].bias.zero_()
            self.slot_head[-1].bias[NONE_CLASS] = 2.0
            self.slot_head[-1].bias[N_CLASSES + 4 : N_CLASSES + 7] = float(np.log(0.6))  # typical size
            self.room_head[-1].bias.zero_()
            self.room_head[-1].bias[4] = float(np.log(20.0))  # typical room area

    def queries(self, batch: int) -> torch.Tensor:
        """[B, S+1, D]: slot queries then the room query."""
        q = self.slot_embed + self.class_embed(self.slot_classes)  # [S, D]
        q = torch.cat([q, self.room_embed], dim=0)
        return q.unsqueeze(0).expand(batch, -1, -1)

    def forward(self, read: torch.Tensor) -> DecodedSlots:
        """read: [B, S+1, D] backbone outputs for the queries."""
        h = self.norm(read)
        out = self.slot_head(h[:, :-1])  # [B, S, C+1+7]
        room = self.room_head(h[:, -1])  # [B, 5]
        c = N_CLASSES + 1
        return DecodedSlots(
            logits=out[..., :c],
            center=out[..., c : c + 3],
            log_size=out[..., c + 3 : c + 6].clamp(-4.0, 2.5),
            first_seen=out[..., c + 6],
            room=room,
        )


def room_from_vector(room: np.ndarray, origin: np.ndarray, pos_scale: float) -> Room:
    """Room readout (5,) = min_xy, max_xy (normalised), log area (log m^2) -> Room in world metres."""
    lo = room[0:2] * pos_scale + origin[:2]
    hi = room[2:4] * pos_scale + origin[:2]
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    return Room(area_m2=float(np.exp(np.clip(room[4], -3.0, 8.0))), min_xy=lo, max_xy=hi)


def slots_to_inventory(
    dec: DecodedSlots,
    origin: np.ndarray,
    pos_scale: float,
    time_scale: float,
    stamp: float,
    start_stamp: float,
    threshold: float = 0.5,
    merge_radius: float = 0.0,
    index: int = 0,
    nms: bool = False,
) -> Inventory:
    """Decode batch element ``index`` into an Inventory in world metres / seconds.

    A slot becomes an object when 1 - p(none) > threshold; its label is the most
    likely real class. ``merge_radius`` > 0 drops a lower-confidence slot of the same
    class whose centre lies within that many metres of a kept one (duplicate guard).
    """
    with torch.no_grad():
        probs = torch.softmax(dec.logits[index].float(), dim=-1).cpu().numpy()  # [S, C+1]
        centers = dec.center[index].float().cpu().numpy() * pos_scale + origin  # [S, 3]
        sizes = np.exp(dec.log_size[index].float().cpu().numpy())  # [S, 3]
        seen = np.clip(dec.first_seen[index].float().cpu().numpy() * time_scale, 0.0, None)
        room = dec.room[index].float().cpu().numpy()
    p_obj = 1.0 - probs[:, NONE_CLASS]
    labels = probs[:, :NONE_CLASS].argmax(-1)
    g = int(round(math.sqrt(p_obj.shape[0])))
    if nms and dec.cells is not None and g * g == p_obj.shape[0]:
        # grid readout: a cell reports an object only where its p(object) is the largest of its
        # 3x3 neighbourhood (one object lights up the cells around it through the map's kernel)
        pg = np.pad(p_obj.reshape(g, g), 1, constant_values=-1.0)
        nb = np.max([pg[1 + dy : 1 + dy + g, 1 + dx : 1 + dx + g] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 0)
        p_obj = np.where(p_obj.reshape(g, g) >= nb, p_obj.reshape(g, g), 0.0).reshape(-1)
    order = np.argsort(-p_obj)
    objects: list[InventoryObject] = []
    for s in order:
        if p_obj[s] <= threshold:
            break
        if merge_radius > 0 and any(
            o.label == CLASSES[labels[s]] and np.linalg.norm(o.center - centers[s]) < merge_radius for o in objects
        ):
            continue
        objects.append(
            InventoryObject(
                label=CLASSES[labels[s]],
                center=centers[s],
                size=sizes[s],
                first_seen=float(seen[s]),
                confidence=float(p_obj[s]),
            )
        )
    objects.sort(key=lambda o: o.first_seen)
    return Inventory(
        objects=objects,
        room=room_from_vector(room, origin, pos_scale),
        stamp=float(stamp),
        start_stamp=float(start_stamp),
    )


def fourier2(xy: torch.Tensor, n: int) -> torch.Tensor:
    """[..., 2] -> [..., 4n] sin/cos features at frequencies pi * 2^i (same as model.fourier)."""
    freqs = math.pi * (2.0 ** torch.arange(n, dtype=xy.dtype, device=xy.device))
    a = xy.unsqueeze(-1) * freqs
    return torch.cat([a.sin(), a.cos()], dim=-1).flatten(-2)


class GridDecoder(nn.Module):
    """Location queries: "what is here?" asked of the memory on a grid over the seen extent.

    Two reads of the memory: (1) the room query decodes the extent seen so far; (2) a
    ``cells x cells`` grid of location queries spread over that extent (plus a margin)
    reads the memory, and each cell decodes class logits (C+1, last = none), the offset
    of the object centre from the cell centre (bounded to +-1 cell), z, log size and
    first-seen time. This turns readout into associative recall keyed by *position*
    (object and geometry tokens carry their world position, and a query carries its
    cell's), which trains much faster than anonymous or class-keyed slots. The number of
    queries is fixed (cells^2), so the readout cost and the state stay bounded.
    """

    def __init__(self, d_model: int, cells: int = 24, n_fourier: int = 5, margin: float = 0.2, hidden: int | None = None,
                 map_features: int = 0):
        super().__init__()
        hidden = hidden or 2 * d_model
        self.cells, self.n_fourier, self.margin = cells, n_fourier, margin
        self.n_slots = cells * cells
        self.room_embed = nn.Parameter(torch.randn(1, d_model) * 0.02)
        self.query_in = nn.Sequential(nn.Linear(2 + 4 * n_fourier + 1, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.norm = nn.LayerNorm(d_model)
        self.cell_head = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, N_CLASSES + 1 + 3 + 3 + 1))
        self.room_head = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, 5))
        # Position-keyed map (memory/spatial_map.py): its per-cell features are added to the
        # normalised backbone read before the cell head. [B, S, map_features] -> [B, S, D]
        self.map_in = (
            nn.Sequential(nn.Linear(map_features, hidden), nn.GELU(), nn.Linear(hidden, d_model)) if map_features else None
        )
        self.map_head = nn.Linear(map_features, N_CLASSES + 1 + 7) if map_features else None
        if self.map_head is not None:
            nn.init.zeros_(self.map_in[-1].weight)  # the MLP path starts silent; the direct path works
            nn.init.zeros_(self.map_in[-1].bias)
        with torch.no_grad():
            self.cell_head[-1].bias.zero_()
            self.cell_head[-1].bias[NONE_CLASS] = 3.0
            self.cell_head[-1].bias[N_CLASSES + 3] = 0.1  # z ~ 0.5 m (normalised by 5 m)
            self.cell_head[-1].bias[N_CLASSES + 4 : N_CLASSES + 7] = float(np.log(0.6))
            self.room_head[-1].bias.zero_()
            self.room_head[-1].bias[4] = float(np.log(20.0))
        if self.map_head is not None:
            self._init_map_head()

    @torch.no_grad()
    def _init_map_head(self) -> None:
        """Direct linear path from the map's features to the cell outputs, initialised to a working
        decoder; the cell head (last layer zeroed) starts as a zero correction on top of it. Why: the
        readout then decodes what the map holds from step 0, and training only refines it.

        Feature layout (SpatialMap.features, nf = dk + 5): [log1p(presence), channel means (channel j
        at index j), centroid offset (2, cells), outside-the-cell distance, asinh(presence), first-seen
        estimate]; channels: spatial_map.CH_*.
        """
        from spatial_ttt_ros.memory.spatial_map import CH_CLASS, CH_LOGSIZE, CH_Z  # noqa: PLC0415

        w = torch.zeros_like(self.map_head.weight)  # [C+1+7, F]
        b = torch.zeros_like(self.map_head.bias)
        nf = w.shape[1]
        c = N_CLASSES + 1
        for k in range(N_CLASSES):
            w[k, CH_CLASS + k] = 4.0  # class: share of observations of that class
        w[NONE_CLASS, 0] = -3.0  # none: p(object) = 0.5 near 4 (kernel-weighted) observations
        b[NONE_CLASS] = 8.5
        w[c, nf - 5], w[c + 1, nf - 4] = 1.0, 1.0  # centre offset in cells (tanh-bounded in forward)
        w[c + 2, CH_Z] = 1.0  # z, log size: observation means
        for j in range(3):
            w[c + 3 + j, CH_LOGSIZE + j] = 1.0
        w[c + 6, nf - 1] = 1.0  # first seen
        self.map_head.weight.copy_(w)
        self.map_head.bias.copy_(b)
        nn.init.zeros_(self.cell_head[-1].weight)
        nn.init.zeros_(self.cell_head[-1].bias)

    def grid(self, room: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """room [B, 5] -> (cell centres [B, G*G, 2], cell size [B]) covering the extent + margin."""
        r = room.detach()
        lo = torch.minimum(r[:, 0:2], r[:, 2:4]) - self.margin
        hi = torch.maximum(r[:, 0:2], r[:, 2:4]) + self.margin
        span = (hi - lo).max(-1).values.clamp(min=0.6)  # square grid: one cell size for x and y
        mid = 0.5 * (lo + hi)
        cell = span / self.cells  # [B]
        idx = torch.arange(self.cells, dtype=room.dtype, device=room.device) + 0.5 - self.cells / 2
        gy, gx = torch.meshgrid(idx, idx, indexing="ij")
        offs = torch.stack([gx, gy], -1).reshape(-1, 2)  # [G*G, 2]
        centres = mid[:, None, :] + offs[None] * cell[:, None, None]
        return centres, cell

    def room(self, read_fn, batch: int) -> torch.Tensor:
        """The room query alone: [B, 5] (min_xy, max_xy normalised, log area)."""
        return self.room_head(self.norm(read_fn(self.room_embed.unsqueeze(0).expand(batch, -1, -1))[:, 0]))

    def forward(self, read_fn, batch: int, map_fn=None) -> DecodedSlots:
        """``read_fn(queries [B, S, D]) -> [B, S, D]`` reads the memory; ``map_fn(centres [B, S, 2],
        cell [B]) -> [B, S, F]`` reads the position-keyed map (None: no map)."""
        room = self.room(read_fn, batch)
        centres, cell = self.grid(room)
        feats = torch.cat(
            [centres, fourier2(centres, self.n_fourier), cell[:, None, None].expand(-1, centres.shape[1], 1)], -1
        )
        h = self.norm(read_fn(self.query_in(feats)))  # [B, S, D]
        if self.map_in is not None and map_fn is not None:
            mf = map_fn(centres, cell)  # [B, S, F]
            out = self.cell_head(h + self.map_in(mf)) + self.map_head(mf)
        else:
            out = self.cell_head(h)
        c = N_CLASSES + 1
        xy = centres + torch.tanh(out[..., c : c + 2]) * cell[:, None, None]
        return DecodedSlots(
            logits=out[..., :c],
            center=torch.cat([xy, out[..., c + 2 : c + 3]], -1),
            log_size=out[..., c + 3 : c + 6].clamp(-4.0, 2.5),
            first_seen=out[..., c + 6],
            room=room,
            cells=centres,
            cell_size=cell,
        )
