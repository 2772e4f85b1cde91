"""The learned spatial memory: frame-token embedding + TTT backbone + slot decoder.

``SpatialMemoryModel`` is the nn.Module (trained end to end through the backbone's
inner fast-weight updates, see training.py). ``TTTMemory`` wraps it behind the
``SpatialMemory`` protocol for the pipeline, the node and the benchmarks: it buffers
frames into chunks, keeps the backbone's ``StreamingState`` and decodes an
``Inventory`` on demand. Variants (same tokens, same trained weights, backbone
flags switched at inference) give the ablations and baselines:

    ttt                      the trained model (default)
    ttt_frozen               fast weights never updated (stay at their learned start)
    ttt_no_conv              spatial 3D conv bypassed
    ttt_momentum, ttt_muon   inner-update options of the fast-weight branch
    sliding_window           sliding-window attention only (no TTT branch)
    full_context             attend over every past token (memory grows with the stream)

Normalisation: world coordinates are expressed relative to the stream's first
camera position (x, y; z stays floor-relative) and divided by ``pos_scale`` (5 m), so
a model trained in one place works anywhere on the map. Time is token time
(seconds since stream start / 100, perception.tokens.TIME_SCALE).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spatial_ttt_ros.memory.decoder import (
    DecodedSlots,
    GridDecoder,
    SlotDecoder,
    default_slot_classes,
    room_from_vector,
    slots_to_inventory,
)
from spatial_ttt_ros.memory.methods import LEARNED_METHODS, NO_MAP_WRITES
from spatial_ttt_ros.memory.map_readout import PeakSettings, find_objects, read_map, seen_floor
from spatial_ttt_ros.memory.spatial_map import SIZE_POWER, SpatialMap
from spatial_ttt_ros.perception.tokens import (
    EGO_DIM,
    EGO_FIELDS,
    GEO_DIM,
    GEO_FIELDS,
    OBJ_DIM,
    OBJ_FIELDS,
    TIME_SCALE,
    FrameTokens,
)
from spatial_ttt_ros.classes import CLASSES
from spatial_ttt_ros.inventory import Inventory, InventoryObject, Room
from spatial_ttt_ros.ttt.backbone import BackboneConfig, TTTBackbone
from spatial_ttt_ros.ttt.state import StreamingState

# The variants are the learned methods of memory/methods.py (one vocabulary).
VARIANTS = LEARNED_METHODS


@dataclass
class MemoryConfig:
    """Architecture of the memory model (stored in every checkpoint)."""

    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    anchor_every: int = 4  # 1 anchor layer in 4
    window_frames: int = 4  # sliding-window attention span, in frames
    chunk_frames: int = 8  # TTT update chunk, in frames
    grid: tuple[int, int] = (4, 4)
    max_objects: int = 16
    n_fourier: int = 4  # sin/cos frequencies for positions
    pos_scale: float = 5.0  # metres per normalised unit
    ttt_lr_scale: float = 10.0  # chunks of a few hundred tokens want ~10 (ttt/fast_weights.py)
    n_summary: int = 32  # anchor-layer chunk summaries
    # Bounded slot layout (class-conditioned queries); sized from the simulator's busiest scenes.
    slots_per_class: dict = field(
        default_factory=lambda: {"chair": 12, "cabinet": 8, "potted plant": 6, "lamp": 5, "table": 4, "clock": 4, "tv": 4}
    )
    slots_default: int = 3
    readout: str = "grid"  # "grid" (location queries, shipped) or "slots" (class-conditioned slot queries)
    grid_cells: int = 24  # grid readout: cells per side
    keyframe_hz: float = 2.0  # frames written into memory per second (0: every frame); training streams use it
    # Position-keyed TTT map (memory/spatial_map.py): object tokens written at their world xy,
    # read by the grid readout at cell centres (the slot readout has no map). A stored config
    # without this field (checkpoints before the map) loads as False.
    spatial_map: bool = True
    map_dim: int = 64  # key/value width of the map's fast weights
    map_period: float = 3.2  # the map's keys live on a torus of this side (normalised: 16 m; larger spans alias)
    map_hidden_ratio: float = 16.0  # fast-weight hidden = ratio * map_dim = place cells (a square: 32 x 32)
    map_free_samples: int = 6  # free-space samples written per geometry cell's depth ray (room extent); 0: none

    @property
    def tokens_per_frame(self) -> int:
        return 1 + self.grid[0] * self.grid[1] + self.max_objects

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["grid"] = list(self.grid)
        return d

    @staticmethod
    def from_dict(d: dict) -> "MemoryConfig":
        known = {f.name for f in dataclasses.fields(MemoryConfig)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown memory config fields {unknown}")
        d = dict(d)
        if "grid" in d:
            d["grid"] = tuple(d["grid"])
        d.setdefault("spatial_map", False)  # configs written before the map existed
        return MemoryConfig(**d)


def backbone_config(cfg: MemoryConfig, variant: str = "ttt") -> BackboneConfig:
    """BackboneConfig for ``cfg`` with the variant's inference-time flags."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    kw = dict(
        d_model=cfg.d_model,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        anchor_every=cfg.anchor_every,
        tokens_per_frame=cfg.tokens_per_frame,
        grid_hw=tuple(cfg.grid),
        window_frames=cfg.window_frames,
        chunk_frames=cfg.chunk_frames,
        ttt_lr_scale=cfg.ttt_lr_scale,
        n_summary=cfg.n_summary,
    )
    kw.update(
        {
            # eta = 0: the inner step is zero, fast weights stay at their learned start.
            "ttt_frozen": {"ttt_lr_scale": 0.0},
            "ttt_no_conv": {"conv": False},
            "ttt_momentum": {"momentum": 0.9},
            "ttt_muon": {"muon": True},
            "sliding_window": {"ttt": False},
            "full_context": {"full_context": True},
        }.get(variant, {})
    )
    return BackboneConfig(**kw)


def fourier(x: torch.Tensor, n: int) -> torch.Tensor:
    """[..., k] -> [..., k * 2n] sin/cos features at frequencies pi * 2^i."""
    freqs = math.pi * (2.0 ** torch.arange(n, dtype=x.dtype, device=x.device))  # [n]
    a = x.unsqueeze(-1) * freqs  # [..., k, n]
    return torch.cat([a.sin(), a.cos()], dim=-1).flatten(-2)


class TokenEmbedding(nn.Module):
    """FrameTokens arrays -> [B, F, T, D] in the fixed layout [ego, grid GH*GW, M objects]."""

    def __init__(self, cfg: MemoryConfig) -> None:
        super().__init__()
        self.cfg = cfg
        nf = 3 * 2 * cfg.n_fourier
        d = cfg.d_model
        self.ego_in = nn.Linear(EGO_DIM + nf, d)
        self.geo_in = nn.Linear(GEO_DIM + nf, d)
        self.obj_in = nn.Linear(OBJ_DIM + nf, d)
        self.ego_mlp = nn.Sequential(nn.GELU(), nn.Linear(d, d))
        self.geo_mlp = nn.Sequential(nn.GELU(), nn.Linear(d, d))
        self.obj_mlp = nn.Sequential(nn.GELU(), nn.Linear(d, d))
        gh, gw = cfg.grid
        self.cell_embed = nn.Parameter(torch.randn(gh * gw, d) * 0.02)  # where in the image
        self.type_embed = nn.Parameter(torch.randn(3, d) * 0.02)  # ego / geometry / object
        self.norm = nn.LayerNorm(d)

    def norm_pos(self, p: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
        """World metres [..., 3] -> normalised; origin [B, 3] broadcast over the middle dims."""
        shape = (origin.shape[0],) + (1,) * (p.dim() - 2) + (3,)
        return (p - origin.view(shape)) / self.cfg.pos_scale

    def forward(
        self,
        ego: torch.Tensor,  # [B, F, EGO_DIM]
        geo: torch.Tensor,  # [B, F, GH, GW, GEO_DIM]
        obj: torch.Tensor,  # [B, F, M, OBJ_DIM]
        obj_valid: torch.Tensor,  # [B, F, M] bool
        origin: torch.Tensor,  # [B, 3]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, F = ego.shape[:2]
        nf = self.cfg.n_fourier
        s = 1.0 / self.cfg.pos_scale

        e = ego.clone()
        p = self.norm_pos(e[..., EGO_FIELDS["position"]], origin)  # [B, F, 3]
        e[..., EGO_FIELDS["position"]] = p
        e[..., EGO_FIELDS["mean_depth"]] *= s
        e = torch.cat([e, fourier(p, nf)], dim=-1)

        g = geo.flatten(2, 3).clone()  # [B, F, GH*GW, GEO_DIM]
        has = (g[..., GEO_FIELDS["valid_fraction"]] > 0).to(g.dtype)  # [B, F, HW, 1]
        p = self.norm_pos(g[..., GEO_FIELDS["mean_xyz"]], origin) * has  # cells without depth stay 0
        g[..., GEO_FIELDS["mean_xyz"]] = p
        for k in ("mean_depth", "free_range", "z_min", "z_max"):
            g[..., GEO_FIELDS[k]] *= s
        g = torch.cat([g, fourier(p, nf) * has], dim=-1)

        o = obj.clone()
        v = obj_valid.unsqueeze(-1).to(o.dtype)
        p = self.norm_pos(o[..., OBJ_FIELDS["center"]], origin) * v
        o[..., OBJ_FIELDS["center"]] = p
        o[..., OBJ_FIELDS["size"]] *= s
        o = torch.cat([o, fourier(p, nf) * v], dim=-1)

        te = self.ego_mlp(self.ego_in(e)) + self.type_embed[0]  # [B, F, D]
        tg = self.geo_mlp(self.geo_in(g)) + self.type_embed[1] + self.cell_embed  # [B, F, HW, D]
        to = self.obj_mlp(self.obj_in(o)) + self.type_embed[2]  # [B, F, M, D]
        x = torch.cat([te.unsqueeze(2), tg, to], dim=2)  # [B, F, T, D]
        valid = torch.cat(
            [torch.ones(B, F, 1 + tg.shape[2], dtype=torch.bool, device=x.device), obj_valid.bool()], dim=2
        )  # [B, F, T]
        return self.norm(x), valid


class SpatialMemoryModel(nn.Module):
    def __init__(self, cfg: MemoryConfig | None = None, variant: str = "ttt") -> None:
        super().__init__()
        self.cfg = cfg or MemoryConfig()
        self.variant = variant
        self.embed = TokenEmbedding(self.cfg)
        self.backbone = TTTBackbone(backbone_config(self.cfg, variant))
        self.smap = None
        if self.cfg.spatial_map and self.cfg.readout == "grid":
            # Variants without a TTT memory (ttt_frozen, sliding_window, full_context) never write the map.
            no_write = variant in NO_MAP_WRITES
            self.smap = SpatialMap(
                self.cfg.d_model,
                self.cfg.map_dim,
                period=self.cfg.map_period,
                hidden_ratio=self.cfg.map_hidden_ratio,
                lr_scale=0.0 if no_write else 1.0,
                chunk_frames=self.cfg.chunk_frames,
                max_objects=self.cfg.max_objects,
                free_per_frame=self.cfg.grid[0] * self.cfg.grid[1] * self.cfg.map_free_samples,
            )
        if self.cfg.readout == "grid":
            self.decoder = GridDecoder(self.cfg.d_model, self.cfg.grid_cells,
                                       map_features=self.cfg.map_dim + 5 if self.smap is not None else 0)
        elif self.cfg.readout == "slots":
            self.decoder = SlotDecoder(
                self.cfg.d_model, default_slot_classes(self.cfg.slots_per_class, self.cfg.slots_default)
            )
        else:
            raise ValueError(f"readout must be 'slots' or 'grid', got {self.cfg.readout!r}")

    @property
    def n_slots(self) -> int:
        return self.decoder.n_slots

    @property
    def writes_map(self) -> bool:
        """True when this model has a position-keyed map and its variant writes it."""
        return self.smap is not None and self.variant not in NO_MAP_WRITES

    def state_signature(self) -> dict:
        """Signature of the streaming state (backbone, plus the map when the model has one)."""
        sig = self.backbone.signature()
        if self.smap is not None:
            sig = {**sig, "spatial_map": {"dim": self.cfg.map_dim, "hidden": self.smap.hidden, "keys": "torus_place_cells",
                                          "period": self.smap.period, "tokens_per_frame": self.smap.tokens_per_frame}}
        return sig

    def _split(self, state):
        """Full state -> (backbone StreamingState, map state dict or None). The map's state is
        kept as one extra entry after the backbone's layers."""
        if state is None or self.smap is None:
            return state, None
        n = len(self.backbone.blocks)
        return StreamingState(state.layers[:n], state.frames_seen, state.signature), state.layers[n]

    def map_inputs(self, obj, obj_valid, origin):
        """Object tokens -> (xy [B, F, M, 2] normalised, raw value fields [B, F, M, RAW_DIM], valid [B, F, M])."""
        s = 1.0 / self.cfg.pos_scale
        c = obj[..., OBJ_FIELDS["center"]]
        xy = (c[..., :2] - origin[:, None, None, :2]) * s  # [B, F, M, 2]
        t = obj[..., OBJ_FIELDS["time"]]
        raw = torch.cat(
            [obj[..., OBJ_FIELDS["class_onehot"]], obj[..., OBJ_FIELDS["score"]], xy, c[..., 2:3] * s,
             obj[..., OBJ_FIELDS["log_size"]], t, t * t, torch.exp(SIZE_POWER * obj[..., OBJ_FIELDS["log_size"]])], -1
        )  # [B, F, M, RAW_DIM]
        v = obj_valid.bool()
        raw = raw * v.unsqueeze(-1).to(raw.dtype)
        return xy, raw, v

    def free_space_samples(self, ego, geo, origin, min_valid: float = 0.2, stop_short: float = 0.15):
        """Points on the floor between the camera and what each geometry cell's depth ray hits.

        ego [B, F, EGO_DIM], geo [B, F, GH, GW, GEO_DIM] -> (xy [B, F, GH*GW*K, 2] normalised,
        valid [B, F, GH*GW*K]) with K = map_free_samples evenly spaced along each ray, stopping
        ``stop_short`` m before the hit (the wall itself is not floor); cells with less than
        ``min_valid`` valid depth write nothing. Why: the seen floor area is the room's extent.
        """
        k = self.cfg.map_free_samples
        s = 1.0 / self.cfg.pos_scale
        cam = (ego[..., EGO_FIELDS["position"]][..., :2] - origin[:, None, :2]) * s  # [B, F, 2]
        g = geo.flatten(2, 3)  # [B, F, R, G]
        hit = (g[..., GEO_FIELDS["mean_xyz"]][..., :2] - origin[:, None, None, :2]) * s  # [B, F, R, 2]
        ray = hit - cam.unsqueeze(2)
        length = ray.norm(dim=-1, keepdim=True)  # [B, F, R, 1]
        keep = (1.0 - stop_short * s / length.clamp_min(1e-6)).clamp_min(0.0)
        frac = (torch.arange(k, dtype=ray.dtype, device=ray.device) + 0.5) / k  # [K]
        pts = cam[:, :, None, None, :] + (frac[:, None] * keep.unsqueeze(-2)) * ray.unsqueeze(-2)  # [B, F, R, K, 2]
        ok = (g[..., GEO_FIELDS["valid_fraction"]][..., 0] >= min_valid) & (length[..., 0] > stop_short * s)
        ok = ok & torch.isfinite(hit).all(-1)
        pts = torch.where(ok[..., None, None], pts, torch.zeros_like(pts))
        return pts.flatten(2, 3), ok.unsqueeze(-1).expand(-1, -1, -1, k).flatten(2, 3)

    def observe(self, ego, geo, obj, obj_valid, origin, state=None):
        """Write frames into the memory; returns the new streaming state."""
        x, valid = self.embed(ego, geo, obj, obj_valid, origin)
        bstate, mstate = self._split(state)
        frames_seen = 0 if bstate is None else bstate.frames_seen
        y, bstate = self.backbone(x, valid, bstate)
        if self.smap is None:
            return bstate
        if mstate is None:
            mstate = self.smap.init_state(x.shape[0], x.device)
        xy, raw, v = self.map_inputs(obj, obj_valid, origin)
        m0 = 1 + self.cfg.grid[0] * self.cfg.grid[1]
        vals = self.smap.values(raw, y[:, :, m0:])  # [B, F, M, dk]; y: backbone outputs of the object tokens
        if self.cfg.map_free_samples > 0:
            fxy, fv = self.free_space_samples(ego, geo, origin)
            xy, v = torch.cat([xy, fxy], 2), torch.cat([v, fv], 2)
            vals = torch.cat([vals, self.smap.free_values(fv.shape, x.device)], 2)
        keys = self.smap.keys(xy.flatten(1, 2))
        mstate = self.smap.write(mstate, keys, vals.flatten(1, 2), v.flatten(1, 2), frames_seen)
        return StreamingState(bstate.layers + [mstate], bstate.frames_seen, self.state_signature())

    def decode(self, state, batch: int) -> DecodedSlots:
        if self.cfg.readout == "grid":
            bstate, mstate = self._split(state)
            map_fn = None
            if self.smap is not None:
                map_fn = lambda c, cell: self.smap.read_cells(mstate, c, cell)  # noqa: E731
            return self.decoder(lambda q: self.backbone.read(bstate, q), batch, map_fn)
        q = self.decoder.queries(batch)  # [B, S+1, D]
        return self.decoder(self.backbone.read(state, q))

    def decode_room(self, state, batch: int) -> torch.Tensor:
        """The room readout alone (grid readout): [B, 5]."""
        bstate, _ = self._split(state)
        return self.decoder.room(lambda q: self.backbone.read(bstate, q), batch)

    def read_map(self, state, settings: PeakSettings):
        """Objects and seen floor read from the map (batch element 0): (list of map_readout.MapObject,
        map_readout.MapRoom or None)."""
        _, mstate = self._split(state)
        reads, pos = read_map(self.smap, mstate, settings.cells)
        objects = find_objects(reads, pos, self.smap.period, settings, self.cfg.pos_scale)
        return objects, seen_floor(reads, pos, settings, self.cfg.pos_scale)

    def forward_stream(self, ego, geo, obj, obj_valid, origin, read_after: list[int]) -> list[DecodedSlots]:
        """Run a batch of streams, decoding after each frame count in ``read_after`` (sorted)."""
        outs, state, start = [], None, 0
        for end in read_after:
            if end > start:
                state = self.observe(
                    ego[:, start:end], geo[:, start:end], obj[:, start:end], obj_valid[:, start:end], origin, state
                )
                start = end
            outs.append(self.decode(state, ego.shape[0]))
        return outs


def tokens_to_arrays(frames: list[FrameTokens]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stack FrameTokens into (ego [F,E], geo [F,GH,GW,G], obj [F,M,O], valid [F,M])."""
    return (
        np.stack([f.ego for f in frames]).astype(np.float32),
        np.stack([f.geometry for f in frames]).astype(np.float32),
        np.stack([f.objects for f in frames]).astype(np.float32),
        np.stack([f.object_valid for f in frames]).astype(bool),
    )


class TTTMemory:
    """``SpatialMemory`` around a ``SpatialMemoryModel`` (inference only, torch.no_grad).

    Frames are buffered and written ``chunk_frames`` at a time (the backbone gives the
    same result for any grouping, so ``inventory()`` just flushes a partial chunk).
    State = the backbone's StreamingState + at most one chunk of pending frames, so
    ``state_bytes()`` does not grow with the stream (except the full_context variant).
    """

    def __init__(
        self,
        model: SpatialMemoryModel,
        name: str | None = None,
        threshold: float | None = None,
        merge_radius: float | None = None,
        device: str = "cpu",
        nms: bool | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.name = name or model.variant
        # Decoding settings: explicit > tuned on validation seeds (stored in the checkpoint info) > defaults.
        info = getattr(model, "checkpoint_info", {}) or {}
        self.threshold = float(threshold if threshold is not None else info.get("decode_threshold", 0.5))
        self.merge_radius = float(merge_radius if merge_radius is not None else info.get("merge_radius", 0.3))
        self.nms = bool(nms if nms is not None else info.get("decode_nms", False))
        # Models that write the map read their objects from it (memory/map_readout.py).
        self.peak_settings = PeakSettings.from_info(info)
        self.device = device
        self.chunk_frames = model.cfg.chunk_frames
        self.reset()

    def reset(self) -> None:
        self.state = None
        self.pending: list[FrameTokens] = []
        self.origin: np.ndarray | None = None  # (3,) world metres
        self.start_stamp: float | None = None
        self.last_stamp = 0.0
        self.next_due = 0.0
        self.n_frames = 0  # frames observed
        self.n_written = 0  # keyframes written into the memory
        # Decoding reads 24 x 24 cells through every layer (hundreds of ms on a small CPU); the
        # state only changes when a keyframe is written, so asks between keyframes reuse it.
        self._decoded_at: tuple[tuple, Inventory] | None = None  # (n_written + decode settings, inventory)

    def observe(self, tokens: FrameTokens) -> None:
        if self.origin is None:
            pos = tokens.ego[EGO_FIELDS["position"]].astype(np.float64)
            self.origin = np.array([pos[0], pos[1], 0.0])
            self.start_stamp = float(tokens.stamp) - float(tokens.time)
            self.next_due = float(tokens.stamp)
        self.last_stamp = float(tokens.stamp)
        self.n_frames += 1
        # Keyframing: the model was trained on streams at keyframe_hz, so write frames at
        # that average rate (due times advance by one period; a gap does not cause a burst).
        hz = self.model.cfg.keyframe_hz
        if hz > 0:
            if float(tokens.stamp) < self.next_due - 1e-6:
                return
            period = 1.0 / hz
            self.next_due = max(self.next_due + period, float(tokens.stamp) - period)
        self.pending.append(tokens)
        self.n_written += 1
        if len(self.pending) >= self.chunk_frames:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        ego, geo, obj, valid = tokens_to_arrays(self.pending)
        t = lambda a: torch.from_numpy(a).unsqueeze(0).to(self.device)  # noqa: E731  add batch dim
        origin = torch.tensor(self.origin, dtype=torch.float32, device=self.device).unsqueeze(0)
        with torch.no_grad():
            self.state = self.model.observe(t(ego), t(geo), t(obj), t(valid), origin, self.state)
        self.pending = []

    def decoded(self) -> DecodedSlots:
        self._flush()
        with torch.no_grad():
            return self.model.decode(self.state, 1)

    def inventory(self) -> Inventory:
        if self.origin is None:
            return Inventory(objects=[], room=None, stamp=0.0, start_stamp=0.0)
        key = (self.n_written, self.threshold, self.merge_radius, self.nms)
        if self._decoded_at is not None and self._decoded_at[0] == key:
            inv = self._decoded_at[1]  # same state; only the stamp of the newest frame moved on
            return dataclasses.replace(inv, objects=list(inv.objects), stamp=self.last_stamp)
        inv = self._map_inventory() if self.model.writes_map else slots_to_inventory(
            self.decoded(),
            origin=self.origin,
            pos_scale=self.model.cfg.pos_scale,
            time_scale=1.0 / TIME_SCALE,
            stamp=self.last_stamp,
            start_stamp=self.start_stamp,
            threshold=self.threshold,
            merge_radius=self.merge_radius,
            nms=self.nms,
        )
        self._decoded_at = (key, inv)
        return inv

    def _map_inventory(self) -> Inventory:
        """Objects from the map's peaks, room extent from the map's seen floor."""
        self._flush()
        cfg = self.model.cfg
        with torch.no_grad():
            found, floor = self.model.read_map(self.state, self.peak_settings)
        s = self.peak_settings.min_observations
        objects = [
            InventoryObject(
                label=CLASSES[o.class_id],
                center=np.array([*(o.xy * cfg.pos_scale + self.origin[:2]), o.z * cfg.pos_scale]),
                size=np.exp(np.clip(o.log_size, -4.0, 2.5)),
                first_seen=o.first_seen / TIME_SCALE,
                confidence=float(min(1.0, o.observations / (4.0 * s))),
            )
            for o in found
        ]
        objects.sort(key=lambda o: o.first_seen)
        if floor is not None:  # the seen floor; the room readout only when no floor was written
            o = self.origin[:2]
            room_out = Room(area_m2=floor.area, min_xy=floor.min_xy * cfg.pos_scale + o, max_xy=floor.max_xy * cfg.pos_scale + o)
        else:
            with torch.no_grad():
                room = self.model.decode_room(self.state, 1)[0]  # [5]
            room_out = room_from_vector(room.float().cpu().numpy(), self.origin, cfg.pos_scale)
        return Inventory(
            objects=objects,
            room=room_out,
            stamp=self.last_stamp,
            start_stamp=self.start_stamp,
        )

    def state_bytes(self) -> int:
        n = 0 if self.state is None else int(self.state.nbytes())
        for f in self.pending:  # at most chunk_frames - 1 frames
            n += f.ego.nbytes + f.geometry.nbytes + f.objects.nbytes + f.object_valid.nbytes
        return n + 64  # origin, stamps

    def save(self, path: str | Path) -> None:
        """Save the memory state (backbone state + stream origin/stamps) for resuming."""
        self._flush()
        if self.state is None:
            raise ValueError("nothing to save: the memory has not observed any frame")
        path = Path(path)
        self.state.save(path)
        side = {
            "origin": self.origin.tolist(),
            "start_stamp": self.start_stamp,
            "last_stamp": self.last_stamp,
            "n_frames": self.n_frames,
            "n_written": self.n_written,
            "next_due": self.next_due,
            "variant": self.model.variant,
        }
        path.with_suffix(path.suffix + ".json").write_text(json.dumps(side))

    def load(self, path: str | Path) -> None:
        from spatial_ttt_ros.ttt.state import StreamingState  # noqa: PLC0415

        path = Path(path)
        side_path = path.with_suffix(path.suffix + ".json")
        if not side_path.is_file():
            raise FileNotFoundError(f"{side_path} (the memory's stream info) is missing")
        side = json.loads(side_path.read_text())
        self.reset()
        self.state = StreamingState.load(path, signature=self.model.state_signature())
        self.origin = np.array(side["origin"], dtype=np.float64)
        self.start_stamp = float(side["start_stamp"])
        self.last_stamp = float(side["last_stamp"])
        self.n_frames = int(side["n_frames"])
        self.n_written = int(side.get("n_written", 0))
        self.next_due = float(side.get("next_due", self.last_stamp))
