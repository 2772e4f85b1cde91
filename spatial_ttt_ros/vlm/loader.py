"""Build, save and load Spatial-TTT from a local directory (never downloads).

A checkpoint directory holds the Qwen3-VL `config.json`, the weights as
safetensors (one `model.safetensors` or shards with `model.safetensors.index.json`,
as `save_pretrained` writes them and as the official trainer saves them), the
tokenizer files, and optionally `spatial_ttt.json` (our LaCT settings; the release
defaults when absent). Parameter names are those of the official wrapped model
(`model.language_model.layers.N.self_attn.attn_layer.q_proj.weight`,
`...self_attn.w0`, `...self_attn.conv_q.weight`, ...). The official evaluation
loads the base Qwen3-VL-2B-Instruct first and overlays the Spatial-TTT weights;
`base_checkpoint` does the same when the Spatial-TTT directory lacks some tensors.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import torch

from . import MISSING_EXTRA, available
from .config import SpatialTTTConfig
from .lact_layer import wrap_with_lact

ATTN_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
          "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def _require():
    if not available():
        raise ImportError(MISSING_EXTRA)


def build_model(qwen_config, cfg: SpatialTTTConfig, dtype: torch.dtype = torch.float32):
    """A randomly initialised Spatial-TTT model (tests; or the skeleton before loading)."""
    _require()
    from transformers import Qwen3VLForConditionalGeneration

    qwen_config._attn_implementation = "sdpa"
    model = Qwen3VLForConditionalGeneration(qwen_config)
    wrap_with_lact(model, cfg)
    return model.to(dtype).eval()


def save_checkpoint(model, cfg: SpatialTTTConfig, directory: str | Path, tokenizer=None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    cfg.save(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def _weight_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.exists():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [directory / n for n in names]
    single = directory / "model.safetensors"
    if single.exists():
        return [single]
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no safetensors weights in {directory} (download the checkpoint first, see README)")
    return files


def _canonical_key(key: str, cfg: SpatialTTTConfig) -> str:
    """Older Qwen3-VL layouts and plain (unwrapped) attention names -> this model's names."""
    key = re.sub(r"^visual\.", "model.visual.", key)
    key = re.sub(r"^model\.(?!language_model\.|visual\.)", "model.language_model.", key)
    m = re.match(r"^(model\.language_model\.layers\.(\d+)\.self_attn\.)(\w+)\.(.*)$", key)
    if m and cfg.is_lact(int(m.group(2))) and m.group(3) in ATTN_NAMES:
        key = f"{m.group(1)}attn_layer.{m.group(3)}.{m.group(4)}"
    return key


def read_state_dict(directory: str | Path, cfg: SpatialTTTConfig) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in _weight_files(Path(directory)):
        for k, v in load_file(str(f)).items():
            out[_canonical_key(k, cfg)] = v
    return out


def load_model(
    checkpoint: str | Path,
    dtype: str | torch.dtype = "float32",
    device: str = "cpu",
    cfg: SpatialTTTConfig | None = None,
    base_checkpoint: str | Path | None = None,
):
    """-> (model, cfg). Raises with a clear message on missing or unexpected tensors."""
    _require()
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    checkpoint = Path(checkpoint)
    if not (checkpoint / "config.json").exists():
        raise FileNotFoundError(f"{checkpoint}/config.json not found: vlm_checkpoint must be a local directory")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
    cfg = cfg or SpatialTTTConfig.load(checkpoint)
    config = Qwen3VLConfig.from_pretrained(str(checkpoint), local_files_only=True)
    config._attn_implementation = "sdpa"

    try:  # skip random init of the big model: every tensor is loaded below
        from transformers.modeling_utils import no_init_weights
    except ImportError:  # pragma: no cover
        no_init_weights = contextlib.nullcontext
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype if dtype.is_floating_point else torch.float32)
    try:
        with torch.device(device), no_init_weights():
            model = Qwen3VLForConditionalGeneration(config)
            wrap_with_lact(model, cfg)
    finally:
        torch.set_default_dtype(previous)

    state = {}
    if base_checkpoint is not None:
        state.update(read_state_dict(base_checkpoint, cfg))
    state.update(read_state_dict(checkpoint, cfg))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = bool(getattr(config, "tie_word_embeddings", False) or getattr(config.text_config, "tie_word_embeddings", False))
    if "lm_head.weight" in missing and tied:
        model.lm_head.weight = model.model.language_model.embed_tokens.weight
        missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {checkpoint} does not match Spatial-TTT (lact_layers={list(cfg.lact_layers)}): "
            f"missing {missing[:6]}{'...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''}"
        )
    return model.to(device=device, dtype=dtype).eval(), cfg


def load_tokenizer(directory: str | Path):
    _require()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
