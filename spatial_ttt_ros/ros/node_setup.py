"""Building the node's core from its parameters: torch threads, device, ONNX providers, label table, pipeline.

Helpers the node calls at configure, kept apart so that the node module holds the node;
they take ``NodeParams`` and return core objects (no rclpy here)."""

from __future__ import annotations

import os

import numpy as np

from spatial_ttt_ros.classes import CLASS_TO_ID, canonical_class
from spatial_ttt_ros.pipeline import PipelineConfig, SpatialMemoryPipeline
from spatial_ttt_ros.pipeline import build_pipeline as build_core_pipeline
from spatial_ttt_ros.ros.params import NodeParams


def set_model_threads(n: int) -> int:
    """torch's CPU thread count (process-wide: the node owns its process); returns it.

    0 = half the cores, at least one: the worker's torch ops share the CPU with the image
    decoding, the executor's threads and the robot's other processes, and on 2 cores one
    thread decodes the learned memory 2-10x faster than two fighting for them (measured)."""
    import torch

    torch.set_num_threads(n if n > 0 else max(1, (os.cpu_count() or 2) // 2))
    return torch.get_num_threads()


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without a GPU is an error."""
    if requested == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if requested == "cuda" and not has_cuda:
        raise ValueError("parameter device=cuda but torch sees no CUDA GPU (use auto or cpu)")
    return "cuda" if has_cuda else "cpu"


def available_providers(preferred: list[str]) -> list[str]:
    """The preferred onnxruntime providers that this onnxruntime build has, in order (CPU last resort)."""
    import onnxruntime

    have = set(onnxruntime.get_available_providers())
    chosen = [p for p in preferred if p in have]
    return chosen or ["CPUExecutionProvider"]


def label_id_table(class_names: list[str]) -> np.ndarray:
    """Lookup table: the label image's id -> the core's class id (classes.py), 0 for unknown names."""
    table = np.zeros(len(class_names) + 1, dtype=np.int32)
    for i, name in enumerate(class_names, start=1):
        canonical = canonical_class(name)
        table[i] = CLASS_TO_ID[canonical] if canonical else 0
    return table


def pipeline_config(p: NodeParams, device: str) -> PipelineConfig:
    """The parameters' pipeline settings (the pipeline itself is built by ``pipeline.build_pipeline``)."""
    return PipelineConfig(
        method=p.method,
        checkpoint=p.checkpoint or None,
        device=device,
        detector=p.detector,
        model_path=p.model_path if p.detector == "onnx" else None,
        class_names=p.class_names_file or None,
        providers=available_providers(p.providers) if p.detector == "onnx" else ["CPUExecutionProvider"],
        score_threshold=p.score_threshold,
        detector_threads=p.detector_threads or None,
    )


def build_pipeline(p: NodeParams, device: str, on_stage=None) -> SpatialMemoryPipeline:
    """Front-end + memory + reasoning as the parameters ask (no ROS involved)."""
    return build_core_pipeline(pipeline_config(p, device), on_stage=on_stage)
