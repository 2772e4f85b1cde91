"""Model checkpoints: safetensors tensors + JSON metadata (never pickle).

A checkpoint file holds every parameter of a ``SpatialMemoryModel`` and, in the
safetensors metadata (a str -> str map):

- ``format``: ``FORMAT`` (tells our checkpoints from any other safetensors file),
- ``format_version``: ``FORMAT_VERSION``,
- ``config``: the model's architecture config as JSON,
- ``signature``: a hash of the config's architecture fields and of every tensor's
  name, shape and dtype,
- ``info``: free JSON (training command, seed, steps, losses), not checked.

Loading refuses, with a ``ValueError`` naming what differs, a file that is not
safetensors, a safetensors file that is not ours, another format version, a config
other than the one asked for, or tensors that do not match the architecture.

The model-level functions (``save_model``, ``load_model``) import ``memory.model``;
the model never imports this module (the factory builds a ``TTTMemory`` from
``load_model``). The reference recorder for the shipped-model test is
``training/reference.py``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from spatial_ttt_ros.memory.model import MemoryConfig, SpatialMemoryModel

FORMAT = "spatial_ttt_ros.memory.checkpoint"
FORMAT_VERSION = 1


def tensor_signature(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """'name:shape:dtype' for every tensor, sorted (what the architecture fixes)."""
    return sorted(f"{k}:{tuple(v.shape)}:{str(v.dtype).replace('torch.', '')}" for k, v in state_dict.items())


def architecture_signature(config: dict, state_dict: dict[str, torch.Tensor]) -> str:
    blob = json.dumps({"config": config, "tensors": tensor_signature(state_dict)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def save_checkpoint(path: str | Path, config: dict, state_dict: dict[str, torch.Tensor], info: dict | None = None) -> Path:
    """Write ``state_dict`` with ``config`` (JSON-able dict of architecture fields)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(config, sort_keys=True),
        "signature": architecture_signature(config, tensors),
        "info": json.dumps(info or {}, sort_keys=True),
    }
    save_file(tensors, str(path), metadata=meta)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config, tensors, info) from a checkpoint file, after checking it is ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types on a foreign/corrupt file
        raise ValueError(f"{path} is not a readable safetensors checkpoint ({type(exc).__name__}: {exc})") from exc
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a spatial_ttt_ros memory checkpoint (metadata format={meta.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise ValueError(
            f"{path} has checkpoint format version {meta.get('format_version')}, this code reads {FORMAT_VERSION}"
        )
    try:
        config = json.loads(meta["config"])
        info = json.loads(meta.get("info", "{}"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: checkpoint metadata is damaged ({exc})") from exc
    if architecture_signature(config, tensors) != meta.get("signature"):
        raise ValueError(f"{path}: tensors do not match the signature recorded in the file (corrupt or edited)")
    return config, tensors, info


def update_info(path: str | Path, updates: dict) -> dict:
    """Merge ``updates`` into a checkpoint's free ``info`` (tensors and config untouched)."""
    config, tensors, info = read_checkpoint(path)
    info = {**info, **updates}
    save_checkpoint(path, config, tensors, info)
    return info


def diff_configs(expected: dict, found: dict) -> list[str]:
    """Human-readable list of fields that differ (empty when equal)."""
    out = []
    for key in sorted(set(expected) | set(found)):
        if expected.get(key, "<missing>") != found.get(key, "<missing>"):
            out.append(f"{key}: expected {expected.get(key, '<missing>')!r}, checkpoint has {found.get(key, '<missing>')!r}")
    return out


def check_tensors(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], path: str | Path) -> None:
    """Raise ValueError naming missing/unexpected/misshapen tensors."""
    problems = []
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if extra:
        problems.append(f"unexpected tensors {extra[:5]}{' ...' if len(extra) > 5 else ''}")
    for k in sorted(set(expected) & set(found)):
        if tuple(expected[k].shape) != tuple(found[k].shape):
            problems.append(f"{k}: shape {tuple(found[k].shape)} in checkpoint, model has {tuple(expected[k].shape)}")
    if problems:
        raise ValueError(f"{path} does not fit this model architecture: " + "; ".join(problems[:8]))


# ------------------------------------------------------------------ model level
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "spatial_memory.safetensors"


def save_model(path: str | Path, model, info: dict | None = None) -> Path:
    """Save a SpatialMemoryModel's weights and config (+ free ``info``)."""
    return save_checkpoint(path, model.cfg.to_dict(), model.state_dict(), info)


def load_model(path: str | Path | None = None, variant: str = "ttt", expected_config: dict | None = None):
    """Load a SpatialMemoryModel from ``path`` (default: the shipped checkpoint).

    ``variant`` switches inference-time backbone flags (model.VARIANTS): the same
    weights, minus the parameters a variant does not use (e.g. the conv for ttt_no_conv).
    ``expected_config``: refuse a checkpoint whose config differs from it (ValueError
    naming the fields).
    """
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(
            f"no model checkpoint at {path}"
            + (" (the shipped weights are missing: see spatial_ttt_ros/memory/weights/README.md to retrain)"
               if path == DEFAULT_CHECKPOINT else "")
        )
    config, tensors, info = read_checkpoint(path)
    if expected_config is not None:
        diffs = diff_configs(expected_config, config)
        if diffs:
            raise ValueError(f"{path} was trained with another architecture: " + "; ".join(diffs))
    try:
        cfg = MemoryConfig.from_dict(config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: config is not a MemoryConfig of this version ({exc})") from exc
    full = SpatialMemoryModel(cfg, variant="ttt")
    check_tensors(full.state_dict(), tensors, path)
    model = SpatialMemoryModel(cfg, variant=variant)
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in tensors.items() if k in own}, strict=True)
    model.checkpoint_info = info
    return model.eval()


def load_default_model(variant: str = "ttt"):
    """The shipped, trained model (``spatial_ttt_ros/memory/weights/``)."""
    return load_model(DEFAULT_CHECKPOINT, variant=variant)
