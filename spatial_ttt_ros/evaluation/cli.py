"""``spatial-ttt eval``: score a memory on a bag and a question file, offline or through the node.

    spatial-ttt eval --bag BAG --qa QA --out DIR [--live] [--method object_map|ttt|...]
                     [--detector labels|onnx --model-path M.onnx] [--class-names names.txt|ids.json]
                     [--qa-backend geometry|vlm|hybrid --vlm-checkpoint DIR]

``--qa-backend`` picks who answers (vlm/qa_backend.py): the geometric memory, the
Spatial-TTT-nano VLM on the colour frames, or hybrid (VSI-Bench types to the geometry,
free-form to the VLM); offline, hybrid asks the other backend too and the report scores
each backend alone, so one run over a bag compares the two.

Writes DIR/report.json, report.md, report.html, timing.csv and PNG plots (see report.py).
Before scoring it says which topic each input comes from and what is missing
(evaluation/inputs.py). Bad question records are listed in the report and on stderr and
skipped; the good ones are still scored. A corrupt bag or one without the needed topics
is a ValueError naming the ``--*-topic`` option that fixes it, which the top-level CLI
prints as one line (exit 2). A run in which the front-end saw no object at all (label
topic absent, wrong class names, ...) writes its report, warns and exits 3 unless
``--allow-empty``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spatial_ttt_ros.evaluation.bag_reader import BagTopics
from spatial_ttt_ros.memory.methods import DEFAULT_METHOD, METHODS

REPORT_FILES = ("report.json", "report.md", "report.html", "timing.csv")
EXIT_EMPTY = 3  # the run saw no detections at all: its scores say nothing about the memory


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bag", type=Path, required=True, help="rosbag2 directory, .mcap or .db3")
    p.add_argument("--qa", type=Path, required=True, help="question file: JSON list or JSONL (VSI-Bench fields)")
    p.add_argument("--out", type=Path, required=True, help="report directory")
    p.add_argument("--live", action="store_true", help="start the node, play the bag onto its topics, ask via ~/ask")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS, metavar="METHOD",
                   help=f"memory (memory/methods.py): {', '.join(METHODS)}; default {DEFAULT_METHOD}")
    p.add_argument("--checkpoint", type=Path, default=None, help="memory model weights (default: the shipped checkpoint)")
    p.add_argument("--detector", choices=("labels", "onnx"), default="labels",
                   help="labels: the bag's label-image topic; onnx: run a detector on the colour images")
    p.add_argument("--model-path", type=Path, default=None, help="ONNX detector (with --detector onnx)")
    p.add_argument("--class-names", type=Path, default=None,
                   help="class names: with --detector labels, the label image's ids (one name a line from id 1, "
                        "or JSON {id: name}; default classes.py); with onnx, the model's classes in output order")
    p.add_argument("--scene", type=Path, default=None,
                   help="ground truth for the map plot: a simulator scene.json (default: the one beside the bag, if any)")
    p.add_argument("--allow-empty", action="store_true",
                   help="exit 0 even when the front-end saw no object at all (otherwise exit 3)")
    p.add_argument("--score-threshold", type=float, default=0.35, help="ONNX detector: minimum score (node default)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the memory model runs (offline and node)")
    p.add_argument("--rate-scale", type=float, default=1.0, help="--live: playback speed (2 = twice as fast)")
    p.add_argument("--qos", choices=("sensor_data", "reliable"), default="sensor_data",
                   help="--live: input QoS of node and player (sensor_data: best effort, as cameras publish)")
    p.add_argument("--max-frames", type=int, default=None, help="use only the first N frames")
    p.add_argument("--qa-backend", choices=("geometry", "vlm", "hybrid"), default="geometry",
                   help="who answers: geometry (the memory), vlm (Spatial-TTT-nano, needs --vlm-checkpoint and the "
                        "vlm extra) or hybrid (parsed VSI-Bench types to geometry, free-form to the VLM; offline, "
                        "both answers are recorded and scored)")
    p.add_argument("--vlm-checkpoint", type=Path, default=None, help="local directory of the Spatial-TTT-nano weights")
    p.add_argument("--vlm-dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto",
                   help="VLM precision (auto: bfloat16 on cuda, float32 on the CPU); it runs on --device")
    p.add_argument("--vlm-keyframe-interval", type=float, default=1.0, help="seconds between VLM keyframes (0: every frame)")
    p.add_argument("--force", action="store_true", help="overwrite an existing report in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    t = p.add_argument_group("topics (defaults: spatial_ttt_ros/topics.py)")
    for name in ("color", "depth", "camera_info", "pose", "odom", "tf", "labels"):
        t.add_argument(f"--{name.replace('_', '-')}-topic", dest=f"topic_{name}", default=None)


def config_from_args(args: argparse.Namespace):
    from spatial_ttt_ros.evaluation.replay import EvalConfig

    topics = BagTopics().with_overrides(**{k[6:]: v for k, v in vars(args).items() if k.startswith("topic_")})
    return EvalConfig(
        bag=args.bag, qa=args.qa, out=args.out, method=args.method, detector=args.detector,
        model_path=args.model_path, class_names=args.class_names, checkpoint=args.checkpoint,
        score_threshold=args.score_threshold, device=args.device,
        live=args.live, rate_scale=args.rate_scale, qos=args.qos, max_frames=args.max_frames, topics=topics,
        progress=not getattr(args, "no_progress", False), scene=getattr(args, "scene", None),
        qa_backend=args.qa_backend, vlm_checkpoint=args.vlm_checkpoint, vlm_dtype=args.vlm_dtype,
        vlm_keyframe_interval_s=args.vlm_keyframe_interval,
    )


def _say(text: str) -> None:
    print(f"spatial-ttt eval: {text}", file=sys.stderr)


def evaluate(cfg, *, force: bool = False, quiet: bool = False):
    """Load questions, replay (offline or live), write the report. Returns (report dict, EvalResult)."""
    from spatial_ttt_ros.evaluation.questions_io import load_questions
    from spatial_ttt_ros.evaluation.report import write_report

    if not cfg.bag.exists():
        raise FileNotFoundError(f"bag {cfg.bag} does not exist")
    if not cfg.qa.is_file():
        raise FileNotFoundError(f"question file {cfg.qa} does not exist")
    if cfg.rate_scale <= 0:
        raise ValueError(f"--rate-scale must be > 0, got {cfg.rate_scale}")
    if cfg.detector == "onnx" and (cfg.model_path is None or not Path(cfg.model_path).is_file()):
        raise ValueError(f"--detector onnx needs an existing --model-path (got {cfg.model_path})")
    if cfg.class_names is not None and not Path(cfg.class_names).is_file():
        raise FileNotFoundError(f"--class-names: no file at {cfg.class_names}")
    existing = [f for f in REPORT_FILES if (cfg.out / f).exists()]
    if existing and not force:
        raise FileExistsError(f"{cfg.out} already holds a report ({', '.join(existing)}); pass --force to overwrite")
    records, errors = load_questions(cfg.qa)
    for e in errors:
        print(f"spatial-ttt eval: skipping bad question record: {e}", file=sys.stderr)
    if not records:
        raise ValueError(f"{cfg.qa}: no valid question records ({len(errors)} bad)")
    from spatial_ttt_ros.evaluation.inputs import check_inputs

    inputs = check_inputs(cfg.bag, cfg.topics, cfg.detector)
    if inputs.missing_required:
        raise ValueError(inputs.error(cfg.bag))
    if not quiet:
        for line in inputs.lines():
            _say(f"input {line}")
    if cfg.live:
        from spatial_ttt_ros.ros.live_replay import run_live

        result = run_live(cfg, records, errors)
    else:
        from spatial_ttt_ros.evaluation.replay import run_offline
        from spatial_ttt_ros.vlm.qa_backend import build_router  # transformers only for vlm/hybrid

        qa = None
        if cfg.qa_backend != "geometry":
            qa = build_router(cfg.qa_backend, cfg.vlm_checkpoint, cfg.vlm_dtype, cfg.device, cfg.vlm_keyframe_interval_s)
        result = run_offline(cfg, records, errors, qa=qa)
    result.inputs = inputs.lines()
    from spatial_ttt_ros.sim.scene_file import find_scene_file

    scene = cfg.scene if cfg.scene is not None else find_scene_file(cfg.bag)
    result.scene_file = None if scene is None else str(scene)
    if result.saw_nothing:
        result.warnings.append(
            "no detections at all: the memory saw no object, so every score below is that of a blind memory. "
            + ("Label images were missing (set --labels-topic). " if "labels" in inputs.missing else "")
            + "Check the label topic and --class-names (or --model-path for onnx)."
        )
    rep = write_report(result, cfg.out)
    for w in result.warnings:
        _say(f"warning: {w}")
    if not quiet:
        print(summary_line(rep, cfg.out))
    return rep, result


def summary_line(rep: dict, out: Path) -> str:
    qa = rep.get("qa_backend", "geometry")
    return (
        f"{rep['method']}{'' if qa == 'geometry' else ' + qa_backend ' + qa} ({rep['mode']}): overall {rep['overall']:.1f}% on {rep['n_questions']} questions "
        f"({len(rep['errors'])} bad records skipped), {rep['frames_processed']} frames, "
        f"{rep['throughput_fps']} frames/s, {rep['dropped_frames']} dropped; report: {out / 'report.md'}"
    )


def run(args: argparse.Namespace) -> int:
    _, result = evaluate(config_from_args(args), force=args.force)
    if result.saw_nothing and not args.allow_empty:
        _say(f"error: the front-end saw no object in any frame (exit {EXIT_EMPTY}; pass --allow-empty to accept)")
        return EXIT_EMPTY
    return 0
