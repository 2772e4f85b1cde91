"""``spatial-ttt bench quality``: VSI-Bench scores of the model, the baselines and the ablations.

Simulator scenes of one split are walked at 10 Hz for 300, 1,000 and 5,000 frames (rooms
grow with the stream: 1, 2 and 4), plus ``--wide-scenes`` scenes of 6 rooms (7,500 frames,
wider than 18 m). Split ``validation`` (seeds 8000-8009, the default) is where every choice
is made; split ``held_out`` (seeds 9900-9909) is run once, at the end, for the README;
``held_out_v2`` (9100-9109), ``held_out_v3`` (9200-9209), ``held_out_v4`` (9300-9309),
``held_out_v5`` (9400-9409), ``held_out_v6`` (9500-9509), ``held_out_v7`` (9600-9609, v7
decoded with 3 x 3 peaks), ``held_out_v7b`` (9700-9709, v7 with 7 x 7 peaks) and ``held_out_v8``
(9800-9809) are the sets the v2, v3b, v4, v5, v6, v7 and v8 checkpoints were measured on, spent since
(``training.learned_data.SPENT_HELD_OUT_SEEDS``).
Each stream is rendered once at the training streams' size and tokenised by the label
front-end twice: exact detections and the "noisy" preset (misses, false positives, class
confusion, box/size/range noise, pose drift, no label image); ``--detections ... sparse``
adds the "sparse" preset (noisy with 80 % misses and 0.3 m centre noise); ``--cache DIR`` keeps the
tokens (training/learned_data.py). Every method reads the *same* tokens.

Questions come from ``sim.questions.generate_questions`` (exact answers), are answered from
each memory's final inventory and scored with ``evaluation.metrics`` (MRA for numbers,
accuracy for choices, an abstention scores 0; overall = unweighted mean of the 8 task scores,
in percent), pooled over the scenes of one (method, detections, frames). ``ci95`` is a 95 %
bootstrap interval of the overall score over scenes (1,000 resamples of the scenes).

JSON written with ``--json FILE``::

    {"results":   [{"method", "detections", "frames", "overall", "ci95", "tasks": {...},
                    "levels", "counts", "scenes", "state_bytes", "seconds_per_frame"}],
     "ablations": [{"name", "detections", "frames", "overall", "ci95", "tasks", ...}],
     "skipped":   [{"method", "reason"}],
     "config":    {...}}
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from spatial_ttt_ros.bench.results import write_json
from spatial_ttt_ros.memory.methods import ABLATIONS
from spatial_ttt_ros.training.learned_data import (
    HELD_OUT_SEEDS,
    SPENT_HELD_OUT_SEEDS,
    VAL_SEEDS,
    CachedStream,
    cached_or_rendered,
)

DEFAULT_FRAMES = (300, 1000, 5000)
DEFAULT_METHODS = ("ttt", "object_map", "full_context", "sliding_window")
DEFAULT_ABLATIONS = ABLATIONS
DETECTIONS = ("exact", "noisy", "sparse")  # noise presets (perception/noise.py)
DEFAULT_DETECTIONS = ("exact", "noisy")
DEFAULT_SCENES = 8
LONG_FRAMES = 5000  # streams at least this long use --long-scenes scenes (they take minutes each)
DEFAULT_LONG_SCENES = 4
WIDE_FRAMES, WIDE_ROOMS = 7500, 6
PER_TYPE = 8  # questions per type (per level for relative direction) per scene
SPLITS = {"validation": VAL_SEEDS, "held_out": HELD_OUT_SEEDS, **SPENT_HELD_OUT_SEEDS}
BOOTSTRAP = 1000


def split_seeds(split: str) -> list[int]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use {' or '.join(SPLITS)}")
    return [int(s) for s in SPLITS[split]]


def rooms_for_frames(n_frames: int) -> int:
    """Rooms scale with stream length: 1 up to 300 frames, 2 up to 1,000, then 1 per 1,250 (max 6)."""
    if n_frames <= 300:
        return 1
    if n_frames <= 1000:
        return 2
    return int(min(6, max(3, n_frames // 1250)))


def questions_for(stream: CachedStream, per_type: int = PER_TYPE) -> list[dict]:
    from spatial_ttt_ros.sim.questions import generate_questions
    from spatial_ttt_ros.sim.scene import generate_scene

    scene = generate_scene(stream.seed, stream.n_rooms)
    return generate_questions(
        scene,
        stream.first_seen,
        seed=stream.seed,
        scene_name=stream.scene_name,
        visited_rooms=stream.visited_rooms,
        per_type=per_type,
    )


# -- scoring ---------------------------------------------------------------------------
def run_memory(memory, stream: CachedStream):
    """Feed the stream's tokens; returns (final inventory, seconds per frame, state bytes)."""
    memory.reset()
    t = time.perf_counter()
    for tok in stream.tokens:
        memory.observe(tok)
    inv = memory.inventory()
    dt = time.perf_counter() - t
    return inv, dt / max(1, len(stream.tokens)), int(memory.state_bytes())


def score_inventory(inventory, questions: list[dict]) -> list[tuple[dict, float]]:
    from spatial_ttt_ros.evaluation.metrics import score_record
    from spatial_ttt_ros.answer import QuestionError
    from spatial_ttt_ros.reasoning.qa import answer_question

    out = []
    for rec in questions:
        try:
            pred = answer_question(rec["question"], rec.get("options") or None, inventory).prediction()
        except QuestionError:
            pred = float("nan")  # "I do not know that object": scores 0
        out.append((rec, score_record(rec, pred)))
    return out


def _aggregate(scored: list[tuple[dict, float]]) -> dict:
    from spatial_ttt_ros.evaluation.metrics import aggregate

    return aggregate(scored)


def bootstrap_ci(per_scene: list[list[tuple[dict, float]]], n: int = BOOTSTRAP, seed: int = 0) -> list[float]:
    """95 % interval of the overall score when the scenes are resampled with replacement.

    Repeats are left out of each scene once (as ``aggregate`` does); a scene drawn twice then
    counts twice, as two scenes would.
    """
    from spatial_ttt_ros.evaluation.metrics import aggregate, find_duplicates

    unique = []
    for sc in per_scene:
        rep = find_duplicates(r for r, _ in sc)
        unique.append([x for i, x in enumerate(sc) if i not in rep])
    if len(unique) < 2:
        o = aggregate([x for sc in unique for x in sc], dedupe=False)["overall"]
        return [round(o, 2), round(o, 2)]
    rng = np.random.default_rng(seed)
    vals = [
        aggregate([x for i in rng.integers(0, len(unique), len(unique)) for x in unique[i]], dedupe=False)["overall"]
        for _ in range(n)
    ]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return [round(float(lo), 2), round(float(hi), 2)]


# -- CLI -------------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="FILE", default=None, help="write the results as JSON to FILE")
    parser.add_argument("--split", choices=tuple(SPLITS), default="validation",
                        help="scene seeds: validation (8000-8009, default; choose here), held_out (9900-9909; "
                             "run once, at the end), held_out_v2 (9100-9109), held_out_v3 (9200-9209), "
                             "held_out_v4 (9300-9309), held_out_v5 (9400-9409), held_out_v6 (9500-9509), "
                             "held_out_v7 (9600-9609), held_out_v7b (9700-9709) or held_out_v8 (9800-9809), "
                             "spent on the v2, v3b, v4, v5, v6, v7 and v8 checkpoints")
    parser.add_argument("--frames", type=int, nargs="+", default=None,
                        help=f"stream lengths (default {' '.join(map(str, DEFAULT_FRAMES))}; rooms scale with frames)")
    parser.add_argument("--scenes", type=int, default=None,
                        help=f"scenes per length (default {DEFAULT_SCENES}, at most 10)")
    parser.add_argument("--long-scenes", type=int, default=DEFAULT_LONG_SCENES,
                        help=f"scenes for streams of {LONG_FRAMES} frames or more (default {DEFAULT_LONG_SCENES})")
    parser.add_argument("--wide-scenes", type=int, default=0,
                        help=f"scenes of {WIDE_ROOMS} rooms, {WIDE_FRAMES} frames (wider than 18 m; default 0)")
    parser.add_argument("--methods", nargs="+", default=None,
                        help=f"methods (default {' '.join(DEFAULT_METHODS)})")
    parser.add_argument("--ablations", nargs="*", default=None,
                        help=f"TTT ablations (default {' '.join(DEFAULT_ABLATIONS)}; none: --ablations with no names)")
    parser.add_argument("--detections", nargs="+", choices=DETECTIONS, default=list(DEFAULT_DETECTIONS),
                        help="detection modes (default exact noisy; sparse: noisy with 80%% misses and 0.3 m centre noise, "
                             "evidence as thin as a real detector's on a slow camera)")
    parser.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped one)")
    parser.add_argument("--threshold", type=float, default=None, help="TTT readout threshold (default: the checkpoint's)")
    parser.add_argument("--per-type", type=int, default=PER_TYPE, help="questions per type per scene")
    parser.add_argument("--cache", default=None, help="directory that keeps rendered token streams between runs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true",
                        help="small run: 300 frames, 1 scene, unless --frames/--scenes say otherwise")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt_table(rows: list[dict], key: str) -> str:
    from spatial_ttt_ros.answer import TASK_TYPES

    short = {
        "object_counting": "count",
        "object_abs_distance": "absdist",
        "object_size_estimation": "size",
        "room_size_estimation": "room",
        "object_rel_distance": "reldist",
        "object_rel_direction": "reldir",
        "route_planning": "route",
        "obj_appearance_order": "order",
    }
    head = f"{key:<18} {'det':<6} {'frames':>6} {'overall':>7} " + " ".join(f"{short[t]:>7}" for t in TASK_TYPES) + "  ci95"
    lines = [head, "-" * len(head)]
    for r in rows:
        tasks = r.get("tasks", {})
        cells = " ".join(f"{tasks[t]:7.1f}" if t in tasks else f"{'-':>7}" for t in TASK_TYPES)
        ci = r.get("ci95")
        ci_s = f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""
        lines.append(f"{r[key]:<18} {r['detections']:<6} {r['frames']:>6} {r['overall']:7.1f} {cells}{ci_s}")
    return "\n".join(lines)


def _build_memories(names: list[str], checkpoint, skipped: list[dict], threshold: float | None = None) -> dict:
    from spatial_ttt_ros.memory.factory import make_memory

    out = {}
    for name in names:
        try:
            # The object map learns nothing: only the learned variants take the checkpoint.
            if name == "object_map":
                out[name] = make_memory(name)
            else:
                out[name] = make_memory(name, checkpoint=checkpoint, **({} if threshold is None else {"threshold": threshold}))
        except ValueError as exc:
            if "unknown memory method" in str(exc):
                raise  # a typo on the command line is the user's to fix
            skipped.append({"method": name, "reason": str(exc)})
        except (FileNotFoundError, ImportError) as exc:  # no trained checkpoint (yet)
            skipped.append({"method": name, "reason": f"{type(exc).__name__}: {exc}"})
    for s in skipped:
        _log(f"skipping {s['method']}: {s['reason']}")
    return out


def run(args: argparse.Namespace) -> int:
    frames = list(args.frames or ([300] if args.quick else DEFAULT_FRAMES))
    n_scenes = args.scenes if args.scenes is not None else (1 if args.quick else DEFAULT_SCENES)
    seeds = split_seeds(args.split)
    if not 1 <= n_scenes <= len(seeds):
        raise ValueError(f"--scenes must be between 1 and {len(seeds)} (the {args.split} seeds), got {n_scenes}")
    if not 0 <= args.wide_scenes <= len(seeds) or not 1 <= args.long_scenes <= len(seeds):
        raise ValueError(f"--wide-scenes and --long-scenes must be at most {len(seeds)}")
    if any(f < 10 for f in frames):
        raise ValueError(f"--frames must be at least 10, got {frames}")
    if args.per_type < 1:
        raise ValueError(f"--per-type must be at least 1, got {args.per_type}")
    methods = list(args.methods or DEFAULT_METHODS)
    ablations = list(DEFAULT_ABLATIONS if args.ablations is None else args.ablations)
    try:
        import torch

        torch.set_num_threads(max(1, int(args.threads)))
    except ImportError:  # object_map alone needs no torch
        pass

    skipped: list[dict] = []
    memories = _build_memories(methods + [a for a in ablations if a not in methods], args.checkpoint, skipped, args.threshold)
    runs = [(f, rooms_for_frames(f), seeds[: min(n_scenes, args.long_scenes) if f >= LONG_FRAMES else n_scenes]) for f in frames]
    if args.wide_scenes:
        runs.append((WIDE_FRAMES, WIDE_ROOMS, seeds[: args.wide_scenes]))
    pooled: dict[tuple[str, str, int], list] = {}
    stats: dict[tuple[str, str, int], list] = {}
    t_all = time.perf_counter()
    for n_frames, n_rooms, run_seeds in runs:
        for seed in run_seeds:
            _log(f"scene {seed}: {n_rooms} room(s), {n_frames} frames")
            streams = cached_or_rendered(args.cache, seed, n_rooms, n_frames, tuple(args.detections))
            questions = questions_for(next(iter(streams.values())), args.per_type)
            for det, stream in streams.items():
                for name, mem in memories.items():
                    inv, spf, nbytes = run_memory(mem, stream)
                    scored = score_inventory(inv, questions)
                    key = (name, det, n_frames)
                    pooled.setdefault(key, []).append(scored)
                    stats.setdefault(key, []).append((spf, nbytes))
                    part = _aggregate(scored)["overall"]
                    _log(f"  {det:<5} {name:<18} overall {part:5.1f}  ({1000 * spf:.2f} ms/frame, {nbytes} B state)")
            del streams

    results, abl = [], []
    for (name, det, n_frames), per_scene in pooled.items():
        agg = _aggregate([x for sc in per_scene for x in sc])
        spf = float(np.mean([s for s, _ in stats[(name, det, n_frames)]]))
        nbytes = int(np.mean([b for _, b in stats[(name, det, n_frames)]]))
        common = {
            "detections": det,
            "frames": n_frames,
            "overall": round(agg["overall"], 2),
            "ci95": bootstrap_ci(per_scene),
            "tasks": {k: round(v, 2) for k, v in agg["tasks"].items()},
            "levels": {k: round(v, 2) for k, v in agg["levels"].items()},
            "counts": agg["counts"],
            "scenes": len(per_scene),
            "state_bytes": nbytes,
            "seconds_per_frame": round(spf, 6),
        }
        if name in methods:
            results.append({"method": name, **common})
        if name in ablations:
            abl.append({"name": name, **common})
    order = {d: i for i, d in enumerate(DETECTIONS)}
    results.sort(key=lambda r: (order[r["detections"]], r["frames"], methods.index(r["method"])))
    abl.sort(key=lambda r: (order[r["detections"]], r["frames"], ablations.index(r["name"])))

    print(_fmt_table(results, "method"))
    if abl:
        print()
        print(_fmt_table(abl, "name"))
    print(f"\nsplit {args.split}; scenes per length: " + ", ".join(f"{f}: {len(s)}" for f, _, s in runs)
          + f"; {args.per_type} questions per type per scene; {time.perf_counter() - t_all:.0f} s")
    if args.json:
        doc = {
            "results": results,
            "ablations": abl,
            "skipped": skipped,
            "config": {
                "split": args.split,
                "frames": [f for f, _, _ in runs],
                "rooms": {str(f): r for f, r, _ in runs},
                "seeds": {str(f): list(s) for f, _, s in runs},
                "detections": list(args.detections),
                "per_type": args.per_type,
                "checkpoint": args.checkpoint,
                "threshold": args.threshold,
                "argv": sys.argv[1:],
            },
        }
        write_json(args.json, doc)
    return 0
