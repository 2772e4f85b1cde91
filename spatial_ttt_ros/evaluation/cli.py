"""``spatial-ttt eval``: score a memory on a bag and a question file, offline or through the node.

    spatial-ttt eval --bag BAG --qa QA --out DIR [--live] [--method ttt|object_map|...]
                     [--detector labels|onnx --model-path M.onnx --class-names names.txt]

Writes DIR/report.json, report.md, timing.csv and PNG plots (see report.py). Bad
question records are listed in the report and on stderr and skipped; the good ones
are still scored. A corrupt bag or one without the needed topics is a ValueError,
which the top-level CLI prints as one line (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spatial_ttt_ros.evaluation.bag_reader import BagTopics

REPORT_FILES = ("report.json", "report.md", "timing.csv")


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bag", type=Path, required=True, help="rosbag2 directory, .mcap or .db3")
    p.add_argument("--qa", type=Path, required=True, help="question file: JSON list or JSONL (VSI-Bench fields)")
    p.add_argument("--out", type=Path, required=True, help="report directory")
    p.add_argument("--live", action="store_true", help="start the node, play the bag onto its topics, ask via ~/ask")
    p.add_argument("--method", default="ttt", help="memory: ttt (default), object_map, swa, full_context, ... (make_memory)")
    p.add_argument("--checkpoint", type=Path, default=None, help="memory model weights (default: the shipped checkpoint)")
    p.add_argument("--detector", choices=("labels", "onnx"), default="labels",
                   help="labels: the bag's label-image topic; onnx: run a detector on the colour images")
    p.add_argument("--model-path", type=Path, default=None, help="ONNX detector (with --detector onnx)")
    p.add_argument("--class-names", type=Path, default=None, help="detector class names, one per line")
    p.add_argument("--score-threshold", type=float, default=0.35, help="ONNX detector: minimum score (node default)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the memory model runs (offline and node)")
    p.add_argument("--rate-scale", type=float, default=1.0, help="--live: playback speed (2 = twice as fast)")
    p.add_argument("--qos", choices=("sensor_data", "reliable"), default="sensor_data",
                   help="--live: input QoS of node and player (sensor_data: best effort, as cameras publish)")
    p.add_argument("--max-frames", type=int, default=None, help="use only the first N frames")
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
        progress=not getattr(args, "no_progress", False),
    )


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
    existing = [f for f in REPORT_FILES if (cfg.out / f).exists()]
    if existing and not force:
        raise FileExistsError(f"{cfg.out} already holds a report ({', '.join(existing)}); pass --force to overwrite")
    records, errors = load_questions(cfg.qa)
    for e in errors:
        print(f"spatial-ttt eval: skipping bad question record: {e}", file=sys.stderr)
    if not records:
        raise ValueError(f"{cfg.qa}: no valid question records ({len(errors)} bad)")
    if cfg.live:
        from spatial_ttt_ros.ros.live_replay import run_live

        result = run_live(cfg, records, errors)
    else:
        from spatial_ttt_ros.evaluation.replay import run_offline

        result = run_offline(cfg, records, errors)
    rep = write_report(result, cfg.out)
    if not quiet:
        print(summary_line(rep, cfg.out))
    return rep, result


def summary_line(rep: dict, out: Path) -> str:
    return (
        f"{rep['method']} ({rep['mode']}): overall {rep['overall']:.1f}% on {rep['n_questions']} questions "
        f"({len(rep['errors'])} bad records skipped), {rep['frames_processed']} frames, "
        f"{rep['throughput_fps']} frames/s, {rep['dropped_frames']} dropped; report: {out / 'report.md'}"
    )


def run(args: argparse.Namespace) -> int:
    evaluate(config_from_args(args), force=args.force)
    return 0
