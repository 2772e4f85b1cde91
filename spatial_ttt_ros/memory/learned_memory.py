"""``SpatialMemory`` around the learned TTT map (memory/learned_model.py): the ``ttt`` method.

Every frame is written (``Ablation.keyframes_only`` writes 2 a second, for the ablation):
frames are buffered and written ``chunk_frames`` at a time, one inner step per chunk;
``inventory()`` also sees the pending partial chunk (stepped on a copy, the state is
unchanged). State = the fast weights (fixed size, < 1 MiB), the bounding box of what was
written, and at most ``chunk_frames - 1`` pending frames: flat however long the robot runs.

Saved state: safetensors (the weights) plus JSON (stamps, counters, box); a file whose
tensor names, shapes or values do not fit this model is refused and the memory is kept.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from spatial_ttt_ros.classes import CLASSES
from spatial_ttt_ros.inventory import Inventory, InventoryObject, Room
from spatial_ttt_ros.memory.learned_model import Ablation, LearnedMapModel
from spatial_ttt_ros.memory.learned_readout import decode, grid_inputs, seen_floor
from spatial_ttt_ros.memory.learned_map import CH_BIRTH_T
from spatial_ttt_ros.memory.learned_writes import frame_floor, frame_writes
from spatial_ttt_ros.perception.tokens import N_CLASSES, TIME_SCALE, FrameTokens

STATE_KIND = "spatial_ttt_ros.learned_map_state"
KEYFRAME_HZ = 2.0
FLOOR_RING = 256  # frames whose lowest seen surface the floor height is estimated from
FLOOR_QUANTILE = 0.2
MAX_SPAN_M = 1.0e4  # positions beyond this are refused (a corrupt pose, not a building)


def frames_to_tensors(frames: list[FrameTokens]):
    """FrameTokens -> (ego [F, E], geo [F, GH, GW, G], obj [F, M, O], valid [F, M]) tensors."""
    ego = torch.from_numpy(np.stack([f.ego for f in frames]).astype(np.float32))
    geo = torch.from_numpy(np.stack([f.geometry for f in frames]).astype(np.float32))
    obj = torch.from_numpy(np.stack([f.objects for f in frames]).astype(np.float32))
    valid = torch.from_numpy(np.stack([f.object_valid for f in frames]).astype(bool))
    return ego, geo, obj, valid


class LearnedTTTMemory:
    def __init__(self, model: LearnedMapModel, name: str = "ttt", ablation: Ablation = Ablation(),
                 threshold: float | None = None, trained_readout: bool = True) -> None:
        self.model = model.eval()
        # False (the untrained-readout ablation): the class evidence itself is the heatmap, no CNN.
        self.trained_readout = trained_readout
        self.name = name
        self.ablation = ablation
        self.threshold = float(model.cfg.threshold if threshold is None else threshold)
        self.reset()

    def reset(self) -> None:
        self.w = self.model.init_weights()
        self.offset = torch.zeros(2)  # drift correction carried between chunks (memory/learned_alignment.py)
        # Floor height: a low percentile of the lowest surface seen per frame (a fixed ring of them).
        self.floor_seen = torch.full((FLOOR_RING,), float("nan"))
        self.floor_z = 0.0
        self.lo: np.ndarray | None = None  # (2,) world xy box of what was written
        self.hi: np.ndarray | None = None
        self.pending: list[FrameTokens] = []
        self.start_stamp: float | None = None
        self.last_stamp = 0.0
        self.n_frames = 0
        self.n_written = 0
        self.next_due = 0.0
        self._cached: tuple[int, Inventory] | None = None

    @property
    def threshold(self) -> float:
        """Heatmap value for an object (decoding only): a new one takes effect at the next read."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = float(value)
        self._cached = None  # the cached inventory was decoded at the old threshold

    # ---------------------------------------------------------------- writing
    def observe(self, tokens: FrameTokens) -> None:
        if self.start_stamp is None:
            self.start_stamp = float(tokens.stamp) - float(tokens.time)
            self.next_due = float(tokens.stamp)
        self.last_stamp = float(tokens.stamp)
        self.n_frames += 1
        if self.ablation.keyframes_only:
            if float(tokens.stamp) < self.next_due - 1e-6:
                return
            self.next_due = max(self.next_due + 1.0 / KEYFRAME_HZ, float(tokens.stamp) - 1.0 / KEYFRAME_HZ)
        self.pending.append(tokens)
        self.n_written += 1
        if len(self.pending) >= self.model.cfg.chunk_frames:
            self._update_floor(frames_to_tensors(self.pending)[1])
            self.w, self.offset, self.lo, self.hi = self._stepped(self.pending)
            self.pending = []

    def _update_floor(self, geo: torch.Tensor) -> None:
        low = frame_floor(geo)
        self.floor_seen = torch.cat([self.floor_seen[len(low):], low])[-FLOOR_RING:]
        seen = self.floor_seen[torch.isfinite(self.floor_seen)]
        if len(seen):
            self.floor_z = float(torch.quantile(seen, FLOOR_QUANTILE))

    def _stepped(self, frames: list[FrameTokens]):
        """Write ``frames`` as one chunk on top of the state -> (w, offset, lo, hi); the state is unchanged."""
        toks = frame_writes(*frames_to_tensors(frames), floor_z=self.floor_z)
        if toks.xy.shape[0] == 0:
            return self.w, self.offset, self.lo, self.hi
        with torch.no_grad():
            w, offset, toks = self.model.write_chunk(self.w, toks, self.offset, self.ablation)
        xy = toks.xy.numpy().astype(np.float64)
        lo = xy.min(0) if self.lo is None else np.minimum(self.lo, xy.min(0))
        hi = xy.max(0) if self.hi is None else np.maximum(self.hi, xy.max(0))
        return w, offset, lo, hi

    # ---------------------------------------------------------------- reading
    def inventory(self) -> Inventory:
        if self.start_stamp is None:
            return Inventory(objects=[], room=None, stamp=0.0, start_stamp=0.0)
        if self._cached is not None and self._cached[0] == self.n_written:
            inv = self._cached[1]
            return dataclasses.replace(inv, objects=list(inv.objects), stamp=self.last_stamp)
        inv = self._decode()
        self._cached = (self.n_written, inv)
        return inv

    def _decode(self) -> Inventory:
        w, lo, hi = self.w, self.lo, self.hi
        if self.pending:  # the partial chunk, stepped on a copy
            w, _, lo, hi = self._stepped(self.pending)
        if lo is None:
            return Inventory(objects=[], room=None, stamp=self.last_stamp, start_stamp=self.start_stamp)
        with torch.no_grad():
            reads, xs, ys = self.model.read_grid(w, lo, hi)
        return self._inventory_from_reads(reads, xs, ys)

    def _inventory_from_reads(self, reads: torch.Tensor, xs: np.ndarray, ys: np.ndarray) -> Inventory:
        with torch.no_grad():
            if self.trained_readout:
                x, heat, size, offset = self.model.read_out(reads)
            else:
                x = grid_inputs(reads)
                heat = torch.logit(reads[..., :N_CLASSES].permute(2, 0, 1).clamp(1e-4, 1 - 1e-4))
                size, offset = torch.zeros(3, *heat.shape[1:]), torch.zeros(2, *heat.shape[1:])
        found = decode(x, heat, size, offset, xs, ys, self._threshold)
        objects = [
            InventoryObject(
                label=CLASSES[o.class_id],
                center=np.array([o.xy[0], o.xy[1], o.z + self.floor_z]),
                size=o.size,
                first_seen=o.first_seen / TIME_SCALE,
                confidence=float(min(1.0, o.score)),
            )
            for o in found
        ]
        objects.sort(key=lambda o: o.first_seen)
        floor = seen_floor(reads, xs, ys)
        room = None if floor is None else Room(area_m2=floor[0], min_xy=floor[1], max_xy=floor[2])
        return Inventory(objects=objects, room=room, stamp=self.last_stamp, start_stamp=self.start_stamp)

    # ---------------------------------------------------------------- state
    def state_bytes(self) -> int:
        n = self.w.numel() * self.w.element_size() + self.offset.nbytes + self.floor_seen.nbytes + 2 * 16 + 64
        for f in self.pending:  # at most chunk_frames - 1 frames
            n += f.ego.nbytes + f.geometry.nbytes + f.objects.nbytes + f.object_valid.nbytes
        return n

    def signature(self) -> dict:
        return {"kind": STATE_KIND, "entries": int(self.w.shape[0]), "channels": int(self.w.shape[1]),
                "levels": [[lv.cell, lv.cells] for lv in self.model.keys.levels]}

    def save(self, path: str | Path) -> None:
        """Write the state (pending frames are stepped in first) as safetensors + JSON metadata."""
        if self.start_stamp is None:
            raise ValueError("nothing to save: the memory has not observed any frame")
        if self.pending:
            self.w, self.offset, self.lo, self.hi = self._stepped(self.pending)
            self.pending = []
        meta = {
            "signature": json.dumps(self.signature()),
            "stream": json.dumps({
                "start_stamp": self.start_stamp, "last_stamp": self.last_stamp, "n_frames": self.n_frames,
                "n_written": self.n_written, "next_due": self.next_due, "offset": self.offset.tolist(), "floor_z": self.floor_z,
                "lo": None if self.lo is None else self.lo.tolist(), "hi": None if self.hi is None else self.hi.tolist(),
            }),
        }
        save_file({"w": self.w.contiguous()}, str(path), metadata=meta)

    def load(self, path: str | Path) -> None:
        """Restore a state written by ``save``; anything that does not fit raises ValueError (memory kept)."""
        from safetensors import safe_open  # noqa: PLC0415

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                names = set(f.keys())
        except Exception as e:  # safetensors raises several types for a foreign or corrupt file
            raise ValueError(f"{path.name} is not a memory state file: {e}") from None
        try:
            sig = json.loads(meta.get("signature", "null"))
            stream = json.loads(meta.get("stream", "null"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path.name}: unreadable metadata ({e})") from None
        if sig != self.signature():
            raise ValueError(f"{path.name} holds another memory (signature {sig!r}, this memory is {self.signature()!r})")
        if names != {"w"}:
            raise ValueError(f"{path.name}: expected one tensor 'w', found {sorted(names)}")
        w = load_file(str(path))["w"]
        if tuple(w.shape) != tuple(self.w.shape) or w.dtype != torch.float32 or not bool(torch.isfinite(w).all()):
            raise ValueError(f"{path.name}: weights of shape {tuple(w.shape)}/{w.dtype} or non-finite do not fit")
        st = _validated_stream(stream, path.name)
        self.reset()
        self.w = w
        self.start_stamp, self.last_stamp = st["start_stamp"], st["last_stamp"]
        self.n_frames, self.n_written, self.next_due = st["n_frames"], st["n_written"], st["next_due"]
        self.lo = None if st["lo"] is None else np.array(st["lo"], np.float64)
        self.hi = None if st["hi"] is None else np.array(st["hi"], np.float64)
        self.offset = torch.tensor(st["offset"], dtype=torch.float32)
        self.floor_z = st["floor_z"]


def _validated_stream(stream, name: str) -> dict:
    if not isinstance(stream, dict):
        raise ValueError(f"{name}: no stream metadata")
    out = {}
    fz = stream.get("floor_z", 0.0)
    if not isinstance(fz, (int, float)) or not math.isfinite(fz) or abs(fz) > MAX_SPAN_M:
        raise ValueError(f"{name}: floor_z = {fz!r} is not a height")
    out["floor_z"] = float(fz)
    for k in ("start_stamp", "last_stamp", "next_due"):
        v = stream.get(k)
        if not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > 1e10:
            raise ValueError(f"{name}: {k} = {v!r} is not a finite stamp")
        out[k] = float(v)
    if out["last_stamp"] < out["start_stamp"]:
        raise ValueError(f"{name}: last_stamp before start_stamp")
    for k in ("n_frames", "n_written"):
        v = stream.get(k)
        if not isinstance(v, int) or not 0 <= v < 2**53:
            raise ValueError(f"{name}: {k} = {v!r} is not a frame count")
        out[k] = v
    for k in ("lo", "hi", "offset"):
        v = stream.get(k)
        if v is not None and not (
            isinstance(v, list) and len(v) == 2 and all(isinstance(a, (int, float)) and math.isfinite(a) and abs(a) < MAX_SPAN_M for a in v)
        ):
            raise ValueError(f"{name}: {k} = {v!r} is not a box corner")
        out[k] = v
    if out["offset"] is None:
        out["offset"] = [0.0, 0.0]
    return out


class AttentionMemory(LearnedTTTMemory):
    """The baselines: every write token kept (``window_s`` None: full context) or those of the last
    ``window_s`` seconds (sliding window), read by attention (memory/learned_attention.py) with the
    same tokens, rates and readout as the TTT map. State grows with the stream (full context)."""

    def __init__(self, model: LearnedMapModel, name: str, window_s: float | None = None, threshold: float | None = None) -> None:
        self.window_s = window_s
        super().__init__(model, name=name, threshold=threshold)

    def reset(self) -> None:
        super().reset()
        self.frames: list[tuple[float, object, torch.Tensor]] = []  # (stamp, WriteTokens, eta)

    def observe(self, tokens: FrameTokens) -> None:
        if self.start_stamp is None:
            self.start_stamp = float(tokens.stamp) - float(tokens.time)
        self.last_stamp = float(tokens.stamp)
        self.n_frames += 1
        self.n_written += 1
        arrays = frames_to_tensors([tokens])
        self._update_floor(arrays[1])
        toks = frame_writes(*arrays, floor_z=self.floor_z)
        with torch.no_grad():
            eta = self.model.rates(toks)
        self.frames.append((float(tokens.stamp), toks, eta))
        if self.window_s is not None:
            while self.frames and self.frames[0][0] < self.last_stamp - self.window_s:
                self.frames.pop(0)

    def _decode(self) -> Inventory:
        from spatial_ttt_ros.memory.learned_attention import attention_grid  # noqa: PLC0415
        from spatial_ttt_ros.memory.learned_writes import WriteTokens  # noqa: PLC0415

        if not self.frames:
            return Inventory(objects=[], room=None, stamp=self.last_stamp, start_stamp=self.start_stamp)
        toks = WriteTokens.cat([f[1] for f in self.frames])
        if toks.xy.shape[0] == 0:
            return Inventory(objects=[], room=None, stamp=self.last_stamp, start_stamp=self.start_stamp)
        eta = torch.cat([f[2] for f in self.frames])
        times = toks.target[:, CH_BIRTH_T]
        xy = toks.xy.numpy().astype(np.float64)
        with torch.no_grad():
            reads, xs, ys = attention_grid(toks, eta, times, xy.min(0), xy.max(0))
        return self._inventory_from_reads(reads, xs, ys)

    def state_bytes(self) -> int:
        return sum(t.xy.nbytes + t.target.nbytes + t.mask.nbytes + t.lr_in.nbytes + t.kind.nbytes + e.nbytes for _, t, e in self.frames) + 64

    def save(self, path: str | Path) -> None:
        raise NotImplementedError(f"{self.name} is a benchmark baseline; its token store is not saved")

    def load(self, path: str | Path) -> None:
        raise NotImplementedError(f"{self.name} is a benchmark baseline; its token store is not saved")
