"""Offline replay: read a bag and drive the spatial memory directly, no ROS.

Deterministic (same bag, questions and method -> same answers) and as fast as the
CPU allows. Questions without a ``time`` are asked after the last frame; a question
with ``time`` t (seconds since the stream's first frame, as VSI-SUPER asks streaming
questions) is asked once every frame up to stream time t has been processed, i.e.
before the first frame later than t. The live mode (``live.py``) follows the same
schedule through the node, so the two can be compared answer by answer.

Both modes return an ``EvalResult`` that ``report.py`` turns into files.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from spatial_ttt_ros.evaluation.bag_reader import BagInfo, BagReader, BagTopics
from spatial_ttt_ros.evaluation.metrics import score_record
from spatial_ttt_ros.memory.methods import DEFAULT_METHOD, has_weights
from spatial_ttt_ros.perception.label_names import LabelTable
from spatial_ttt_ros.pipeline import PipelineConfig, build_pipeline

REPO = Path(__file__).resolve().parents[2]
DETECTOR_THREADS = 1  # onnxruntime threads, as the node's detector_threads default (shares 2 cores best)


@dataclass
class EvalConfig:
    bag: Path
    qa: Path
    out: Path
    method: str = DEFAULT_METHOD
    detector: str = "labels"  # "labels" (label image topic) or "onnx"
    model_path: Path | None = None  # ONNX detector
    # labels: the label image's id -> name table (perception/label_names.py; None: classes.py);
    # onnx: the detector's class list in output order
    class_names: Path | None = None
    checkpoint: Path | None = None  # memory model checkpoint (None: the shipped one)
    score_threshold: float = 0.35  # ONNX detector (the node's default)
    device: str = "cpu"  # memory model device, offline and in the node
    live: bool = False
    rate_scale: float = 1.0  # live: 2.0 plays twice as fast as recorded
    qos: str = "sensor_data"  # live: input QoS of the node and the player (sensor_data = best effort)
    max_frames: int | None = None
    topics: BagTopics = field(default_factory=BagTopics)
    progress: bool = True
    scene: Path | None = None  # ground truth for the map plot (None: scene.json beside the bag, if any)
    # who answers (vlm/qa_backend.py): geometry (the memory), vlm (Spatial-TTT-nano) or hybrid;
    # hybrid records the other backend's answer too, so one run compares the two
    qa_backend: str = "geometry"
    vlm_checkpoint: Path | None = None  # vlm/hybrid: local directory of the weights
    vlm_dtype: str = "auto"  # auto: bfloat16 on cuda, float32 on the CPU
    vlm_keyframe_interval_s: float = 1.0

    def to_json(self) -> dict:
        d = asdict(self)
        d["topics"] = asdict(self.topics)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


@dataclass
class QuestionResult:
    record: dict
    asked_at: float  # stream time (s since first frame) of the memory state asked
    frames_seen: int  # frames written into the memory when asked
    answer: dict | None  # task, text, value, unit, option, choice, confidence, positions
    prediction: Any  # what was scored: option letter, number, or None
    score: float
    latency_ms: float
    error: str = ""  # why it could not be answered ("" when answered)
    backend: str = "geometry"  # who gave `answer` (qa_backend routing)
    # hybrid: the other backend's answer, scored the same way: name -> {answer, prediction, score, error}
    others: dict[str, dict] = field(default_factory=dict)


@dataclass
class FrameTiming:
    index: int
    stamp: float
    ms: dict[str, float]  # stage -> milliseconds
    state_bytes: int


@dataclass
class EvalResult:
    mode: str  # "offline" or "live"
    config: dict
    bag: BagInfo
    questions: list[QuestionResult]
    frames: list[FrameTiming]
    record_errors: list[str]  # bad question records, skipped
    wall_s: float  # whole replay including question answering
    process_s: float  # time spent in the memory pipeline (offline) / playing (live)
    dropped_frames: int = 0
    frames_published: int = 0
    # (frames seen, state bytes): every frame offline, the node's diagnostics samples live
    state_samples: list[tuple[int, int]] = field(default_factory=list)
    # per-stage latency summaries measured elsewhere (live: the node's /diagnostics)
    stage_latency: dict[str, dict] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)  # why frames were dropped (live)
    inventory: dict | None = None  # final inventory (JSON form)
    checkpoint: str | None = None
    model_checksum: str | None = None
    notes: list[str] = field(default_factory=list)
    detections: int | None = None  # 2D detections the front-end made (None: not known, live)
    label_ids_seen: list[int] = field(default_factory=list)  # label mode, offline: raw ids in the bag
    warnings: list[str] = field(default_factory=list)  # said in the terminal and at the top of report.md
    inputs: list[str] = field(default_factory=list)  # which topic each input came from (inputs.py)
    camera_path: list[tuple[float, float]] = field(default_factory=list)  # world x, y per frame (offline)
    scene_file: str | None = None  # the simulator's scene.json beside the bag (ground truth), if any

    @property
    def saw_nothing(self) -> bool:
        """True when the memory was never shown an object (its scores are a blind memory's)."""
        if self.detections is not None:
            return self.detections == 0
        return not (self.inventory or {}).get("objects")


def answer_to_dict(answer) -> dict:
    return {
        "task": answer.task,
        "text": answer.text,
        "value": None if not math.isfinite(answer.value) else float(answer.value),
        "unit": answer.unit,
        "option": answer.option,
        "choice": answer.choice,
        "confidence": float(answer.confidence),
        "positions": [
            {"label": p.label, "position": [round(float(v), 4) for v in p.position]} for p in answer.positions
        ],
    }


def prediction_of(answer: dict | None) -> Any:
    """The value the metric compares with ground truth: the option letter or the number."""
    if answer is None:
        return None
    if answer.get("option"):
        return answer["option"]
    v = answer.get("value")
    return float("nan") if v is None else v


def score(record: dict, answer: dict | None) -> tuple[Any, float]:
    pred = prediction_of(answer)
    if pred is None:
        return None, 0.0
    return pred, float(score_record(record, pred))


def schedule(records: list[dict], start_stamp: float, stamps: list[float]) -> dict[int, list[dict]]:
    """Frame count after which each record is asked: {n_frames_processed: [records]}.

    A record with time t is asked once all frames with stamp - start <= t are in;
    without time (or past the end), after the last frame."""
    n = len(stamps)
    rel = np.asarray(stamps, dtype=np.float64) - start_stamp
    out: dict[int, list[dict]] = {}
    for r in records:
        t = r.get("time")
        k = n if t is None else int(np.searchsorted(rel, float(t) + 1e-9, side="right"))
        out.setdefault(min(max(k, 0), n), []).append(r)
    return out


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def sha256_file(path: Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_checkpoint(method: str, checkpoint: Path | None) -> Path | None:
    """The model file a method loads (None for baselines without weights)."""
    if checkpoint is not None:
        return Path(checkpoint)
    if not has_weights(method):
        return None
    from spatial_ttt_ros.memory.learned_checkpoint import default_checkpoint

    return default_checkpoint(method)


def label_table(cfg: EvalConfig) -> LabelTable | None:
    """Label mode: the table that maps the bag's label ids onto the core's (see label_names.py)."""
    return LabelTable.load(cfg.class_names) if cfg.detector == "labels" else None


def pipeline_config(cfg: EvalConfig) -> PipelineConfig:
    """The node's pipeline settings for this evaluation (same token layout, same detector
    settings), so offline and live answers agree. (Label mode remaps label ids before the
    pipeline, as the node does, so the pipeline gets no class names then.)"""
    return PipelineConfig(
        method=cfg.method,
        checkpoint=cfg.checkpoint,
        device=cfg.device,
        detector=cfg.detector,
        model_path=cfg.model_path,
        class_names=cfg.class_names if cfg.detector == "onnx" else None,
        providers=["CPUExecutionProvider"] if cfg.device == "cpu" else ["CUDAExecutionProvider", "CPUExecutionProvider"],
        score_threshold=cfg.score_threshold,
        detector_threads=DETECTOR_THREADS,
    )


def stage_timer(stage_ms: dict, onnx: bool):
    """An ``on_stage`` hook summing each frame's stages into ``stage_ms`` (ms) under the timing
    CSV's names: front_end (detect + lift + tokenise), detect (ONNX only), observe (memory write)."""

    def on_stage(stage: str, seconds: float) -> None:
        ms = seconds * 1e3
        if stage == "memory":
            stage_ms["observe"] = stage_ms.get("observe", 0.0) + ms
            return
        stage_ms["front_end"] = stage_ms.get("front_end", 0.0) + ms
        if stage == "detect" and onnx:
            stage_ms["detect"] = stage_ms.get("detect", 0.0) + ms

    return on_stage


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    # stderr, and silent for short runs so test logs stay readable
    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled or total < 50, file=sys.stderr,
                mininterval=0.5 if sys.stderr.isatty() else 5.0)


def ask_pipeline(pipeline, record: dict) -> tuple[dict | None, str, float]:
    """Ask one record; returns (answer dict or None, error, ms)."""
    from spatial_ttt_ros.answer import QuestionError

    t0 = time.perf_counter()
    try:
        ans = pipeline.ask(record["question"], record.get("options") or [])
        out, err = answer_to_dict(ans), ""
    except QuestionError as exc:
        out, err = None, str(exc)
    return out, err, (time.perf_counter() - t0) * 1e3


def ask_routed(pipeline, qa, record: dict, record_both: bool) -> tuple[dict | None, str, float, str, dict]:
    """Ask one record through a qa_backend router (vlm/qa_backend.QARouter, built by the
    caller: evaluation/ does not import vlm/). Returns (answer dict or None, error, ms,
    backend, others): with ``record_both`` the other backend answers too, scored alike."""
    from spatial_ttt_ros.answer import QuestionError

    question, options = record["question"], record.get("options") or None
    answerers = {"geometry": lambda q, o: pipeline.ask(q, o or []), "vlm": qa.vlm}
    backend = qa.route(question, options)
    names = [backend] + ([n for n in answerers if n != backend and answerers[n] is not None] if record_both else [])
    got: dict[str, tuple[dict | None, str, float]] = {}
    for name in names:
        t0 = time.perf_counter()
        try:
            out, err = answer_to_dict(answerers[name](question, options)), ""
        except QuestionError as exc:
            out, err = None, str(exc)
        got[name] = (out, err, (time.perf_counter() - t0) * 1e3)
    out, err, ms = got.pop(backend)
    others = {}
    for name, (ans, e, _) in got.items():
        pred, sc = score(record, ans)
        others[name] = {"answer": ans, "prediction": pred, "score": sc, "error": e}
    return out, err, ms, backend, others


def run_offline(
    cfg: EvalConfig,
    records: list[dict],
    record_errors: list[str] | None = None,
    pipeline=None,
    on_frame: Callable[[int], None] | None = None,
    qa=None,
) -> EvalResult:
    """``qa``: the qa_backend router (needed unless cfg.qa_backend is geometry); each colour
    frame is offered to its VLM after the memory's step (timed as ``vlm``)."""
    if cfg.qa_backend != "geometry" and qa is None:
        raise ValueError(f"qa_backend {cfg.qa_backend} needs the router (evaluation/cli.py builds it)")
    reader = BagReader(
        cfg.bag, cfg.topics, use_labels=cfg.detector == "labels", max_frames=cfg.max_frames
    )
    stage_ms: dict[str, float] = {}
    if pipeline is None:
        pipeline = build_pipeline(pipeline_config(cfg), on_stage=stage_timer(stage_ms, cfg.detector == "onnx"))
    table = label_table(cfg)
    stamps = [p["stamp"] for p in reader._plan]
    start = stamps[0]
    when = schedule(records, start, stamps)
    memory = getattr(pipeline, "memory", None)
    results: list[QuestionResult] = []
    timings: list[FrameTiming] = []
    path: list[tuple[float, float]] = []

    def ask_due(k: int, stamp: float) -> None:
        for r in when.get(k, []):
            backend, others = "geometry", {}
            if qa is None:
                ans, err, ms = ask_pipeline(pipeline, r)
            else:
                ans, err, ms, backend, others = ask_routed(pipeline, qa, r, cfg.qa_backend == "hybrid")
            pred, sc = score(r, ans)
            results.append(QuestionResult(r, round(stamp - start, 6), k, ans, pred, sc, ms, err, backend, others))

    t_wall = time.perf_counter()
    t_proc = 0.0
    ask_due(0, start)
    bar = _progress(len(reader), f"{cfg.method} offline", cfg.progress)
    frames = iter(reader)
    k = 0
    stamp = start
    while True:
        t0 = time.perf_counter()
        frame = next(frames, None)
        t_read = time.perf_counter() - t0
        if frame is None:
            break
        if table is not None and frame.labels is not None:
            frame.labels = table.remap(frame.labels)  # the bag's numbering -> classes.py ids
            t_read = time.perf_counter() - t0
        stage_ms.clear()
        t1 = time.perf_counter()
        pipeline.process(frame)
        t_done = time.perf_counter()
        t_proc += t_done - t1
        k += 1
        stamp = frame.stamp
        ms = {"read": t_read * 1e3, "process": (t_done - t1) * 1e3}
        ms.update(stage_ms)  # front_end (detect, lift, tokenise), detect (ONNX), observe (memory write)
        if qa is not None and qa.uses_vlm and frame.rgb is not None:
            t2 = time.perf_counter()
            qa.offer_frame(frame.rgb, frame.stamp)  # a keyframe when due
            ms["vlm"] = (time.perf_counter() - t2) * 1e3
        sb = int(memory.state_bytes()) if memory is not None else 0
        timings.append(FrameTiming(frame.frame_index, frame.stamp, ms, sb))
        path.append((round(float(frame.T_world_cam[0, 3]), 3), round(float(frame.T_world_cam[1, 3]), 3)))
        ask_due(k, stamp)
        bar.update(1)
        if on_frame is not None:
            on_frame(k)
    bar.close()
    wall = time.perf_counter() - t_wall
    inv = pipeline.inventory() if hasattr(pipeline, "inventory") else None
    ckpt = resolve_checkpoint(cfg.method, cfg.checkpoint)
    order = {id(r): i for i, r in enumerate(records)}
    results.sort(key=lambda q: order[id(q.record)])
    counters = pipeline.counters() if hasattr(pipeline, "counters") else {}
    return EvalResult(
        mode="offline",
        config=cfg.to_json(),
        bag=reader.info,
        questions=results,
        frames=timings,
        record_errors=list(record_errors or []),
        wall_s=wall,
        process_s=t_proc,
        frames_published=len(timings),
        state_samples=[(i + 1, f.state_bytes) for i, f in enumerate(timings)],
        inventory=inv.to_json() if inv is not None else None,
        checkpoint=None if ckpt is None else str(ckpt),
        model_checksum=sha256_file(ckpt),
        detections=counters.get("detections"),
        label_ids_seen=[] if table is None else table.seen,
        camera_path=path,
        warnings=[] if table is None else table.warnings(),
    )
