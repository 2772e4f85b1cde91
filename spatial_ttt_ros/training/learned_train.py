"""Train the learned TTT map end to end through its writes (``spatial-ttt train``).

Per step: one cached stream (training/learned_data.py; every detection mode cached for the
training seeds: exact, noisy and sparse) is written into fresh fast weights
chunk by chunk, with gradients through every write (the whole stream, 300 to 3,000 frames:
no truncation; the fast weights are < 1 MiB, so the graph of a 1,000-frame stream is a few
hundred MB); the map is read on its grid at the end and the readout's heatmaps are scored
against the scene's objects seen so far (CenterNet focal loss, Gaussian targets) plus an L1
loss on log sizes and on the centre offsets at the object centres. Trained: the readout CNN and
the learning-rate heads (the key level gains are fixed since v8: memory/learned_keys.py).

    spatial-ttt train --cache runs/learned_cache --out runs/learned --steps 1500 --seed 0

Scored with ``spatial-ttt bench quality --split validation --cache runs/learned_cache
--checkpoint ...``; choices are made on the validation seeds, the held-out seeds are never
read here (training streams are the seeds below ``VAL_SEEDS``).
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
from spatial_ttt_ros.memory.learned_map import ACC_MAX, CH_BIRTH_T
from spatial_ttt_ros.memory.learned_model import Ablation, LearnedMapConfig, LearnedMapModel
from spatial_ttt_ros.memory.learned_readout import GRID_RES, IN_LOG_SIZE, IN_MASS, heatmap_loss
from spatial_ttt_ros.memory.learned_writes import WriteTokens, frame_writes
from spatial_ttt_ros.memory.learned_memory import frames_to_tensors
from spatial_ttt_ros.training.learned_data import VAL_SEEDS, CachedStream, load_stream

SIGMA = 0.25  # m, heatmap target spread
# What a checkpoint is trained for: the TTT map (its ablations but the additive one share its
# weights), the additive-write ablation, and the attention baselines (full context; the sliding
# window reads with the same weights). Same data, steps and seed for each.
VARIANTS = {"ttt": Ablation(), "ttt_additive": Ablation(error_term=False), "full_context": None}


def _chunks(stream: CachedStream, chunk_frames: int) -> tuple[list[WriteTokens], np.ndarray, np.ndarray]:
    ego, geo, obj, valid = frames_to_tensors(stream.tokens)
    chunks = []
    for s in range(0, len(stream.tokens), chunk_frames):
        t = frame_writes(ego[s : s + chunk_frames], geo[s : s + chunk_frames], obj[s : s + chunk_frames], valid[s : s + chunk_frames])
        chunks.append(WriteTokens(t.xy, t.target, t.mask.bool(), t.lr_in, t.kind))  # a bool mask: a third less memory
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
        length, width, h = o.size
        ids.append(CLASS_TO_ID[o.label] - 1)  # label id = class index + 1
        centres.append(np.asarray(o.center, np.float64))
        sizes.append(np.array([c * length + s * width, s * length + c * width, h]))
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


def final_reads(model: LearnedMapModel, chunks, lo, hi, variant: str = "ttt"):
    """The map's reads at the end of a stream, for the memory that ``variant`` names -> (reads, xs, ys)."""
    if variant == "full_context":
        from spatial_ttt_ros.memory.learned_attention import attention_grid

        toks = WriteTokens.cat(chunks)
        return attention_grid(toks, model.rates(toks), toks.target[:, CH_BIRTH_T], lo, hi)
    ablation = VARIANTS[variant]
    w = model.init_weights()
    offset = torch.zeros(2)
    for toks in chunks:
        w, offset, _ = model.write_chunk(w, toks, offset, ablation)
    return model.read_grid(w, lo - 1.0, hi + 1.0)  # the box before alignment, with room for its shift


def stream_loss(model: LearnedMapModel, chunks, lo, hi, truth, variant: str = "ttt"):
    reads, xs, ys = final_reads(model, chunks, lo, hi, variant)
    x, heat, size, offset = model.read_out(reads)
    ids, centres, sizes = truth
    target, cells = _targets(ids, centres, xs, ys, heat.shape[0])
    loss_heat = heatmap_loss(heat, target)
    loss_box = torch.zeros(())
    if cells:
        iy = torch.tensor([c[0] for c in cells])
        ix = torch.tensor([c[1] for c in cells])
        res = float(xs[1] - xs[0])
        pred_size = (x[IN_LOG_SIZE : IN_LOG_SIZE + 3, iy, ix] + size[:, iy, ix]).T  # [K, 3]
        want_off = torch.from_numpy((centres[:, :2] - np.stack([xs[ix.numpy()], ys[iy.numpy()]], -1)) / res).float()
        held = x[IN_MASS, iy, ix] > 0.05
        if bool(held.any()):
            loss_box = (pred_size - torch.from_numpy(np.log(sizes)).float()).abs()[held].mean()
            loss_box = loss_box + (offset[:, iy, ix].T - want_off).abs()[held].mean()
    return loss_heat + loss_box, float(loss_heat.detach()), float(loss_box.detach())


def train(a: argparse.Namespace) -> int:
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    torch.set_num_threads(a.threads)
    cache = Path(a.cache)
    paths = sorted(p.with_suffix("") for p in cache.glob("*.json"))
    paths = [p for p in paths if json.loads(p.with_suffix(".json").read_text())["seed"] < VAL_SEEDS.start]
    paths = [p for p in paths if json.loads(p.with_suffix(".json").read_text())["n_frames"] <= a.max_frames]
    if not paths:
        raise SystemExit(f"no training streams in {cache}")
    model = LearnedMapModel(LearnedMapConfig(acc_max=a.acc_max))
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
        loss, lh, ls = stream_loss(model, chunks, lo, hi, truth, a.variant)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        rec = {"step": step, "stream": p.name, "loss": float(loss.detach()), "heat": lh, "box": ls, "s": round(time.perf_counter() - t0, 1)}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        if step % 20 == 0 or step == a.steps:
            print(json.dumps(rec), flush=True)
            save(model, out / "model.safetensors", {"steps": step, "variant": a.variant, "command": a.command})
    return 0


def save(model: LearnedMapModel, path: Path, info: dict) -> None:
    from safetensors.torch import save_file

    meta = {"config": json.dumps(model.cfg.to_dict()), "info": json.dumps(info)}
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", default="runs/learned_cache", help="cached token streams (training/learned_data.py)")
    p.add_argument("--out", default="runs/learned", help="output directory (model.safetensors, train_log.jsonl)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-frames", type=int, default=3000, help="train on cached streams up to this length")
    p.add_argument("--variant", choices=tuple(VARIANTS), default="ttt", help="the memory the readout is trained on")
    p.add_argument("--acc-max", type=float, default=ACC_MAX, help=f"cap of the accumulated curvature (default {ACC_MAX:g})")


def run(a: argparse.Namespace) -> int:
    a.command = "spatial-ttt train " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in sorted(vars(a).items()) if k in ("cache", "out", "steps", "lr", "seed", "threads", "max_frames", "variant", "acc_max")
    )
    return train(a)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    configure_parser(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
