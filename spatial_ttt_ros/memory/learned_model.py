"""The learned TTT map model: position keys + learned learning rates + fast-weight map + CNN readout.

    frames --learned_writes--> write tokens (xy, targets, lr inputs)
           --PositionKeys-->   sparse keys            (fixed level gains)
           --rate heads-->     per-token learning rates (learned from score, range, angle, depth)
           --learned_map.step  fast weights w [E, C + 1]   (one error-driven step per chunk of frames)
    w --read on a grid--> reads --ReadoutNet--> heatmaps --decode--> objects; free channel -> floor

Ablation switches (``Ablation``) remove one thing each: the error term (additive writes),
the learned rates (constant), per-frame writes (keyframes at 2 Hz only), the drift alignment
(memory/learned_alignment.py), the accumulated curvature of the step (learned_map.step); the untrained readout is made by memory/factory.py. Everything is differentiable end to end (training/learned_train.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from spatial_ttt_ros.memory import learned_map as lm
from spatial_ttt_ros.memory.learned_alignment import align
from spatial_ttt_ros.memory.learned_keys import PositionKeys
from spatial_ttt_ros.memory.learned_readout import ReadoutNet, grid_axes, grid_inputs
from spatial_ttt_ros.memory.learned_writes import KIND_FLOOR, KIND_OBJECT, KIND_SEE_THROUGH, LR_FEATURES, WriteTokens

# Initial rates per kind (before training): objects, see-through free space, floor samples.
INIT_RATES = {KIND_OBJECT: 0.3, KIND_SEE_THROUGH: 0.1, KIND_FLOOR: 0.3}


@dataclass(frozen=True)
class Ablation:
    error_term: bool = True  # False: additive writes (linear inner loss, nothing saturates)
    learned_rates: bool = True  # False: every token of a kind at its initial rate
    keyframes_only: bool = False  # True: write 2 frames a second, as the previous memory did
    align: bool = True  # False: no drift alignment by read-before-write (memory/learned_alignment.py)
    accumulate: bool = True  # False: each chunk's step sized by its own curvature only (learned_map.step)


@dataclass
class LearnedMapConfig:
    chunk_frames: int = 8
    grid: tuple[int, int] = (4, 4)  # the token layout trained on: geometry grid cells and object slots
    max_objects: int = 16
    threshold: float = 0.3  # heatmap value for an object (chosen on validation seeds)
    readout_hidden: int = 32
    acc_max: float = lm.ACC_MAX  # cap of the accumulated curvature (learned_map.step); checkpoints before it: 16

    def to_dict(self) -> dict:
        return asdict(self)


class LearnedMapModel(nn.Module):
    def __init__(self, cfg: LearnedMapConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LearnedMapConfig()
        self.keys = PositionKeys()
        self.rate_head = nn.Linear(LR_FEATURES, 3)  # one rate per token kind
        nn.init.zeros_(self.rate_head.weight)
        with torch.no_grad():
            for kind, r in INIT_RATES.items():
                self.rate_head.bias[kind] = float(np.log(r / (1 - r)))
        self.readout = ReadoutNet(self.cfg.readout_hidden)

    @property
    def n_entries(self) -> int:
        return self.keys.n_entries

    def init_weights(self, device=None) -> Tensor:
        return lm.init_weights(self.n_entries, device)

    def rates(self, toks: WriteTokens, ablation: Ablation = Ablation()) -> Tensor:
        """Per-token, per-channel learning rates [N, C] (0 where a token does not write a channel)."""
        if ablation.learned_rates:
            logits = self.rate_head(toks.lr_in).gather(1, toks.kind.unsqueeze(1))  # [N, 1]
        else:
            logits = self.rate_head.bias[toks.kind].unsqueeze(1)
        return torch.sigmoid(logits) * toks.mask

    def write(self, w: Tensor, toks: WriteTokens, ablation: Ablation = Ablation()) -> Tensor:
        """One chunk's tokens -> the fast weights after its step (apply-then-update)."""
        if toks.xy.shape[0] == 0:
            return w
        index, weight = self.keys(toks.xy)
        eta = self.rates(toks, ablation)
        parts = weight.unsqueeze(-1) * w[index]  # [N, J, C + 1]: each key column's part of a read
        pred = parts.sum(-2)  # lm.read: what the chunk reads before its step (apply-then-update)
        # Birth channels: on the finest key level only, gated by the novelty of the place at that level
        # (coarse entries shared with a neighbour seen earlier would close the gate and lend its birth).
        # A level's bilinear weights sum to its gain, so the finest level holds g0 / sum(g) of a read.
        fine = self.keys.level_columns(0)
        births = slice(lm.CH_BIRTH, lm.CH_BIRTH_T + 1)
        g = self.keys.gains()
        held = (lm.evidence(parts[:, fine].sum(-2)) * (g.sum() / g[0])).detach()
        gate = torch.ones_like(eta)
        gate[:, births] = lm.novelty_gate(held).unsqueeze(-1)
        return lm.step(w, index, weight, toks.target, eta * gate, error_term=ablation.error_term,
                       pred=pred, accumulate=ablation.accumulate, acc_max=self.cfg.acc_max, narrow=(fine, births))

    def write_chunk(self, w: Tensor, toks: WriteTokens, offset: Tensor, ablation: Ablation = Ablation()):
        """Align the chunk to the map (drift offset carried between chunks), then write it.

        -> (new fast weights, new offset [2], the tokens as written).
        """
        if ablation.align and toks.xy.shape[0]:
            toks, offset = align(self.keys, w, toks, offset)
        return self.write(w, toks, ablation), offset, toks

    def read_grid(self, w: Tensor, lo: np.ndarray, hi: np.ndarray) -> tuple[Tensor, np.ndarray, np.ndarray]:
        """Reads [H, W, C] on the grid over [lo, hi] (world metres) -> (reads, xs, ys)."""
        xs, ys = grid_axes(lo, hi)[:2]
        gx, gy = np.meshgrid(xs, ys)
        q = torch.from_numpy(np.stack([gx, gy], -1).reshape(-1, 2)).float().to(w.device)
        index, weight = self.keys(q)
        return lm.read(w, index, weight).reshape(len(ys), len(xs), -1), xs, ys

    def read_out(self, reads: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """reads [H, W, C] -> (inputs [N_INPUTS, H, W], heat logits [K, H, W], size correction [3, H, W],
        centre offset [2, H, W] in cells)."""
        x = grid_inputs(reads)
        heat, size, offset = self.readout(x.unsqueeze(0))
        return x, heat[0], size[0], offset[0]
