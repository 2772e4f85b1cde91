"""The LaCT settings of the Spatial-TTT release, kept beside the Qwen3-VL config.

Defaults are those of the official training and VSI-Bench evaluation scripts
(THU-SI/Spatial-TTT: qwen-vl-finetune/spatial_ttt_train.sh and
evaluation/spatial/scripts/eval_spatial_ttt_2b.sh): 4 fast-weight heads, full-rank
W0/W2 (w0_w2_low_rank=0), chunk and window 2648 tokens, the depthwise conv on,
momentum on, and LaCT on layers 0/1/2, 4/5/6, ... 24/25/26 of the 28-layer
language model (every fourth layer, 3, 7, ..., 27, is a full-attention anchor).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

CONFIG_FILE = "spatial_ttt.json"

RELEASE_LACT_LAYERS = (0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 16, 17, 18, 20, 21, 22, 24, 25, 26)


@dataclass
class SpatialTTTConfig:
    lact_layers: tuple[int, ...] = RELEASE_LACT_LAYERS
    num_lact_heads: int = 4
    inter_multi: float = 1.0
    w0_w2_low_rank: int = 0  # 0: full W0/W2 parameters (the release)
    lact_chunk_size: int = 2648  # tokens per fast-weight update (extended to a frame's end)
    window_size: int = 2648  # sliding-window attention beside the TTT branch
    # Anchor layers attend over every past token in the official code (unbounded). A
    # robot stream must stay bounded: the anchors keep the last `anchor_window`
    # tokens. 4 x 2648 = 10592 covers the 128-frame training context (about 10.6k
    # video tokens at 352x480), so within that horizon it equals the official model.
    anchor_window: int | None = 4 * 2648
    use_conv_layer: bool = True
    use_momentum: bool = True
    # Trained with Muon (train script) but the official inference layer defaults to
    # use_muon=False and the eval script does not set it; we follow inference.
    use_muon: bool = False
    qkv_silu: bool = True
    no_v_silu: bool = False
    learnable_ttt_scale: bool = True
    ttt_nope: bool = False
    base_lr: float = 1e-3
    fw_init_gain: float = 0.5
    # Keyframe size (height, width) in pixels fed to the vision tower: the official
    # evaluation's 352 x 480 (165 merged tokens per keyframe).
    frame_size: tuple[int, int] = (352, 480)
    extra: dict = field(default_factory=dict)

    def is_lact(self, layer_idx: int) -> bool:
        return layer_idx in set(self.lact_layers)

    def to_json(self) -> str:
        d = asdict(self)
        d["lact_layers"] = list(self.lact_layers)
        return json.dumps(d, indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "SpatialTTTConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "lact_layers" in known:
            layers = known["lact_layers"]
            if isinstance(layers, str):  # the official "0/1/2/4/..." form
                layers = [int(x) for x in layers.split("/") if x.strip()]
            known["lact_layers"] = tuple(int(x) for x in layers)
        if "frame_size" in known:
            known["frame_size"] = tuple(int(x) for x in known["frame_size"])
        return cls(**known)

    def save(self, directory: str | Path) -> None:
        Path(directory, CONFIG_FILE).write_text(self.to_json())

    @classmethod
    def load(cls, directory: str | Path) -> "SpatialTTTConfig":
        """The settings saved beside a checkpoint, or the release defaults."""
        path = Path(directory, CONFIG_FILE)
        if not path.exists():
            return cls()
        return cls.from_dict(json.loads(path.read_text()))
