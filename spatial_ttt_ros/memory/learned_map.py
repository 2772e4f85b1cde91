"""The learned TTT map: fast weights over position keys, written by error-driven gradient steps.

State: one fast-weight row per key entry, ``w [E, C]`` fp32 (E = entries of all key levels,
memory/learned_keys.py; C = the value channels below), started from zero (the slow weights
of a linear map with nothing written) and reset per episode. Its size never depends on how
many frames were seen.

Read (a TTT-Linear read with sparse keys): ``f_w(x) = sum_j weight_j(x) * w[index_j(x)]``.

Write, per chunk of frames (apply-then-update, as Spatial-TTT's large chunks): every token i
of the chunk first reads the weights left by the chunks before (``pred_i``), then one step of
the inner loss

    L(w) = 1/2 sum_i sum_c eta_ic (f_w(x_i)_c - v_ic)^2           (reconstruction, TTT-MLP's form)

is taken on w, with a diagonal preconditioner: each entry's step is divided by
max(1, sum_i eta_ic weight_ij |weight_i|_1), a bound on the row of L's curvature at that entry
(Gershgorin), so that many tokens at one place in one chunk cannot overshoot, however their
keys spread over levels and corners (the step then lands at most on their weighted mean).
The gradient has the error term ``pred - v``: what the memory already holds changes
the write. Re-sightings of an object saturate (the error shrinks); free space seen
through a place (target 0 in the object channels) fades what was held there.

Value channels (targets ``v``):

    0..15  class evidence: one-hot of the observed class (0 for see-through free space)
    16     height of the object's centre, m (weighted by evidence, so read as a ratio)
    17..19 size^SIZE_POWER along x, y, z (power mean of the views: partial views are smaller)
    20, 21 birth mass (target 1) and birth time (target t); their learning rate is gated by
           the novelty exp(-held evidence / NOVELTY) read before the step, so they keep
           *when something was first seen* at a place instead of the latest sighting
    22     free floor: 1 for floor samples along depth rays, 0 for objects
    23     object mass: 1 for objects, 0 for see-through free space (the denominator of 16..19)

Channels 16..21 and 23 are ratios of observations; they are written on the finest key level
only (``FINE_ONLY``; the caller's ``update_mask``), class evidence and free floor on all.

Per-token learning rates eta come from the token (memory/learned_memory.py: detection
score, range, viewing angle, depth validity) and a per-channel mask: floor samples write
only the free channel; see-through samples write everything.

Everything is out-of-place so a stream can be trained through (memory/learned_memory.py
and training/learned_train.py backpropagate through every write).
"""

from __future__ import annotations

import torch
from torch import Tensor

from spatial_ttt_ros.perception.tokens import N_CLASSES

SIZE_POWER = 4.0
CH_CLASS = 0
CH_Z = N_CLASSES
CH_SIZE = CH_Z + 1
CH_BIRTH = CH_SIZE + 3
CH_BIRTH_T = CH_BIRTH + 1
CH_FREE = CH_BIRTH_T + 1
CH_MASS = CH_FREE + 1
N_CHANNELS = CH_MASS + 1
# Channels read as ratios (means of what was observed at a place): kept on the finest key level
# only, so a coarse cell shared with the neighbours does not lend them its height, size or birth.
FINE_ONLY = (CH_Z, CH_SIZE, CH_SIZE + 1, CH_SIZE + 2, CH_BIRTH, CH_BIRTH_T, CH_MASS)
NOVELTY = 0.05  # held evidence at which the birth channels' rate falls to 1/e


def read(w: Tensor, index: Tensor, weight: Tensor) -> Tensor:
    """w [E, C], index/weight [N, J] -> f_w(x) [N, C]."""
    return (weight.unsqueeze(-1) * w[index]).sum(-2)


def step(w: Tensor, index: Tensor, weight: Tensor, target: Tensor, eta: Tensor, error_term: bool = True,
         update_mask: Tensor | None = None, pred: Tensor | None = None) -> Tensor:
    """One preconditioned gradient step of the chunk's inner loss (module doc) -> new w [E, C].

    index/weight [N, J]; target, eta [N, C] (eta 0: channel not written by that token);
    update_mask [E, C] (0: that entry never holds that channel); pred [N, C]: ``read(w, index,
    weight)`` when the caller already has it (apply-then-update reads it before the step anyway).
    Birth-channel gating is applied by the caller through ``eta`` (see ``novelty_gate``).
    ``error_term=False`` is the ablation with additive writes: the step of the linear loss
    -sum eta <f(x), v>, whose gradient ignores what the memory holds (no preconditioner either:
    nothing saturates).
    """
    e, c = w.shape
    if error_term:
        err = (read(w, index, weight) if pred is None else pred) - target  # [N, C]
    else:
        err = -target
    g = (eta * err).unsqueeze(1) * weight.unsqueeze(-1)  # [N, J, C]
    flat = index.reshape(-1)
    grad = torch.zeros(e, c, dtype=w.dtype, device=w.device).index_add(0, flat, g.reshape(-1, c))
    if not error_term:
        return w - grad
    # Row sums of the curvature sum_i eta_i h_i h_i^T (weights are >= 0): a Jacobi step divided by them
    # never overshoots (a per-entry diagonal alone diverges when many tokens share spread-out keys).
    curv = eta.unsqueeze(1) * (weight * weight.sum(-1, keepdim=True)).unsqueeze(-1)  # [N, J, C]
    h = torch.zeros(e, c, dtype=w.dtype, device=w.device).index_add(0, flat, curv.reshape(-1, c))
    return w - grad / h.clamp_min(1.0)


def evidence(values: Tensor) -> Tensor:
    """[..., C] reads -> [...] object evidence held (sum of the class channels, >= 0)."""
    return values[..., CH_CLASS : CH_CLASS + N_CLASSES].sum(-1).clamp_min(0.0)


def novelty_gate(held: Tensor) -> Tensor:
    """Evidence held at a token's place before its chunk [N] -> birth-channel rate factor [N]."""
    return torch.exp(-held / NOVELTY)


def init_weights(n_entries: int, device=None) -> Tensor:
    return torch.zeros(n_entries, N_CHANNELS, dtype=torch.float32, device=device)
