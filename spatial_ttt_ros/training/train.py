"""``spatial-ttt train``: train the spatial memory model end to end on simulated streams.

Data (training/data.py): simulator streams rendered at low resolution at the model's
keyframe rate, turned into tokens by the same front-end as the pipeline and the
benchmarks (label image -> detections -> lifting -> detector noise model (misses,
false positives, class confusion, box/size/depth noise, pose drift) -> tokenizer).
Streams are rendered once and cached as .npz (no pickle). Each training sample is a
random window of a cached stream treated as a fresh episode (origin, time and ground
truth re-based to the window start), so a few rendered streams give many episodes.

Every step runs a batch of windows through the model *including the inner fast-weight
updates* (autograd goes through them: this is what teaches the slow weights, learning
rates and projections to write objects into the fast weights so that the queries can
read them back) and decodes the inventory after 25%, 50% and 100% of the window, so
that the memory must keep what it saw long ago.

Stage ``describe`` (dense description): the readout's queries are assigned ground-truth
objects seen so far (grid readout: the cell containing the object's centre; slot
readout: Hungarian matching within the slot's class); loss = class cross-entropy ("none"
for unassigned queries) + L1 centre + L1 log size + L1 first-seen time; room: L1 on the
seen extent and log area.

Stage ``qa`` (``--stage both``: the last 25% of the steps): the describe loss plus
differentiable surrogates of what the 8 VSI-Bench task types score, computed from the
same decoded queries: per-class soft counts vs. true counts (counting), relative error of
pairwise centre distances (abs/rel distance, direction, route), relative error of the
longest side (size), relative room area error (room size) and a pairwise ranking loss on
first-seen times (appearance order). It does *not* train on question text: questions are
answered by exact geometry over the decoded inventory (reasoning/), so this stage only
sharpens the inventory where the questions are sensitive.

Evaluation of a trained checkpoint: ``spatial-ttt bench quality --checkpoint CKPT``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spatial_ttt_ros.classes import CLASSES
from spatial_ttt_ros.memory.decoder import NONE_CLASS, DecodedSlots
from spatial_ttt_ros.perception.tokens import EGO_FIELDS, OBJ_FIELDS, TIME_SCALE

try:  # Hungarian matching; falls back to greedy matching without scipy
    from scipy.optimize import linear_sum_assignment
except ImportError:  # pragma: no cover
    linear_sum_assignment = None

N_CLASSES = len(CLASSES)


# ----------------------------------------------------------------------------- batches
def sample_window(stream, length: int, rng: np.random.Generator, pos_scale: float) -> dict:
    """A random window of ``length`` frames as a fresh episode (numpy arrays)."""
    n = len(stream)
    a = int(rng.integers(0, n - length + 1))
    b = a + length
    t0 = float(stream.stamps[a])
    dt = (t0 - float(stream.stamps[0])) * TIME_SCALE  # token time is relative to the stream start
    ego = stream.ego[a:b].copy()
    ego[:, EGO_FIELDS["time"]] -= dt
    obj = stream.objects[a:b].copy()
    valid = stream.object_valid[a:b]
    obj[:, :, OBJ_FIELDS["time"]] = np.where(valid[:, :, None], obj[:, :, OBJ_FIELDS["time"]] - dt, 0.0)
    cam = stream.cam_pos[a]
    origin = np.array([cam[0], cam[1], 0.0])
    return {
        "ego": ego,
        "geo": stream.geometry[a:b],
        "obj": obj,
        "valid": valid,
        "origin": origin,
        "stamps": stream.stamps[a:b] - t0,
        "vis": stream.visible[a:b],  # [L, N]
        "cam_room": stream.cam_room[a:b],  # [L]
        "stream": stream,
    }


def targets_at(win: dict, t: int, pos_scale: float) -> dict:
    """Ground truth after the first ``t`` frames of a window (normalised frame)."""
    s = win["stream"]
    vis = win["vis"][:t]
    seen = vis.any(0)  # [N]
    first = vis.argmax(0)  # first visible frame per object
    idx = np.nonzero(seen)[0]
    rooms = np.unique(win["cam_room"][:t])
    rooms = rooms[rooms >= 0]
    if rooms.size:
        lo = s.room_min_xy[rooms].min(0)
        hi = s.room_max_xy[rooms].max(0)
        area = float(s.room_area[rooms].sum())
    else:
        lo = hi = win["origin"][:2]
        area = 1.0
    o = win["origin"]
    return {
        "label": s.gt_label[idx],
        "center": (s.gt_center[idx] - o) / pos_scale,
        "log_size": np.log(np.maximum(s.gt_size[idx], 0.02)),
        "size": s.gt_size[idx],
        "first_seen": win["stamps"][first[idx]] * TIME_SCALE,
        "room": np.concatenate([(lo - o[:2]) / pos_scale, (hi - o[:2]) / pos_scale, [math.log(area)]]),
        "area": area,
    }


def collate(wins: list[dict]) -> dict[str, torch.Tensor]:
    return {
        "ego": torch.from_numpy(np.stack([w["ego"] for w in wins])).float(),
        "geo": torch.from_numpy(np.stack([w["geo"] for w in wins])).float(),
        "obj": torch.from_numpy(np.stack([w["obj"] for w in wins])).float(),
        "valid": torch.from_numpy(np.stack([w["valid"] for w in wins])),
        "origin": torch.from_numpy(np.stack([w["origin"] for w in wins])).float(),
    }


# ----------------------------------------------------------------------------- losses
def match(dec: DecodedSlots, b: int, tgt: dict, slot_classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(slot indices, target indices): Hungarian within each class on centre + class cost."""
    if len(tgt["label"]) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    with torch.no_grad():
        logp = torch.log_softmax(dec.logits[b].float(), -1).cpu().numpy()  # [S, C+1]
        cen = dec.center[b].float().cpu().numpy()  # [S, 3]
        fs = dec.first_seen[b].float().cpu().numpy()
    rows, cols = [], []
    for c in np.unique(tgt["label"]):
        ti = np.nonzero(tgt["label"] == c)[0]
        si = np.nonzero(slot_classes == c)[0]
        if si.size == 0:
            continue
        cost = (
            np.abs(cen[si, None, :] - tgt["center"][None, ti, :]).sum(-1)
            - 0.2 * logp[si, c][:, None]
            + 0.5 * np.abs(fs[si, None] - tgt["first_seen"][None, ti])
        )  # [S_c, N_c]
        if linear_sum_assignment is not None:
            r, k = linear_sum_assignment(cost)
        else:  # greedy
            r, k, used = [], [], set()
            for i in range(cost.shape[0]):
                order = [j for j in np.argsort(cost[i]) if j not in used]
                if order:
                    r.append(i), k.append(order[0]), used.add(order[0])
            r, k = np.array(r, dtype=np.int64), np.array(k, dtype=np.int64)
        rows.append(si[r])
        cols.append(ti[k])
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(cols)


def match_grid(dec: DecodedSlots, b: int, tgt: dict) -> tuple[np.ndarray, np.ndarray]:
    """(cell indices, target indices): each object goes to the cell containing its centre
    (the object nearest the cell centre wins when several share a cell)."""
    if len(tgt["label"]) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cells = dec.cells[b].detach().cpu().numpy()  # [S, 2]
    half = 0.5 * float(dec.cell_size[b])
    d = np.abs(cells[None, :, :] - tgt["center"][:, None, :2]).max(-1)  # [N, S] Chebyshev
    best = d.argmin(1)
    inside = d[np.arange(len(best)), best] <= half + 1e-6
    owner: dict[int, int] = {}
    for n in np.nonzero(inside)[0]:
        c = int(best[n])
        if c not in owner or d[n, c] < d[owner[c], c]:
            owner[c] = int(n)
    si = np.array(sorted(owner), dtype=np.int64)
    return si, np.array([owner[c] for c in si], dtype=np.int64)


def describe_loss(dec: DecodedSlots, tgts: list[dict], slot_classes: np.ndarray, qa: bool = False) -> tuple[torch.Tensor, dict]:
    """Dense-description loss (+ question surrogates with ``qa``) over the batch."""
    B, S, _ = dec.logits.shape
    cls_target = torch.full((B, S), NONE_CLASS, dtype=torch.long)
    l_center, l_size, l_seen, n_match = 0.0, 0.0, 0.0, 0
    l_count, l_dist, l_long, l_order = 0.0, 0.0, 0.0, 0.0
    l_room = 0.0
    probs = torch.softmax(dec.logits.float(), -1)
    for b, tgt in enumerate(tgts):
        si, ti = match(dec, b, tgt, slot_classes) if dec.cells is None else match_grid(dec, b, tgt)
        room_t = torch.tensor(tgt["room"], dtype=torch.float32)
        l_room = l_room + F.smooth_l1_loss(dec.room[b], room_t, beta=0.1)
        if qa:  # room area relative error
            l_room = l_room + (dec.room[b, 4].exp() - tgt["area"]).abs() / tgt["area"]
            # counting: expected count per class from all slots vs. truth
            soft = probs[b, :, :N_CLASSES].sum(0)  # [C]
            true = torch.from_numpy(np.bincount(tgt["label"], minlength=N_CLASSES)).float()
            l_count = l_count + ((soft - true).abs() / true.clamp(min=1.0)).mean()
        if si.size == 0:
            continue
        si_t, ti_t = torch.from_numpy(si), torch.from_numpy(ti)
        cls_target[b, si_t] = torch.from_numpy(tgt["label"][ti]).long()
        c_t = torch.from_numpy(tgt["center"][ti]).float()
        s_t = torch.from_numpy(tgt["log_size"][ti]).float()
        f_t = torch.from_numpy(tgt["first_seen"][ti]).float()
        pc, ps, pf = dec.center[b, si_t], dec.log_size[b, si_t], dec.first_seen[b, si_t]
        l_center = l_center + F.smooth_l1_loss(pc, c_t, beta=0.05, reduction="sum")
        l_size = l_size + F.smooth_l1_loss(ps, s_t, beta=0.05, reduction="sum")
        l_seen = l_seen + F.smooth_l1_loss(pf, f_t, beta=0.01, reduction="sum")
        n_match += si.size
        if qa and si.size >= 2:
            d_p = torch.cdist(pc, pc)  # [n, n] normalised units
            d_t = torch.cdist(c_t, c_t)
            mask = ~torch.eye(si.size, dtype=torch.bool)
            l_dist = l_dist + ((d_p - d_t).abs() / d_t.clamp(min=0.1))[mask].mean()
            longest_t = s_t.exp().max(-1).values
            l_long = l_long + ((ps.exp().max(-1).values - longest_t).abs() / longest_t).mean()
            # appearance order: hinge on pairwise first-seen differences
            sign = torch.sign(f_t[:, None] - f_t[None, :])
            l_order = l_order + F.relu(0.01 - sign * (pf[:, None] - pf[None, :]))[sign != 0].mean() if (sign != 0).any() else l_order
    # class CE; "none" targets down-weighted (most slots are empty)
    w = torch.ones(N_CLASSES + 1)
    w[NONE_CLASS] = 0.5 if dec.cells is None else 0.1  # grid: most cells are empty
    l_cls = F.cross_entropy(dec.logits.float().reshape(B * S, -1), cls_target.reshape(-1), weight=w)
    nm = max(n_match, 1)
    parts = {
        "cls": l_cls,
        "center": l_center / nm * 5.0,
        "size": l_size / nm,
        "seen": l_seen / nm * 5.0,
        "room": l_room / B,
    }
    if qa:
        parts.update(count=l_count / B, dist=l_dist / B, longest=l_long / B, order=l_order / B)
    total = sum(parts.values())
    return total, {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in parts.items()}


# ----------------------------------------------------------------------------- CLI
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory (checkpoint, log, config)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model init, window sampling and noise")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps")
    parser.add_argument("--stage", choices=("describe", "qa", "both"), default="both",
                        help="describe: dense description; qa: question surrogates; both: describe then qa (last 25%%)")
    parser.add_argument("--frames", type=int, default=400, help="frames per rendered training stream")
    parser.add_argument("--rooms", type=int, default=2, help="max rooms per training scene (1..rooms, cycled)")
    parser.add_argument("--streams", type=int, default=24, help="number of rendered training streams")
    parser.add_argument("--noise", choices=("exact", "noisy", "mixed"), default="noisy",
                        help="detector noise of the training streams (mixed: alternate)")
    parser.add_argument("--window", default="64,128",
                        help="frames per training episode; a comma list is sampled per step (longer = fewer per batch)")
    parser.add_argument("--frames-per-step", type=int, default=128,
                        help="frames per optimizer step: batch = max(1, frames_per_step // window)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--log", default=None, help="log file (default OUT/train.log)")
    parser.add_argument("--init", default=None, help="checkpoint to start from (e.g. stage-1 weights)")
    parser.add_argument("--init-skip", default="",
                        help="comma list of tensor-name prefixes --init-partial leaves at their fresh init")
    parser.add_argument("--init-partial", default=None,
                        help="checkpoint whose tensors of matching name and shape initialise a model of the --config "
                             "architecture (e.g. the old backbone for a model with the spatial map)")
    parser.add_argument("--cache", default=None, help="stream cache dir (default OUT/../stream_cache)")
    parser.add_argument("--width", type=int, default=None, help="render width (default data.RENDER_WIDTH)")
    parser.add_argument("--height", type=int, default=None, help="render height (default data.RENDER_HEIGHT)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--time-limit", type=float, default=0.0, help="stop after this many minutes (0: none)")
    parser.add_argument("--stop-after", type=int, default=0,
                        help="stop after this many steps without changing the --steps schedule (0: run all); "
                             "reproduces a run that was cut by --time-limit")
    parser.add_argument("--config", default=None, help="JSON of MemoryConfig overrides")


def run(args: argparse.Namespace) -> int:
    from spatial_ttt_ros.memory.checkpoint import load_model, save_model
    from spatial_ttt_ros.training.data import get_stream, training_recipe
    from spatial_ttt_ros.memory.model import MemoryConfig, SpatialMemoryModel

    torch.set_num_threads(max(1, int(args.threads)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = Path(args.log) if args.log else out / "train.log"
    cache = Path(args.cache) if args.cache else out.parent / "stream_cache"
    logf = open(log_path, "a", buffering=1)

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")

    t_start = time.time()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    log(f"train: {' '.join(sys.argv)}")
    log(f"args: {json.dumps({k: v for k, v in vars(args).items() if not k.startswith('_')}, sort_keys=True)}")

    if args.init:
        model = load_model(args.init)
        cfg = model.cfg
    else:
        cfg = MemoryConfig(**json.loads(args.config)) if args.config else MemoryConfig()
        model = SpatialMemoryModel(cfg)
        if getattr(args, "init_partial", None):
            from spatial_ttt_ros.memory.checkpoint import read_checkpoint

            _, tensors, _ = read_checkpoint(args.init_partial)
            own = model.state_dict()
            skip = tuple(p for p in str(getattr(args, "init_skip", "") or "").split(",") if p)
            use = {k: v for k, v in tensors.items()
                   if k in own and tuple(v.shape) == tuple(own[k].shape) and not (skip and k.startswith(skip))}
            model.load_state_dict(use, strict=False)
            log(f"init-partial: {len(use)}/{len(own)} tensors from {args.init_partial}")
    model.train()
    slot_classes = model.decoder.slot_classes.cpu().numpy() if cfg.readout == "slots" else None

    recipe = training_recipe(args.streams, args.rooms, args.frames, args.noise)
    for r in recipe:
        r.update(grid=tuple(cfg.grid), max_objects=cfg.max_objects)
        if cfg.keyframe_hz > 0:  # streams at the rate the memory writes frames
            r.update(rate_hz=cfg.keyframe_hz)
        if getattr(args, "width", None):
            r.update(width=args.width, height=args.height)
    streams = []
    for i, r in enumerate(recipe):
        t = time.time()
        streams.append(get_stream(cache_dir=cache, **r))
        log(f"stream {i + 1}/{len(recipe)} {r} ready in {time.time() - t:.1f}s "
            f"({len(streams[-1].gt_label)} objects)")
    log(f"data ready in {time.time() - t_start:.0f}s")

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warmup = min(100, max(1, args.steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, args.steps))))
    )
    qa_from = {"describe": args.steps + 1, "qa": 0, "both": int(args.steps * 0.75)}[args.stage]
    windows = [int(w) for w in str(args.window).split(",")]
    ema: dict[str, float] = {}
    t_train = time.time()
    info = {}

    def save_checkpoint(step: int) -> dict:
        """Write the model with what made it (command, seed, recipe, losses); return that info."""
        info = {
            "command": "spatial-ttt train " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "",
            "seed": args.seed,
            "steps_done": step + 1,
            "stage": args.stage,
            "recipe": recipe,
            "window": args.window,
            "frames_per_step": args.frames_per_step,
            "train_seconds": round(time.time() - t_train, 1),
            "final_loss_ema": {k: round(v, 4) for k, v in ema.items()},
        }
        save_model(out / "model.safetensors", model, info)
        return info

    for step in range(args.steps):
        qa = step >= qa_from
        L = windows[int(rng.integers(len(windows)))]
        reads = sorted({max(1, L // 4), max(1, L // 2), L})
        n_batch = max(1, args.frames_per_step // L)
        wins = [
            sample_window(streams[int(rng.integers(len(streams)))], L, rng, cfg.pos_scale) for _ in range(n_batch)
        ]
        batch = collate(wins)
        outs = model.forward_stream(batch["ego"], batch["geo"], batch["obj"], batch["valid"], batch["origin"], reads)
        loss = 0.0
        parts_sum: dict[str, float] = {}
        for t, dec in zip(reads, outs):
            tg = [targets_at(w, t, cfg.pos_scale) for w in wins]
            l, parts = describe_loss(dec, tg, slot_classes, qa=qa)
            loss = loss + l / len(reads)
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v / len(reads)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        lv = float(loss)
        for k, v in {"loss": lv, **parts_sum}.items():
            ema[k] = v if k not in ema else 0.98 * ema[k] + 0.02 * v
        if step % 10 == 0 or step == args.steps - 1:
            log(
                f"step {step} L {L} {'qa' if qa else 'describe'} loss {lv:.4f} ema {ema['loss']:.4f} "
                + " ".join(f"{k} {v:.3f}" for k, v in parts_sum.items())
                + f" gnorm {float(gn):.2f} lr {sched.get_last_lr()[0]:.2e} t {time.time() - t_train:.0f}s"
            )
        if not math.isfinite(lv):
            log("non-finite loss: stopping")
            return 1
        if (step + 1) % 200 == 0 or step == args.steps - 1:
            info = save_checkpoint(step)
        cut = bool(args.time_limit and time.time() - t_train > args.time_limit * 60)
        cut = cut or bool(getattr(args, "stop_after", 0) and step + 1 >= args.stop_after)
        if cut:
            log(f"stopping after {step + 1} steps (time limit / --stop-after)")
            info = save_checkpoint(step)
            break
    log(f"done: {json.dumps(info)} wall {time.time() - t_start:.0f}s")
    (out / "train_info.json").write_text(json.dumps(info, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m spatial_ttt_ros.training.train")
    configure_parser(parser)
    return run(parser.parse_args(argv))
