"""``spatial-ttt bench quality``: VSI-Bench scores of the model, the baselines and the ablations.

Held-out simulator scenes (``training.data.HELD_OUT_SEEDS``, never trained on) are
walked for 300, 1,000 and 5,000 frames at 10 Hz; the room count grows with the
stream (``rooms_for_frames``: 1, 2 and 4 rooms), so the longest stream crosses several
rooms. Each stream is rendered once, at the training streams' resolution
(``training.data.RENDER_WIDTH/HEIGHT``; the geometry grid is only 4x4 cells, so this is
low), and turned into frame tokens by the same front-end
as training and the node (label image -> connected components -> depth lifting ->
tokens) twice: with exact detections, and with the "noisy" detector noise preset
(misses, false positives, class confusion, box/size/range noise, pose drift, no
label image). Every method reads the *same* tokens.

Questions come from ``sim.questions.generate_questions`` on the scene and what the
camera saw (exact answers), are answered with ``reasoning.qa.answer_question`` from
each memory's final inventory and scored with ``evaluation.metrics`` (MRA for
numbers, accuracy for choices; overall = unweighted mean of the 8 task scores, in
percent). Scores are pooled over the scenes of one (method, detections, frames).

JSON written with ``--json FILE``::

    {"results":   [{"method", "detections", "frames", "overall", "tasks": {...},
                    "levels", "counts", "state_bytes", "seconds_per_frame"}],
     "ablations": [{"name", "detections", "frames", "overall", "tasks", ...}],
     "skipped":   [{"method", "reason"}],
     "config":    {...}}
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from spatial_ttt_ros.bench.results import write_json

DEFAULT_FRAMES = (300, 1000, 5000)
DEFAULT_METHODS = ("ttt", "object_map", "full_context", "sliding_window")
DEFAULT_ABLATIONS = ("ttt_frozen", "ttt_no_conv", "ttt_momentum", "ttt_muon")
DETECTIONS = ("exact", "noisy")
DEFAULT_SCENES = 3
PER_TYPE = 8  # questions per type (per level for relative direction) per scene
RATE_HZ = 10.0
# The noise session of a stream is seeded like training's (training/data.py) so that the
# noisy tokens here are distributed exactly like the model's training tokens.
NOISE_SEED_OFFSET = 7919


def held_out_seeds() -> list[int]:
    """Scene seeds never used for training: the model engineer's constant when present."""
    try:
        from spatial_ttt_ros.training.data import HELD_OUT_SEEDS

        return [int(s) for s in HELD_OUT_SEEDS]
    except ImportError:  # pragma: no cover - data.py ships with the model
        return list(range(9000, 9010))


def render_size() -> tuple[int, int]:
    """The training streams' render size (training/data.py), so test tokens look like training tokens."""
    try:
        from spatial_ttt_ros.training.data import RENDER_HEIGHT, RENDER_WIDTH

        return int(RENDER_WIDTH), int(RENDER_HEIGHT)
    except ImportError:  # pragma: no cover - data.py ships with the model
        return 96, 72


def rooms_for_frames(n_frames: int) -> int:
    """Rooms scale with stream length: 1 up to 300 frames, 2 up to 1,000, then 1 per 1,250 (max 6)."""
    if n_frames <= 300:
        return 1
    if n_frames <= 1000:
        return 2
    return int(min(6, max(3, n_frames // 1250)))


# -- streams ---------------------------------------------------------------------------
@dataclass
class BenchStream:
    """One rendered stream's tokens for one detection mode, plus what the questions need."""

    seed: int
    n_rooms: int
    n_frames: int
    detections: str
    tokens: list = field(repr=False)  # list[FrameTokens]
    first_seen: dict[int, float]  # instance id -> seconds since the first frame
    visited_rooms: list[int]
    seconds: float = 0.0  # render + front-end time spent on this stream

    @property
    def scene_name(self) -> str:
        return f"heldout{self.seed}_r{self.n_rooms}_f{self.n_frames}"


def _strip(observations: list) -> list:
    # Masks (H x W each) are only needed to tokenise; dropping them keeps a
    # 5,000-frame stream's cached observations small.
    from dataclasses import replace

    return [replace(o, extras={k: v for k, v in o.extras.items() if k != "mask"}) for o in observations]


def render_streams(
    seed: int,
    n_rooms: int,
    n_frames: int,
    detections: tuple[str, ...] = DETECTIONS,
    width: int = 96,
    height: int = 72,
    grid: tuple[int, int] = (4, 4),
    max_objects: int = 16,
    log=None,
) -> dict[str, BenchStream]:
    """Render the stream once and tokenise it once per detection mode."""
    from spatial_ttt_ros.frames import CameraFrame
    from spatial_ttt_ros.perception.front_end import FrontEnd
    from spatial_ttt_ros.sim.stream import simulate_stream

    t_start = time.perf_counter()
    sim = simulate_stream(seed, n_rooms, n_frames, RATE_HZ, width, height)
    fronts = {
        d: FrontEnd(
            source="labels",
            grid=grid,
            max_objects=max_objects,
            noise=None if d == "exact" else d,
            noise_seed=seed + NOISE_SEED_OFFSET,
        )
        for d in detections
    }
    tokens: dict[str, list] = {d: [] for d in detections}
    for i, (stamp, T) in enumerate(sim.trajectory):
        _, depth, labels, _ = sim.renderer.render(T, shade=False)
        for d, fe in fronts.items():
            # A fresh frame per front-end: the noisy one replaces pose/depth/labels.
            frame = CameraFrame(stamp=float(stamp), depth=depth, K=sim.K, T_world_cam=T, labels=labels, frame_index=i)
            _, tok = fe.process(frame)
            tok.observations = _strip(tok.observations)
            tokens[d].append(tok)
        if log and (i + 1) % 1000 == 0:
            log(f"  seed {seed}: {i + 1}/{n_frames} frames rendered and tokenised")
    # First sightings with the simulator's own visibility rule (the questions' truth).
    first_seen = sim.first_seen
    visited = sim.visited_rooms
    elapsed = time.perf_counter() - t_start
    return {
        d: BenchStream(seed, n_rooms, n_frames, d, tokens[d], first_seen, visited, elapsed / len(detections))
        for d in detections
    }


def questions_for(stream: BenchStream, per_type: int = PER_TYPE) -> list[dict]:
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
def run_memory(memory, stream: BenchStream):
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


# -- CLI -------------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="FILE", default=None, help="write the results as JSON to FILE")
    parser.add_argument("--frames", type=int, nargs="+", default=None,
                        help=f"stream lengths (default {' '.join(map(str, DEFAULT_FRAMES))}; rooms scale with frames)")
    parser.add_argument("--scenes", type=int, default=None,
                        help=f"held-out scenes per length (default {DEFAULT_SCENES}, at most 10)")
    parser.add_argument("--methods", nargs="+", default=None,
                        help=f"methods (default {' '.join(DEFAULT_METHODS)})")
    parser.add_argument("--ablations", nargs="*", default=None,
                        help=f"TTT ablations (default {' '.join(DEFAULT_ABLATIONS)}; none: --ablations with no names)")
    parser.add_argument("--detections", nargs="+", choices=DETECTIONS, default=list(DETECTIONS),
                        help="detection modes (default both)")
    parser.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped one)")
    parser.add_argument("--per-type", type=int, default=PER_TYPE, help="questions per type per scene")
    parser.add_argument("--width", type=int, default=None,
                        help="render width (px; default: the training streams' size, training/data.py)")
    parser.add_argument("--height", type=int, default=None, help="render height (px; default: as training)")
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
    head = f"{key:<16} {'det':<6} {'frames':>6} {'overall':>7} " + " ".join(f"{short[t]:>7}" for t in TASK_TYPES)
    lines = [head, "-" * len(head)]
    for r in rows:
        tasks = r.get("tasks", {})
        cells = " ".join(f"{tasks[t]:7.1f}" if t in tasks else f"{'-':>7}" for t in TASK_TYPES)
        lines.append(f"{r[key]:<16} {r['detections']:<6} {r['frames']:>6} {r['overall']:7.1f} {cells}")
    return "\n".join(lines)


def _build_memories(names: list[str], checkpoint, skipped: list[dict]) -> dict:
    from spatial_ttt_ros.memory.factory import make_memory

    out = {}
    for name in names:
        try:
            # The object map learns nothing: only the learned variants take the checkpoint.
            out[name] = make_memory(name, checkpoint=None if name == "object_map" else checkpoint)
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
    seeds = held_out_seeds()
    if not 1 <= n_scenes <= len(seeds):
        raise ValueError(f"--scenes must be between 1 and {len(seeds)} (the held-out seeds), got {n_scenes}")
    if any(f < 10 for f in frames):
        raise ValueError(f"--frames must be at least 10, got {frames}")
    if args.per_type < 1:
        raise ValueError(f"--per-type must be at least 1, got {args.per_type}")
    width, height = render_size()
    width, height = args.width or width, args.height or height
    methods = list(args.methods or DEFAULT_METHODS)
    ablations = list(DEFAULT_ABLATIONS if args.ablations is None else args.ablations)
    try:
        import torch

        torch.set_num_threads(max(1, int(args.threads)))
    except ImportError:  # object_map alone needs no torch
        pass

    skipped: list[dict] = []
    memories = _build_memories(methods + [a for a in ablations if a not in methods], args.checkpoint, skipped)
    pooled: dict[tuple[str, str, int], list] = {}
    stats: dict[tuple[str, str, int], list] = {}
    t_all = time.perf_counter()
    for n_frames in frames:
        n_rooms = rooms_for_frames(n_frames)
        for seed in seeds[:n_scenes]:
            _log(f"scene {seed}: {n_rooms} room(s), {n_frames} frames: rendering")
            streams = render_streams(seed, n_rooms, n_frames, tuple(args.detections), width, height, log=_log)
            questions = questions_for(next(iter(streams.values())), args.per_type)
            for det, stream in streams.items():
                for name, mem in memories.items():
                    inv, spf, nbytes = run_memory(mem, stream)
                    scored = score_inventory(inv, questions)
                    key = (name, det, n_frames)
                    pooled.setdefault(key, []).extend(scored)
                    stats.setdefault(key, []).append((spf, nbytes))
                    part = _aggregate(scored)["overall"]
                    _log(f"  {det:<5} {name:<16} overall {part:5.1f}  ({1000 * spf:.2f} ms/frame, {nbytes} B state)")
            del streams

    results, abl = [], []
    for (name, det, n_frames), scored in pooled.items():
        agg = _aggregate(scored)
        spf = float(np.mean([s for s, _ in stats[(name, det, n_frames)]]))
        nbytes = int(np.mean([b for _, b in stats[(name, det, n_frames)]]))
        common = {
            "detections": det,
            "frames": n_frames,
            "overall": round(agg["overall"], 2),
            "tasks": {k: round(v, 2) for k, v in agg["tasks"].items()},
            "levels": {k: round(v, 2) for k, v in agg["levels"].items()},
            "counts": agg["counts"],
            "scenes": n_scenes,
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
    print(f"\n{n_scenes} held-out scene(s) per length, {args.per_type} questions per type per scene; "
          f"{time.perf_counter() - t_all:.0f} s")
    if args.json:
        doc = {
            "results": results,
            "ablations": abl,
            "skipped": skipped,
            "config": {
                "frames": frames,
                "rooms": {str(f): rooms_for_frames(f) for f in frames},
                "seeds": seeds[:n_scenes],
                "detections": list(args.detections),
                "per_type": args.per_type,
                "render": [width, height],
                "checkpoint": args.checkpoint,
                "argv": sys.argv[1:],
            },
        }
        write_json(args.json, doc)
    return 0
