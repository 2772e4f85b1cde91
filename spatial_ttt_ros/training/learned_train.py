"""Train the learned TTT map end to end through its writes, and score it on validation streams.

Per step: one cached stream (training/learned_data.py) is written into fresh fast weights
chunk by chunk, with gradients through every write (the whole stream, 300 to 3,000 frames:
no truncation; the fast weights are < 1 MiB, so the graph of a 1,000-frame stream is a few
hundred MB); the map is read on its grid at the end and the readout's heatmaps are scored
against the scene's objects seen so far (CenterNet focal loss, Gaussian targets) plus an L1
loss on log sizes at the object centres. Trained: the readout CNN, the learning-rate heads
and the key level gains.

    python -m spatial_ttt_ros.training.learned_train train --cache runs/learned_cache \
        --out runs/learned --steps 600 --seed 0
    python -m spatial_ttt_ros.training.learned_train eval --cache runs/learned_cache \
        --checkpoint runs/learned/model.safetensors --seeds 8000-8005 --frames 1000

Choices are made on the validation seeds (8000-8009); the held-out seeds are never read here.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from spatial_ttt_ros.classes import CLASS_TO_ID
from spatial_ttt_ros.memory.learned_model import Ablation, LearnedMapModel
from spatial_ttt_ros.memory.learned_readout import GRID_RES, heatmap_loss
from spatial_ttt_ros.memory.learned_writes import WriteTokens, frame_writes
from spatial_ttt_ros.memory.learned_memory import frames_to_tensors
from spatial_ttt_ros.training.learned_data import CachedStream, _ints, load_stream

HELD_OUT_FIRST = 9000  # seeds from here on are never trained on nor chosen on
SIGMA = 0.25  # m, heatmap target spread


def _chunks(stream: CachedStream, chunk_frames: int) -> tuple[list[WriteTokens], np.ndarray, np.ndarray]:
    ego, geo, obj, valid = frames_to_tensors(stream.tokens)
    chunks = []
    for s in range(0, len(stream.tokens), chunk_frames):
        chunks.append(frame_writes(ego[s : s + chunk_frames], geo[s : s + chunk_frames], obj[s : s + chunk_frames], valid[s : s + chunk_frames]))
    xy = torch.cat([c.xy for c in chunks]).numpy()
    return chunks, xy.min(0), xy.max(0)


def _truth(stream: CachedStream):
    """Objects seen in the stream: (class ids [K], centres [K, 3], axis-aligned sizes [K, 3])."""
    from spatial_ttt_ros.sim.scene import generate_scene

    scene = generate_scene(stream.seed, stream.n_rooms)
    ids, centres, sizes = [], [], []
    for o in scene.objects:
        if o.instance_id not in stream.first_seen or o.label not in CLASS_TO_ID:
            continue
        c, s = abs(np.cos(o.yaw)), abs(np.sin(o.yaw))
        l, w, h = o.size
        ids.append(CLASS_TO_ID[o.label] - 1)  # label id = class index + 1
        centres.append(np.asarray(o.center, np.float64))
        sizes.append(np.array([c * l + s * w, s * l + c * w, h]))
    return np.array(ids, int), np.array(centres).reshape(-1, 3), np.array(sizes).reshape(-1, 3)


def _targets(ids, centres, xs, ys, n_classes):
    heat = np.zeros((n_classes, len(ys), len(xs)), np.float32)
    gx, gy = np.meshgrid(xs, ys)
    cells = []
    for k, c in zip(ids, centres):
        d2 = (gx - c[0]) ** 2 + (gy - c[1]) ** 2
        heat[k] = np.maximum(heat[k], np.exp(-d2 / (2 * SIGMA**2)))
        iy, ix = np.unravel_index(np.argmin(d2), d2.shape)
        if np.sqrt(d2[iy, ix]) < GRID_RES:
            heat[k, iy, ix] = 1.0
        cells.append((iy, ix))
    return torch.from_numpy(heat), cells


def stream_loss(model: LearnedMapModel, chunks, lo, hi, truth, ablation=Ablation()):
    w = model.init_weights()
    for toks in chunks:
        w = model.write(w, toks, ablation)
    reads, xs, ys = model.read_grid(w, lo, hi)
    x, heat, size = model.read_out(reads)
    ids, centres, sizes = truth
    target, cells = _targets(ids, centres, xs, ys, heat.shape[0])
    loss_heat = heatmap_loss(heat, target)
    loss_size = torch.zeros(())
    if cells:
        iy = torch.tensor([c[0] for c in cells])
        ix = torch.tensor([c[1] for c in cells])
        n = x.shape[0] - 8
        pred = (x[n + 3 : n + 6, iy, ix] + size[:, iy, ix]).T  # [K, 3]
        held = x[n, iy, ix] > 0.05
        if bool(held.any()):
            loss_size = (pred - torch.from_numpy(np.log(sizes)).float()).abs()[held].mean()
    return loss_heat + loss_size, float(loss_heat), float(loss_size)


def train(a: argparse.Namespace) -> int:
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    torch.set_num_threads(a.threads)
    cache = Path(a.cache)
    paths = sorted(p.with_suffix("") for p in cache.glob("*.json"))
    paths = [p for p in paths if json.loads(p.with_suffix(".json").read_text())["seed"] < 8000]
    paths = [p for p in paths if json.loads(p.with_suffix(".json").read_text())["n_frames"] <= a.max_frames]
    if not paths:
        raise SystemExit(f"no training streams in {cache}")
    model = LearnedMapModel()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    data: dict = {}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "train_log.jsonl", "a")
    t0 = time.perf_counter()
    for step in range(1, a.steps + 1):
        p = random.choice(paths)
        if p not in data:
            s = load_stream(p)
            data[p] = (*_chunks(s, model.cfg.chunk_frames), _truth(s))
        chunks, lo, hi, truth = data[p]
        loss, lh, ls = stream_loss(model, chunks, lo, hi, truth)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        rec = {"step": step, "stream": p.name, "loss": float(loss), "heat": lh, "size": ls, "s": round(time.perf_counter() - t0, 1)}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if step % 20 == 0 or step == a.steps:
            print(json.dumps(rec), flush=True)
            save(model, out / "model.safetensors", {"steps": step, "command": a.command})
    return 0


def save(model: LearnedMapModel, path: Path, info: dict) -> None:
    from safetensors.torch import save_file

    meta = {"config": json.dumps(model.cfg.to_dict()), "info": json.dumps(info)}
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)


def load_model(path: str | Path) -> LearnedMapModel:
    from spatial_ttt_ros.memory.learned_checkpoint import load_learned_model

    return load_learned_model(path)


def evaluate(a: argparse.Namespace) -> int:
    from spatial_ttt_ros.memory.learned_memory import LearnedTTTMemory
    from spatial_ttt_ros.memory.factory import make_memory

    torch.set_num_threads(a.threads)
    seeds = _ints(a.seeds)
    if any(s >= HELD_OUT_FIRST for s in seeds) and not a.held_out:
        raise SystemExit("held-out seeds: pass --held-out (run once, at the end)")
    rows = {}
    for method in a.methods.split(","):
        scored = []
        for seed in seeds:
            paths = sorted(Path(a.cache).glob(f"s{seed}_r*_f{a.frames}_{a.detections}.json"))
            if not paths:
                raise SystemExit(f"no cached stream for seed {seed}, {a.frames} frames, {a.detections}")
            s = load_stream(paths[0].with_suffix(""))
            if method.startswith("ttt"):
                mem = LearnedTTTMemory(load_model(a.checkpoint), threshold=a.threshold)
            else:
                mem = make_memory(method)
            for tok in s.tokens:
                mem.observe(tok)
            scored += score_stream(mem.inventory(), s)
        rows[method] = _summary(scored)
        print(method, json.dumps(rows[method]), flush=True)
    return 0


def score_stream(inventory, s: CachedStream, per_type: int = 8):
    from spatial_ttt_ros.bench.quality import score_inventory
    from spatial_ttt_ros.sim.questions import generate_questions
    from spatial_ttt_ros.sim.scene import generate_scene

    scene = generate_scene(s.seed, s.n_rooms)
    qs = generate_questions(scene, s.first_seen, seed=s.seed, scene_name=s.scene_name, visited_rooms=s.visited_rooms, per_type=per_type)
    return score_inventory(inventory, qs)


def _summary(scored) -> dict:
    from spatial_ttt_ros.evaluation.metrics import aggregate

    agg = aggregate(scored)
    return {"overall": round(100 * agg["overall"], 1), "tasks": {k: round(100 * v, 1) for k, v in agg["tasks"].items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--cache", default="runs/learned_cache")
    t.add_argument("--out", default="runs/learned")
    t.add_argument("--steps", type=int, default=600)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--max-frames", type=int, default=1000)
    e = sub.add_parser("eval")
    e.add_argument("--cache", default="runs/learned_cache")
    e.add_argument("--checkpoint", default=None)
    e.add_argument("--seeds", default="8000-8005")
    e.add_argument("--frames", type=int, default=1000)
    e.add_argument("--detections", default="noisy")
    e.add_argument("--methods", default="ttt,object_map")
    e.add_argument("--threshold", type=float, default=None)
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--held-out", action="store_true")
    a = p.parse_args(argv)
    a.command = "python -m spatial_ttt_ros.training.learned_train " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    return train(a) if a.cmd == "train" else evaluate(a)


if __name__ == "__main__":
    raise SystemExit(main())
