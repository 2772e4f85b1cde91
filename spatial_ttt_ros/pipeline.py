"""The whole perception -> memory -> reasoning chain behind one object, without ROS.

``build_pipeline(PipelineConfig(...))`` is the one place the chain is assembled (the
node, offline and live replay, the benchmarks and the demo all call it), so every
entry point runs the same front-end and memory for the same settings.

``SpatialMemoryPipeline(front_end, memory)`` is what they drive: ``process(frame)`` per
camera frame, ``ask``/``query``/``describe`` from the current memory, ``reset`` between
episodes, ``save``/``load`` to resume. ``on_stage``, when set, is called after every
frame with each stage's duration (``STAGES``: detect, tokenize (lift + noise +
tokenise), memory (the write)) for the node's diagnostics and the replay's timing CSV.

``read_out()`` decodes the memory once into an immutable ``ReadOut`` (inventory, room,
description, counters) that any number of readers can answer from while the writer goes
on: the node's worker makes one when ``read_out_due()`` says so (every frame for the object
map, once per written chunk for the learned memories, whose decode costs tens of
milliseconds) and its services never touch the memory itself.

Saved state is two files: the memory's own state at ``path`` (safetensors or JSON,
whatever the memory writes, never pickle) and ``<path>.pipeline.json`` with the
pipeline metadata (memory name, stream start and last stamp, frames processed,
front-end layout), so that a loaded pipeline continues the same stream and refuses
a state written by another kind of memory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from spatial_ttt_ros.answer import Answer
from spatial_ttt_ros.frames import CameraFrame
from spatial_ttt_ros.inventory import Inventory
from spatial_ttt_ros.memory.factory import make_memory
from spatial_ttt_ros.memory.methods import DEFAULT_METHOD, OBJECT_MAP, parse_method
from spatial_ttt_ros.perception.front_end import FrontEnd
from spatial_ttt_ros.perception.tokens import FrameTokens

# The name the state files carry (written when this module lived in memory/; kept so old states load).
PIPELINE_FORMAT = "spatial_ttt_ros.memory.pipeline"
PIPELINE_FORMAT_VERSION = 1


STAGES = ("detect", "tokenize", "memory")


@dataclass(frozen=True)
class ReadOut:
    """The memory's read-out state at one moment, never changed after it is made.

    ``stamp`` is the newest frame it includes (the answers' header stamp, so a caller
    sees how stale it is); ``frames`` the frames processed by then; ``version`` the
    pipeline's write count it was decoded at; ``made_at`` time.monotonic() when made.
    """

    inventory: Inventory
    description: str
    frames: int
    stamp: float
    version: int
    made_at: float
    counters: dict = field(default_factory=dict)


DETECTORS = ("labels", "onnx")


@dataclass
class PipelineConfig:
    """What a pipeline runs: the memory method and the source of detections.

    ``method``: a name of ``memory.methods.METHODS``; ``checkpoint``: the learned
    methods' weights (None: the shipped ones; the object map refuses one).
    ``detector``: "labels" (the label image of each frame) or "onnx" (``model_path``
    with ``class_names``, default coco_classes.txt beside the model).
    """

    method: str = DEFAULT_METHOD
    checkpoint: str | Path | None = None
    device: str = "cpu"
    detector: str = "labels"
    model_path: str | Path | None = None
    class_names: str | Path | None = None
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])
    score_threshold: float | None = None
    detector_threads: int | None = None


def default_class_names(model_path: str | Path) -> Path:
    """coco_classes.txt beside the model: the class list used when none is given."""
    return Path(model_path).expanduser().parent / "coco_classes.txt"


def build_pipeline(cfg: PipelineConfig, on_stage: Callable[[str, float], None] | None = None) -> "SpatialMemoryPipeline":
    """Front-end + memory + reasoning as ``cfg`` asks; the token layout follows the model's."""
    method = parse_method(cfg.method)
    if cfg.detector not in DETECTORS:
        raise ValueError(f"unknown detector {cfg.detector!r}: use {' or '.join(DETECTORS)}")
    if method == OBJECT_MAP:
        if cfg.checkpoint:
            raise ValueError("checkpoint is set but method object_map has no weights")
        memory = make_memory(method)
    else:
        memory = make_memory(method, cfg.checkpoint or None, device=cfg.device)
    model_cfg = getattr(getattr(memory, "model", None), "cfg", None)
    layout = {"grid": tuple(model_cfg.grid), "max_objects": int(model_cfg.max_objects)} if model_cfg is not None else {}
    if cfg.detector == "onnx":
        if not cfg.model_path or not Path(cfg.model_path).expanduser().is_file():
            raise FileNotFoundError(f"model_path: no ONNX model at {cfg.model_path}")
        model_path = Path(cfg.model_path).expanduser()
        names = Path(cfg.class_names).expanduser() if cfg.class_names else default_class_names(model_path)
        if not names.is_file():
            raise FileNotFoundError(f"class_names: no class-name file at {names}")
        from spatial_ttt_ros.perception.detector import OnnxDetector  # lazy: onnxruntime only when used

        kw = {} if cfg.score_threshold is None else {"score_threshold": cfg.score_threshold}
        detector = OnnxDetector(
            str(model_path), names, providers=list(cfg.providers), intra_op_threads=cfg.detector_threads or None, **kw
        )
        front_end = FrontEnd(source="detector", detector=detector, model_path=model_path, **layout)
    else:
        front_end = FrontEnd(source="labels", **layout)
    return SpatialMemoryPipeline(front_end, memory, on_stage=on_stage)


def metadata_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".pipeline.json")


class SpatialMemoryPipeline:
    """Front-end + memory + reasoning.

    Args:
        front_end: a ``FrontEnd`` (detector or label image -> tokens).
        memory: any ``SpatialMemory`` (``make_memory(method)``).

    Stamps must not go backwards within a stream: ``process`` raises ``ValueError``
    naming both stamps (a replayed bag looping, a clock jump); call ``reset()`` to
    start a new stream.
    """

    def __init__(self, front_end: FrontEnd, memory, on_stage: Callable[[str, float], None] | None = None) -> None:
        self.front_end = front_end
        self.memory = memory
        self.on_stage = on_stage  # (stage, seconds) after each frame; see STAGES
        self._last_stamp: float | None = None
        self._frames = 0
        self._inventory: Inventory | None = None  # cached until the next frame
        self.version = 0  # bumped by every change of the memory (frame, reset, load)
        self._read_out_version = 0  # version of the last read_out()
        # Most frames between two read-outs while frames stream (the bound on staleness): a learned
        # memory writes a chunk of frames in one step and its decode costs tens of ms, so it is
        # decoded once per chunk; the object map's inventory costs 1 to 4 ms (a merge pass on a
        # copy that shares the unchanged instances), so every frame while the writer has time to
        # spare and at least every 4th frame when it falls behind.
        cfg = getattr(getattr(memory, "model", None), "cfg", None)
        self.read_out_every = max(1, int(getattr(cfg, "chunk_frames", 4)))
        self._chunked = hasattr(memory, "pending")  # writes buffered frames in chunks
        self._chunk_written = False
        from spatial_ttt_ros.reasoning.describe import PairDistances

        # Pair distances of the description, kept between read-outs: the object map reuses the
        # inventory objects of instances a frame did not change.
        self._pair_distances = PairDistances()

    @property
    def frames_processed(self) -> int:
        return self._frames

    @property
    def last_stamp(self) -> float | None:
        return self._last_stamp

    def reset(self) -> None:
        """Forget the stream: memory, tokenizer time origin, noise session, stamps."""
        self.memory.reset()
        self.front_end.reset()
        self._last_stamp = None
        self._frames = 0
        self._inventory = None
        self._pair_distances.clear()
        self.version += 1

    def process(self, frame: CameraFrame) -> FrameTokens:
        """Detect, lift, tokenise and write one frame into the memory; returns its tokens."""
        stamp = float(frame.stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"frame stamp {frame.stamp!r} is not a finite number of seconds")
        if self._last_stamp is not None and stamp < self._last_stamp:
            raise ValueError(
                f"out-of-order frame: stamp {stamp:.6f} s is earlier than the previous frame's "
                f"{self._last_stamp:.6f} s; call reset() before starting a new stream"
            )
        if frame.frame_index < 0:  # a copy: the caller's frame is left as it was
            frame = dataclasses.replace(frame, frame_index=self._frames)
        t0 = time.perf_counter()
        detections = self.front_end.detect(frame)
        t1 = time.perf_counter()
        _, tokens = self.front_end.process(frame, detections)
        t2 = time.perf_counter()
        pending = len(getattr(self.memory, "pending", ()))
        self.memory.observe(tokens)
        # The memory wrote its buffered frames in one step (a learned memory's chunk).
        self._chunk_written = pending > 0 and not getattr(self.memory, "pending", ())
        if self.on_stage is not None:
            t3 = time.perf_counter()
            for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2)):
                self.on_stage(stage, seconds)
        self._last_stamp = stamp
        self._frames += 1
        self._inventory = None
        self.version += 1
        return tokens

    def read_out_due(self, idle: bool = False) -> bool:
        """A read-out is due when the memory changed since the last one and: ``read_out_every``
        changes happened (the bound on staleness), or a chunked memory has just written its
        pending frames (decoding then needs no extra step on a copy), or the caller has nothing
        else to do (``idle``: no frame waiting) and the memory is not chunked."""
        behind = self.version - self._read_out_version
        if behind <= 0:
            return False
        return behind >= self.read_out_every or self._chunk_written or (idle and not self._chunked)

    def read_out(self) -> ReadOut:
        """Decode the memory now into an immutable ``ReadOut`` (the caller serialises this with
        writes: it reads the memory)."""
        inventory = self.inventory()
        from spatial_ttt_ros.reasoning.describe import describe

        out = ReadOut(
            inventory=inventory,
            description=describe(inventory, self._pair_distances),
            frames=self._frames,
            stamp=float(inventory.stamp),
            version=self.version,
            made_at=time.monotonic(),
            counters=self.counters(),
        )
        self._read_out_version = self.version
        self._pair_distances.keep_only(inventory.objects)
        return out

    def inventory(self) -> Inventory:
        """The scene inventory decoded from the current memory (cached between frames)."""
        if self._inventory is None:
            self._inventory = self.memory.inventory()
        return self._inventory

    def ask(self, question: str, options: list[str] | None = None) -> Answer:
        """Answer a question in words; raises ``QuestionError`` when it cannot."""
        from spatial_ttt_ros.reasoning.qa import answer_question

        return answer_question(question, list(options) if options else None, self.inventory())

    def query(self, task: str, objects: list[str] | None = None, options: list[str] | None = None) -> Answer:
        """Structured query: task type and object names (see ``reasoning.qa.answer_structured``)."""
        from spatial_ttt_ros.reasoning.qa import answer_structured

        return answer_structured(task, list(objects or []), list(options) if options else None, self.inventory())

    def describe(self) -> str:
        """A few sentences about the scene (the structured inventory is ``inventory()``)."""
        from spatial_ttt_ros.reasoning.describe import describe

        return describe(self.inventory())

    def state_bytes(self) -> int:
        return int(self.memory.state_bytes())

    def counters(self) -> dict:
        """Front-end counters plus frames processed (for the node's diagnostics)."""
        out = self.front_end.counters()
        out["frames_processed"] = self._frames
        out["state_bytes"] = self.state_bytes()
        return out

    # -- persistence ---------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the memory state to ``path`` and the pipeline metadata beside it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.memory.save(path)
        meta = {
            "format": PIPELINE_FORMAT,
            "format_version": PIPELINE_FORMAT_VERSION,
            "memory": getattr(self.memory, "name", type(self.memory).__name__),
            "t0": self.front_end.t0,
            "last_stamp": self._last_stamp,
            "frames": self._frames,
            "front_end": self.front_end.config(),
        }
        mp = metadata_path(path)
        tmp = mp.with_name(mp.name + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(mp)
        return path

    def load(self, path: str | Path) -> None:
        """Restore a state written by ``save`` with the same kind of memory and token layout."""
        path = Path(path)
        mp = metadata_path(path)
        if not path.exists():
            raise FileNotFoundError(f"memory state {path} does not exist")
        if not mp.is_file():
            raise FileNotFoundError(f"{mp} (the pipeline metadata written beside the memory state) is missing")
        try:
            meta = json.loads(mp.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{mp} is not pipeline metadata (not JSON: {exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != PIPELINE_FORMAT:
            raise ValueError(f"{mp} is not spatial_ttt_ros pipeline metadata")
        if meta.get("format_version") != PIPELINE_FORMAT_VERSION:
            raise ValueError(
                f"{mp} has pipeline format version {meta.get('format_version')}, this code reads {PIPELINE_FORMAT_VERSION}"
            )
        mine = getattr(self.memory, "name", type(self.memory).__name__)
        if meta.get("memory") != mine:
            raise ValueError(f"{path} holds the state of memory {meta.get('memory')!r}; this pipeline runs {mine!r}")
        fe = meta.get("front_end", {})
        if list(fe.get("grid", self.front_end.grid)) != list(self.front_end.grid) or int(
            fe.get("max_objects", self.front_end.max_objects)
        ) != self.front_end.max_objects:
            raise ValueError(
                f"{path} was written with token grid {fe.get('grid')} and {fe.get('max_objects')} object slots; "
                f"this front-end makes grid {list(self.front_end.grid)} with {self.front_end.max_objects}"
            )
        self.memory.load(path)
        self.front_end.reset()
        self.front_end.t0 = meta.get("t0")
        self._last_stamp = None if meta.get("last_stamp") is None else float(meta["last_stamp"])
        self._frames = int(meta.get("frames", 0))
        self._inventory = None
        self.version += 1
