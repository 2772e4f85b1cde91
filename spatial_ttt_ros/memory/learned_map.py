"""The learned TTT map: fast weights over position keys, written by error-driven gradient steps.

State: one fast-weight row per key entry, ``w [E, C + 1]`` fp32 (E = entries of all key levels,
memory/learned_keys.py; C = the value channels below, then the accumulated curvature), started from zero (the slow weights
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

Accumulated curvature (the object channels: ``ACCUMULATED``). With the chunk's curvature
alone, each chunk that sees a place densely replaces what the place held (a step of size
1): the memory is an exponential average of the last few sightings, and on a real detector
the last views of a sofa labelled ``bed`` erase fifty earlier ``sofa`` ones. So the state
keeps, per entry, the curvature accumulated over every chunk so far (column ``CH_ACC`` of
w, capped at ``acc_max``, the model config's, ``ACC_MAX`` by default, so the map stays
plastic), and the object channels' step is divided by max(chunk curvature, accumulated)
instead: the first sightings still build evidence up
gradually, later ones move the place towards the weighted *mean* of all its sightings
(a diagonal version of solving the whole in-context regression, as MesaNet does). The class
channels then hold how often each label was seen there. The birth and free channels keep the
chunk's own curvature (first sightings are gated by novelty; free space may change).
``accumulate=False`` is the ablation.

Value channels (targets ``v``):

    0..15  class evidence: one-hot of the observed class (0 for see-through free space)
    16     height of the object's centre, m (weighted by evidence, so read as a ratio)
    17..19 size^SIZE_POWER along x, y, z (power mean of the views: partial views are smaller)
    20, 21 birth mass (target 1) and birth time (target t), on the finest key level only; their
           learning rate is gated by the novelty exp(-held evidence / NOVELTY), the evidence the
           finest level holds at the token's place before the step, so they keep *when something
           was first seen* at a place instead of the latest sighting
    22     free floor: 1 for floor samples along depth rays, 0 for objects
    23     object mass: 1 for objects, 0 for see-through free space (the denominator of 16..19)

Every other channel is written on every key level. Channels 16..21 and 23 are ratios of
observations (read as ratios, so the level gains cancel). Births on every level (v5, v6) let a
coarse 3 m entry shared with an object seen earlier both close a later neighbour's novelty gate
and lend it its birth: a fridge 2.4 m from an oven seen at 0.1 s came out first seen at 1.9 s
instead of 15.6 s. Keeping height, size and mass on the finest level as well cost the order of
appearance on validation (v4), so only the births are kept there (``narrow`` of ``step``).

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
N_CHANNELS = CH_MASS + 1  # value channels (targets)
CH_ACC = N_CHANNELS  # the state's last column: accumulated curvature of the object channels, not a value
N_STATE = N_CHANNELS + 1
# Channels whose step is divided by the accumulated curvature (every channel an object token
# writes at its plain rate: class evidence, height, size, mass).
ACCUMULATED = tuple(c for c in range(N_CHANNELS) if c not in (CH_BIRTH, CH_BIRTH_T, CH_FREE))
ACC_MAX = 16.0  # default cap of the accumulated curvature (LearnedMapConfig.acc_max): about 100 sightings at a place
NOVELTY = 0.05  # held evidence at which the birth channels' rate falls to 1/e


def read(w: Tensor, index: Tensor, weight: Tensor) -> Tensor:
    """w [E, C], index/weight [N, J] -> f_w(x) [N, C]."""
    return (weight.unsqueeze(-1) * w[index]).sum(-2)


def step(w: Tensor, index: Tensor, weight: Tensor, target: Tensor, eta: Tensor, error_term: bool = True,
         pred: Tensor | None = None, accumulate: bool = True, acc_max: float = ACC_MAX,
         narrow: tuple[Tensor, slice] | None = None) -> Tensor:
    """One preconditioned gradient step of the chunk's inner loss (module doc) -> new w [E, C + 1].

    w [E, C + 1] (value channels, then ``CH_ACC``); index/weight [N, J]; target, eta [N, C] (eta 0:
    channel not written by that token);
    pred [N, C(+1)]: ``read(w, index, weight)`` when the caller already has it (apply-then-update
    reads it before the step anyway). Birth-channel gating is applied by the caller through ``eta``
    (see ``novelty_gate``). ``error_term=False`` is the ablation with additive writes: the step of
    the linear loss -sum eta <f(x), v>, whose gradient ignores what the memory holds (no
    preconditioner either: nothing saturates). ``accumulate=False``: every channel's step divided by
    the chunk's own curvature only (the ablation of the accumulated curvature); ``acc_max``: its cap.
    ``narrow = (columns [J] bool, channels)``: those channels are written on those key columns only
    (the births, on the finest level); None: every channel on every column.
    """
    c = N_CHANNELS
    # Only the entries the chunk's keys touch can change (elsewhere the step is 0 / den = 0), so the
    # step is computed on those rows alone and put back: a chunk costs what it writes, not the table.
    rows, local = _touched(w.shape[0], index)  # [U] entries, [N, J] positions in rows
    u = rows.shape[0]
    values, acc = w[rows, :c], w[rows, CH_ACC]
    if error_term:
        err = (read(w[:, :c], index, weight) if pred is None else pred[:, :c]) - target  # [N, C]
    else:
        err = -target
    if narrow is not None:
        cols, chans = narrow
        keep = torch.ones(c, device=w.device)
        keep[chans] = 0.0
        eta_n, eta = eta[:, chans], eta * keep  # the narrowed channels are stepped on their own columns below
        err_n = err[:, chans]
    g = (eta * err).unsqueeze(1) * weight.unsqueeze(-1)  # [N, J, C]
    flat = local.reshape(-1)
    grad = _sum_into(u, flat, g)
    if narrow is not None:
        wn, flat_n = weight[:, cols], local[:, cols].reshape(-1)
        grad = _put(grad, chans, _sum_into(u, flat_n, (eta_n * err_n).unsqueeze(1) * wn.unsqueeze(-1)))  # [N, Jn, Cn]
    if not error_term:
        return w.index_copy(0, rows, torch.cat([values - grad, acc.unsqueeze(-1)], -1))
    # Row sums of the curvature sum_i eta_i h_i h_i^T (weights are >= 0): a Jacobi step divided by them
    # never overshoots (a per-entry diagonal alone diverges when many tokens share spread-out keys).
    curv = eta.unsqueeze(1) * (weight * weight.sum(-1, keepdim=True)).unsqueeze(-1)  # [N, J, C]
    h = _sum_into(u, flat, curv)
    if narrow is not None:
        h = _put(h, chans, _sum_into(u, flat_n, eta_n.unsqueeze(1) * (wn * wn.sum(-1, keepdim=True)).unsqueeze(-1)))
    den = h.clamp_min(1.0)
    if accumulate:
        # Every ACCUMULATED channel gets the same rate from a token, so the class channel's curvature is theirs.
        acc = (acc + h[:, CH_CLASS]).clamp_max(acc_max)
        acc_cols = torch.zeros(c, dtype=torch.bool, device=w.device)
        acc_cols[list(ACCUMULATED)] = True
        den = torch.where(acc_cols, torch.maximum(den, acc.unsqueeze(-1)), den)  # never below h: no overshoot
    return w.index_copy(0, rows, torch.cat([values - grad / den, acc.unsqueeze(-1)], -1))


def _touched(e: int, index: Tensor) -> tuple[Tensor, Tensor]:
    """index [N, J] entries of an [e]-row table -> (the rows used, ascending [U]; index as positions in them [N, J]).

    What ``torch.unique(index, return_inverse=True)`` returns, by a mask over the table instead of a
    sort: 0.18 against 0.58 ms for a chunk's keys, once per write."""
    hit = torch.zeros(e, dtype=torch.bool, device=index.device)
    hit[index.reshape(-1)] = True
    rows = torch.nonzero(hit).squeeze(1)
    pos = torch.empty(e, dtype=torch.long, device=index.device)
    pos[rows] = torch.arange(rows.shape[0], device=index.device)
    return rows, pos[index]


def _sum_into(e: int, flat: Tensor, src: Tensor) -> Tensor:
    """src [N, J, C] summed into the rows ``flat`` ([N * J] row indices) of an [e, C] zero tensor."""
    return torch.zeros(e, src.shape[-1], dtype=src.dtype, device=src.device).index_add(0, flat, src.reshape(-1, src.shape[-1]))


def _put(x: Tensor, chans: slice, part: Tensor) -> Tensor:
    """x [E, C] with its columns ``chans`` replaced by ``part`` (out of place, so autograd can follow)."""
    return torch.cat([x[:, : chans.start], part, x[:, chans.stop :]], -1)


def evidence(values: Tensor) -> Tensor:
    """[..., C] reads -> [...] object evidence held (sum of the class channels, >= 0)."""
    return values[..., CH_CLASS : CH_CLASS + N_CLASSES].sum(-1).clamp_min(0.0)


def novelty_gate(held: Tensor) -> Tensor:
    """Evidence held at a token's place before its chunk [N] -> birth-channel rate factor [N]."""
    return torch.exp(-held / NOVELTY)


def init_weights(n_entries: int, device=None) -> Tensor:
    """The state before anything is written: value channels and accumulated curvature, all zero."""
    return torch.zeros(n_entries, N_STATE, dtype=torch.float32, device=device)
