"""StreamingState: everything a TTTBackbone carries between calls, of constant size.

Per layer (a dict of tensors; which keys exist depends on the layer kind):

    kv_k, kv_v [B,H,window-1,dh], kv_valid [B,window-1]   sliding-window KV cache
    conv_cache [B,2,gh,gw,3D]                              last two frames of TTT q/k/v grid inputs
    w0, w2 [B,H,hid,dh], w1 [B,H,dh,hid] (fp32)           fast weights
    m0, m1, m2                                             momentum (only with momentum > 0)
    pend_k, pend_v [B,H,C,dh], pend_eta [B,H,C] (fp32)     pending, not yet applied chunk (zero-padded)
    sum_k, sum_v [B,H,S,dh], sum_valid [B,S]               anchor layers: FIFO summary of past chunks
    acc_k, acc_v [B,H,dh], acc_n [B]                        anchor layers: running sums of the open chunk

plus ``frames_seen``. Every tensor has a fixed shape, so the byte count after 100
frames equals that after 10,000 (the full-context baseline's KV cache is the one
exception, on purpose: it is the growing-memory baseline).

save(path)/load(path) use safetensors (never pickle); the metadata carries the
architecture signature and the frame counter, and load refuses a state written by a
different architecture with a message naming the differing fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import Tensor

FORMAT = "spatial_ttt_ros.StreamingState/1"


@dataclass
class StreamingState:
    layers: list[dict[str, Tensor]]
    frames_seen: int = 0
    signature: dict = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.layers[0]["kv_valid"].shape[0]) if self.layers else 0

    def nbytes(self) -> int:
        """Bytes held by the state's tensors (what save() writes, less the small header)."""
        return sum(t.numel() * t.element_size() for layer in self.layers for t in layer.values())

    def detach(self) -> "StreamingState":
        """Cut the autograd history (truncated backprop between training segments)."""
        return StreamingState([{k: t.detach() for k, t in layer.items()} for layer in self.layers],
                              self.frames_seen, dict(self.signature))

    def clone(self) -> "StreamingState":
        return StreamingState([{k: t.detach().clone() for k, t in layer.items()} for layer in self.layers],
                              self.frames_seen, dict(self.signature))

    def to(self, device=None) -> "StreamingState":
        return StreamingState([{k: t.to(device) for k, t in layer.items()} for layer in self.layers],
                              self.frames_seen, dict(self.signature))

    # ------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        tensors = {
            f"layer{i}.{k}": t.detach().contiguous().cpu() for i, layer in enumerate(self.layers) for k, t in layer.items()
        }
        meta = {
            "format": FORMAT,
            "signature": json.dumps(self.signature, sort_keys=True),
            "frames_seen": str(int(self.frames_seen)),
            "n_layers": str(len(self.layers)),
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path, signature: dict | None = None, device=None) -> "StreamingState":
        """Load a saved state; with ``signature`` given, refuse one written by another architecture."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no streaming state at {path}")
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} file (format={meta.get('format')!r})")
        saved_sig = json.loads(meta["signature"])
        if signature is not None:
            check_signature(saved_sig, signature, str(path))
        flat = load_file(str(path), device=str(device) if device is not None else "cpu")
        layers: list[dict[str, Tensor]] = [{} for _ in range(int(meta["n_layers"]))]
        for name, t in flat.items():
            idx, key = name.split(".", 1)
            layers[int(idx[len("layer"):])][key] = t
        return cls(layers, int(meta["frames_seen"]), saved_sig)


def check_signature(saved: dict, expected: dict, where: str = "state") -> None:
    """Raise ValueError naming every field where a saved signature differs from the expected one."""
    if saved == expected:
        return
    keys = sorted(set(saved) | set(expected))
    diffs = [f"{k}: saved {saved.get(k)!r} != model {expected.get(k)!r}" for k in keys if saved.get(k) != expected.get(k)]
    raise ValueError(f"{where} was written by a different architecture ({'; '.join(diffs)})")
