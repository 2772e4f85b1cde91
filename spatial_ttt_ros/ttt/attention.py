"""Causal sliding-window attention with a bounded KV cache (plus the anchor-summary prefix).

All attention in the backbone goes through ``attend``: a piece of new tokens attends,
causally, to the cached keys before it and to itself, within a window of ``window``
tokens (the query included), optionally also to a fixed set of *prefix* tokens (the
anchor layers' summary of past chunks). Padding keys (valid=False) are never
attended to, except a token to itself, which keeps every softmax row non-empty.

The KV cache keeps exactly the last window-1 tokens (padding included, masked), so
its size is constant; with window=None (the full-context baseline) it keeps
everything and grows linearly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def piece_mask(key_valid: Tensor, n_new: int, window: int | None) -> Tensor:
    """Bool mask [B, 1, n_new, L] (True = attend) for the last n_new of L keys being the queries.

    key_valid: [B, L]. Query i sits at key index L - n_new + i.
    """
    b, n_keys = key_valid.shape
    qpos = torch.arange(n_keys - n_new, n_keys, device=key_valid.device).unsqueeze(1)  # [n,1]
    kpos = torch.arange(n_keys, device=key_valid.device).unsqueeze(0)  # [1,L]
    allowed = kpos <= qpos
    if window is not None:
        allowed = allowed & (kpos > qpos - window)
    diag = kpos == qpos
    return (allowed.unsqueeze(0) & (key_valid.unsqueeze(1) | diag.unsqueeze(0))).unsqueeze(1)


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    valid: Tensor,
    cache: dict[str, Tensor],
    window: int | None,
    prefix: tuple[Tensor, Tensor, Tensor] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Attention of a piece of tokens over cache + piece (+ prefix).

    q, k, v: [B, H, n, dh]; valid [B, n]; cache {"kv_k","kv_v": [B,H,L,dh], "kv_valid": [B,L]}.
    prefix: (k [B,H,P,dh], v [B,H,P,dh], valid [B,P]) visible to every query.
    Returns out [B, H, n, dh] and the new cache (last window-1 tokens, or all with window=None).
    """
    n = q.shape[2]
    keys = torch.cat([cache["kv_k"].to(k.dtype), k], dim=2)
    vals = torch.cat([cache["kv_v"].to(v.dtype), v], dim=2)
    kvalid = torch.cat([cache["kv_valid"], valid], dim=1)
    mask = piece_mask(kvalid, n, window)
    if prefix is not None:
        pk, pv, pvalid = prefix
        keys = torch.cat([pk.to(k.dtype), keys], dim=2)
        vals = torch.cat([pv.to(v.dtype), vals], dim=2)
        pmask = pvalid[:, None, None, :].expand(-1, 1, n, -1)
        mask = torch.cat([pmask, mask], dim=-1)
        keys_cache, vals_cache = keys[:, :, pk.shape[2] :], vals[:, :, pk.shape[2] :]
    else:
        keys_cache, vals_cache = keys, vals
    out = F.scaled_dot_product_attention(q, keys, vals, attn_mask=mask)
    if window is None:
        new = {"kv_k": keys_cache, "kv_v": vals_cache, "kv_valid": kvalid}
    else:
        keep = window - 1
        total = keys_cache.shape[2]
        new = {
            "kv_k": keys_cache[:, :, total - keep :],
            "kv_v": vals_cache[:, :, total - keep :],
            "kv_valid": kvalid[:, total - keep :],
        }
    return out, new


def read_attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cache: dict[str, Tensor],
    prefix: tuple[Tensor, Tensor, Tensor] | None = None,
) -> Tensor:
    """Extra query tokens (as if next in the stream) attend to the whole cache, the prefix and
    themselves only (each query independent of the others). Nothing is written.

    q, k, v: [B, H, S, dh] -> [B, H, S, dh]
    """
    s = q.shape[2]
    b = q.shape[0]
    keys = torch.cat([cache["kv_k"].to(k.dtype), k], dim=2)
    vals = torch.cat([cache["kv_v"].to(v.dtype), v], dim=2)
    cmask = cache["kv_valid"][:, None, None, :].expand(b, 1, s, -1)
    self_mask = torch.eye(s, dtype=torch.bool, device=q.device).expand(b, 1, s, s)
    mask = torch.cat([cmask, self_mask], dim=-1)
    if prefix is not None:
        pk, pv, pvalid = prefix
        keys = torch.cat([pk.to(k.dtype), keys], dim=2)
        vals = torch.cat([pv.to(v.dtype), vals], dim=2)
        mask = torch.cat([pvalid[:, None, None, :].expand(b, 1, s, -1), mask], dim=-1)
    return F.scaled_dot_product_attention(q, keys, vals, attn_mask=mask)


def empty_cache(batch: int, n_heads: int, d_head: int, window: int | None, device=None, dtype=None) -> dict[str, Tensor]:
    """A cache of window-1 padding slots (fixed size), or an empty growing one for window=None."""
    n = 0 if window is None else window - 1
    return {
        "kv_k": torch.zeros(batch, n_heads, n, d_head, device=device, dtype=dtype),
        "kv_v": torch.zeros(batch, n_heads, n, d_head, device=device, dtype=dtype),
        "kv_valid": torch.zeros(batch, n, dtype=torch.bool, device=device),
    }
