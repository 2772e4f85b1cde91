"""``spatial-ttt bench scaling``: state size, peak memory, time and compute versus stream length.

Two parts, both at every ``--frames`` length: the SWA + TTT backbone of ``spatial_ttt_ros/ttt/``
(JSON keys ``methods`` and ``ratios``; not in the answer path), then the memories that answer
questions (JSON key ``memories``). ``--methods`` or ``--memories`` with no names skips a part.

Backbone. For the TTT memory and the two baselines of DESIGN.md at equal width and depth:

    ttt             hybrid SWA + fast-weight layers (+ bounded anchor layers), constant state
    sliding_window  the same network with the TTT branch off (same anchors)
    full_context    every layer attends over every past token (KV cache grows linearly)

each stream of N random frames is fed chunk by chunk (``--frames-per-call``, default
one TTT chunk) like a robot would, and we record

    state_bytes     StreamingState.nbytes() after N frames
    peak_rss_bytes  peak RSS (VmHWM) of a fresh subprocess that ran only this (method, N)
                    (includes the ~0.3-0.5 GB of the Python + torch process itself;
                    ``rss_baseline_bytes`` is the same after model build and warm-up)
    ms_per_frame    process CPU time of the stream / N, one torch thread, after a warm-up
                    on a throwaway state (CPU time, not wall time, because the machine is
                    shared and wall time swings 3x with other jobs; ``wall_ms_per_frame``
                    is reported beside it). Short streams are repeated, median taken.
    flops           counted by torch.utils.flop_counter.FlopCounterMode over the same
                    stream (same calls, same shapes) replayed on the ``meta`` device:
                    on CPU, SDPA runs a fused kernel FlopCounterMode cannot see, on
                    meta it decomposes into counted bmm's; every other op (linear,
                    conv, the fast-weight matmuls) counts identically on both (a test
                    checks). Matmul/conv flops only, as FlopCounterMode counts them.

The default width (d_model 64, 4 heads, 4 layers, 2x2 grid + ego + 3 object slots =
8 tokens per frame) is chosen so that the full-context baseline at 10,000 frames
(80,000 tokens) runs for real on a CPU in a few minutes; nothing is extrapolated.

Answering memories (``--memories``, default ``ttt``, ``object_map``, ``full_context``, built by
``memory.factory.make_memory``), each fed N real frame tokens, one ``observe`` at a time:

    state_bytes           ``state_bytes()`` after N frames
    state_bytes_max_tail  the largest ``state_bytes()`` over the stream's last 16 frames (``ttt``
                          buffers up to 7 frames between its chunk steps, so the value after N
                          frames depends on N mod 8; the tail covers a whole cycle)
    ms_per_frame          process CPU time of ``observe`` / N, one torch thread, CPU time for the
                          reason above (``wall_ms_per_frame`` beside it); ``observe_cpu_ms_p50/
                          p99/max`` per call (``ttt`` does its work every 8th frame)
    inventory_cpu_ms      one ``inventory()`` after the N frames (``inventory_wall_ms`` beside it)
    inventory_objects     objects in that inventory (the memory did real work)

Short streams are repeated (fresh ``reset()``) as above, median taken; each memory first
runs a throwaway warm-up. Tokens: the simulator renders one walk (``--walk-frames``, default
1,000 frames at 10 Hz, ``--walk-rooms`` 2, scene ``--walk-seed``) once and the label front-end
tokenises it as ``bench quality`` does. A longer stream replays it: **the walk repeats**, each
time with every stamp (frame stamp, token time, the ego and object time fields, observation
stamps) shifted forward by the walk's duration, so stamps keep increasing as a robot's would.
Copying the tokens happens outside the timed calls. Detections (``--walk-detections``) are exact
by default, like ``bench node --detector labels``: a replayed exact walk is a robot walking its
rounds again, while a replayed noisy one repeats every false positive at the same place on every
round and restarts the pose drift, which no detector does (on the default walk the ``ttt`` map
then decodes those repeated false positives as objects: 21 at 1,000 frames, 66 at 6,000; 11-14
with exact detections).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from spatial_ttt_ros.bench.results import write_json
from spatial_ttt_ros.memory.methods import METHODS as MEMORY_METHODS

METHODS = ("ttt", "sliding_window", "full_context")
MEMORIES = ("ttt", "object_map", "full_context")
MEMORY_WARMUP_FRAMES = 64
TAIL_FRAMES = 16  # state_bytes is sampled over the last frames: longer than any chunk buffer
ONE_MIB = 1 << 20
TTT_CPU_LIMIT = 3.0  # issue 12: ttt's CPU time per frame at most 3x the object map's


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000, 10000], help="stream lengths")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS,
                        help="backbone variants (none: skip the backbone part)")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--n-layers", type=int, default=4)
    parser.add_argument("--grid", type=int, nargs=2, default=[2, 2], metavar=("H", "W"))
    parser.add_argument("--objects", type=int, default=3, help="object slots per frame")
    parser.add_argument("--window-frames", type=int, default=4)
    parser.add_argument("--chunk-frames", type=int, default=4)
    parser.add_argument("--anchor-every", type=int, default=4)
    parser.add_argument("--n-summary", type=int, default=64)
    parser.add_argument("--frames-per-call", type=int, default=None, help="frames per forward call (default: one chunk)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per measurement")
    parser.add_argument("--no-flops", action="store_true", help="skip the flop count")
    parser.add_argument("--warmup-calls", type=int, default=25, help="untimed calls before timing")
    parser.add_argument("--min-timed-frames", type=int, default=2000,
                        help="repeat short streams until this many frames were timed (median repetition)")
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process (fast, for tests; peak RSS is then process-wide)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memories", nargs="*", default=list(MEMORIES), choices=MEMORY_METHODS,
                        help="answering memories (memory/factory.py; none: skip this part)")
    parser.add_argument("--walk-frames", type=int, default=1000,
                        help="frames of the rendered walk that longer streams replay (capped at the longest --frames)")
    parser.add_argument("--walk-rooms", type=int, default=2)
    parser.add_argument("--walk-seed", type=int, default=8000, help="scene seed of the walk (timed, not scored)")
    parser.add_argument("--walk-detections", default="exact", choices=("exact", "noisy", "sparse"),
                        help="detections the walk is tokenised with (exact, or a perception/noise.py preset)")
    parser.add_argument("--cache", default=None, help="directory that keeps the rendered walk between runs")


def base_config(args) -> dict:
    gh, gw = args.grid
    return dict(
        d_model=args.d_model, n_heads=args.n_heads, n_layers=args.n_layers,
        window_frames=args.window_frames, chunk_frames=args.chunk_frames, anchor_every=args.anchor_every,
        grid_hw=[gh, gw], tokens_per_frame=1 + gh * gw + args.objects, n_summary=args.n_summary,
    )


def method_config(base: dict, method: str) -> dict:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    return {**base, "ttt": method == "ttt", "full_context": method == "full_context"}


def _maxrss_bytes() -> int:
    """Peak RSS of this process. VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a
    worker would report its parent's peak (the CLI has imported torch and rclpy by then)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def _feed(model, pool, frames: int, per_call: int):
    state = None
    done = i = 0
    while done < frames:
        n = min(per_call, frames - done)
        _, state = model(pool[i % len(pool)][:, :n], None, state)
        done += n
        i += 1
    return state


def _call_plan(frames: int, per_call: int) -> list[tuple[int, int]]:
    """(frames in the call, frames seen before it) for every forward call of a stream."""
    plan, done = [], 0
    while done < frames:
        n = min(per_call, frames - done)
        plan.append((n, done))
        done += n
    return plan


def _count_call(model, cfg, n: int, seen: int, cache_len: int | None) -> dict[str, float]:
    """FlopCounterMode over one forward call on the meta device, from a state of the right shapes.

    Returns {"total": flops, "layer<i>": flops of block i}. cache_len: the full-context KV
    cache length to start from (None: the method's fixed-size state).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    state = model.init_state(1, "meta")
    state.frames_seen = seen
    if cache_len is not None:
        for layer in state.layers:
            b, h, _, dh = layer["kv_k"].shape
            layer["kv_k"] = torch.zeros(b, h, cache_len, dh, device="meta")
            layer["kv_v"] = torch.zeros(b, h, cache_len, dh, device="meta")
            layer["kv_valid"] = torch.zeros(b, cache_len, dtype=torch.bool, device="meta")
    x = torch.zeros(1, n, cfg.tokens_per_frame, cfg.d_model, device="meta")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x, None, state)
    out = {"total": float(counter.get_total_flops())}
    for name, ops in counter.get_flop_counts().items():
        parts = name.split(".")
        if len(parts) == 3 and parts[1] == "blocks":
            out[f"layer{parts[2]}"] = float(sum(ops.values()))
    return out


def count_flops(model, cfg, frames: int, per_call: int) -> tuple[float, dict]:
    """Total matmul/conv flops of the stream, counted by FlopCounterMode on the meta device.

    Counting all 2,500 calls of a 10,000-frame stream op by op on meta would take far longer
    than running them, so each distinct call is counted once: for the constant-state methods
    a call's flops depend only on (frames in the call, position in the chunk), since every
    cache has a fixed size; for full context they are affine in the KV-cache length (the
    only growing shape), so each call kind is counted at two cache lengths and checked
    exactly at a third before being summed. ``test_ttt_bench`` checks the result against
    counting every call.
    Returns (total, per-layer totals).
    """
    m = copy.deepcopy(model).to("meta").requires_grad_(False)
    tpf = cfg.tokens_per_frame
    memo: dict = {}
    totals: dict[str, float] = {}
    for n, seen in _call_plan(frames, per_call):
        key = (n, seen % cfg.chunk_frames)
        if cfg.full_context:
            if key not in memo:
                l0, l1, l2 = 0, 1000 * tpf, 3000 * tpf
                c0, c1, c2 = (_count_call(m, cfg, n, key[1], ln) for ln in (l0, l1, l2))
                slope = {k: (c1[k] - c0[k]) / (l1 - l0) for k in c0}
                for k in c0:  # the affine model must be exact, or we refuse to use it
                    if abs(c0[k] + slope[k] * (l2 - l0) - c2[k]) > 1e-6 * max(1.0, c2[k]):
                        raise RuntimeError(f"full-context flops not affine in cache length ({k})")
                memo[key] = (c0, slope)
            c0, slope = memo[key]
            call = {k: c0[k] + slope[k] * seen * tpf for k in c0}
        else:
            if key not in memo:
                memo[key] = _count_call(m, cfg, n, seen, None)
            call = memo[key]
        for k, v in call.items():
            totals[k] = totals.get(k, 0.0) + v
    per_layer = {int(k[5:]): v for k, v in totals.items() if k.startswith("layer")}
    return totals.get("total", 0.0), per_layer


def count_flops_every_call(model, cfg, frames: int, per_call: int) -> float:
    """Reference: FlopCounterMode over the whole stream on meta, every call (slow; for tests)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    m = copy.deepcopy(model).to("meta").requires_grad_(False)
    pool = [torch.zeros(1, per_call, cfg.tokens_per_frame, cfg.d_model, device="meta")]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        _feed(m, pool, frames, per_call)
    return float(counter.get_total_flops())


def measure(cfg_dict: dict, frames: int, per_call: int, threads: int, seed: int, flops: bool = True,
            min_frames: int = 2000, warmup_calls: int = 25) -> dict:
    """One (method, frames) measurement; meant to run alone in a fresh process."""
    import torch

    from spatial_ttt_ros.ttt import BackboneConfig, TTTBackbone

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    cfg = BackboneConfig.from_dict(cfg_dict)
    model = TTTBackbone(cfg).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    pool = [torch.randn(1, per_call, cfg.tokens_per_frame, cfg.d_model, generator=g) for _ in range(8)]
    with torch.inference_mode():
        _feed(model, pool, warmup_calls * per_call, per_call)  # warm-up (allocator, kernels), thrown away
        gc.collect()
        rss_base = _maxrss_bytes()
        # Short streams are repeated (fresh state each time) until ~min_frames frames were
        # timed, and the median repetition is reported: one 100-frame pass lasts a fraction
        # of a second and is at the mercy of other processes on a shared CPU.
        reps = max(1, -(-min_frames // frames))
        times, walls = [], []
        for _ in range(reps):
            state = None
            gc.collect()
            c0, t0 = time.process_time(), time.perf_counter()
            state = _feed(model, pool, frames, per_call)
            times.append(time.process_time() - c0)
            walls.append(time.perf_counter() - t0)
    elapsed = sorted(times)[len(times) // 2]
    wall = sorted(walls)[len(walls) // 2]
    out = {
        "state_bytes": int(state.nbytes()),
        "peak_rss_bytes": _maxrss_bytes(),
        "rss_baseline_bytes": rss_base,
        "ms_per_frame": 1000.0 * elapsed / frames,
        "wall_ms_per_frame": 1000.0 * wall / frames,
        "cpu_seconds": elapsed,
        "repetitions": reps,
    }
    del state
    if flops:
        total, per_layer = count_flops(model, cfg, frames, per_call)
        out["flops"] = total
        anchors = [i for i in range(cfg.n_layers) if cfg.is_anchor(i)]
        if anchors and total > 0:
            out["anchor_flops_fraction"] = sum(per_layer.get(i, 0.0) for i in anchors) / total
    return out


def _run_worker(spec: dict, in_process: bool) -> dict:
    if in_process:
        return measure(**spec)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run(
        [sys.executable, "-m", "spatial_ttt_ros.bench.scaling", "--worker", json.dumps(spec)],
        capture_output=True, text=True, env=env, cwd=root,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scaling worker failed ({spec}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ratios(methods: dict) -> dict:
    """The issue's targets, computed from the table."""
    out: dict = {}
    ttt, full, sw = methods.get("ttt", {}), methods.get("full_context", {}), methods.get("sliding_window", {})
    out["ttt_over_full_context"] = {
        f: {k: ttt[f][k] / full[f][k] for k in ("flops", "state_bytes", "ms_per_frame", "peak_rss_bytes")
            if k in ttt[f] and k in full[f] and full[f][k]}
        for f in ttt if f in full
    }
    out["ttt_over_sliding_window"] = {
        f: {k: ttt[f][k] / sw[f][k] for k in ("flops", "state_bytes", "ms_per_frame") if k in ttt[f] and sw[f].get(k)}
        for f in ttt if f in sw
    }
    targets = {}
    if len(ttt) >= 2:
        lo, hi = min(ttt, key=int), max(ttt, key=int)
        growth = ttt[hi]["state_bytes"] / ttt[lo]["state_bytes"]
        targets[f"ttt_state_{hi}_over_{lo}"] = {"value": growth, "limit": "within 5%", "pass": abs(growth - 1) <= 0.05}
        tg = ttt[hi]["ms_per_frame"] / ttt[lo]["ms_per_frame"]
        targets[f"ttt_ms_per_frame_{hi}_over_{lo}"] = {"value": tg, "limit": "within 30%", "pass": abs(tg - 1) <= 0.30}
    for f, r in out["ttt_over_full_context"].items():
        if "flops" not in r:
            continue
        if int(f) >= 7000:
            targets[f"ttt_flops_over_full_context_{f}"] = {"value": r["flops"], "limit": "<= 0.2", "pass": r["flops"] <= 0.2}
        elif int(f) >= 1000:
            targets[f"ttt_flops_over_full_context_{f}"] = {"value": r["flops"], "limit": "<= 0.6", "pass": r["flops"] <= 0.6}
    if len(full) >= 2:
        lo, hi = min(full, key=int), max(full, key=int)
        per_lo, per_hi = full[lo]["state_bytes"] / int(lo), full[hi]["state_bytes"] / int(hi)
        lin = per_hi / per_lo  # 1.0 = exactly linear in frames
        targets["full_context_state_bytes_per_frame_ratio"] = {"value": lin, "limit": "~1 (linear growth)",
                                                               "pass": 0.8 <= lin <= 1.25}
    out["targets"] = targets
    return out


def format_table(methods: dict) -> str:
    lines = [f"{'method':<15}{'frames':>8}{'state KiB':>12}{'peak RSS MiB':>14}{'ms/frame':>10}{'GFLOP':>12}{'anchor%':>9}"]
    for name, rows in methods.items():
        for f in sorted(rows, key=int):
            r = rows[f]
            fl = f"{r['flops'] / 1e9:12.3f}" if "flops" in r else f"{'-':>12}"
            an = f"{100 * r['anchor_flops_fraction']:8.1f}%" if "anchor_flops_fraction" in r else f"{'-':>9}"
            lines.append(f"{name:<15}{int(f):>8}{r['state_bytes'] / 1024:>12.1f}{r['peak_rss_bytes'] / 2**20:>14.1f}"
                         f"{r['ms_per_frame']:>10.3f}{fl}{an}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the answering memories
def load_walk(seed: int, n_rooms: int, n_frames: int, detections: str, cache=None) -> list:
    """The walk's FrameTokens, rendered (or read from ``cache``) as ``bench quality`` does."""
    from spatial_ttt_ros.training.learned_data import cached_or_rendered

    return cached_or_rendered(cache, seed, n_rooms, n_frames, (detections,))[detections].tokens


def _shifted(tok, dt: float, index: int):
    """A copy of ``tok`` ``dt`` seconds later, at stream position ``index`` (arrays copied too:
    a memory may keep the tokens it was given)."""
    from spatial_ttt_ros.perception.tokens import EGO_FIELDS, OBJ_FIELDS, TIME_SCALE

    ego, objects = tok.ego.copy(), tok.objects.copy()
    ego[EGO_FIELDS["time"]] += dt * TIME_SCALE
    objects[tok.object_valid, OBJ_FIELDS["time"]] += dt * TIME_SCALE  # empty slots stay zero
    obs = [dataclasses.replace(o, stamp=o.stamp + dt, center=o.center.copy(), size=o.size.copy(),
                               frame_index=index, extras=dict(o.extras)) for o in tok.observations]
    return dataclasses.replace(tok, stamp=tok.stamp + dt, time=tok.time + dt, frame_index=index, ego=ego,
                               geometry=tok.geometry.copy(), objects=objects,
                               object_valid=tok.object_valid.copy(), observations=obs)


def replay(walk: list, n: int, period: float) -> Iterator:
    """``n`` frames: the walk, then the walk again ``period`` seconds later, and so on."""
    for i in range(n):
        rep, k = divmod(i, len(walk))
        yield _shifted(walk[k], rep * period, i)


def walk_period(walk: list, rate_hz: float) -> float:
    """Seconds from the walk's first frame to the first frame of its replay (one frame after its last)."""
    return float(walk[-1].stamp - walk[0].stamp) + 1.0 / rate_hz


def _stream_once(memory, walk: list, n: int, period: float) -> dict:
    """Reset, feed n frames timing every ``observe``, then time one ``inventory()``."""
    memory.reset()
    gc.collect()
    cpu, wall, tail = [], [], []
    for i, tok in enumerate(replay(walk, n, period)):
        c0, t0 = time.process_time(), time.perf_counter()
        memory.observe(tok)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
        if i >= n - TAIL_FRAMES:
            tail.append(int(memory.state_bytes()))
    state = int(memory.state_bytes())
    c0, t0 = time.process_time(), time.perf_counter()
    inv = memory.inventory()
    inv_cpu, inv_wall = time.process_time() - c0, time.perf_counter() - t0
    return {"cpu": cpu, "wall": wall, "state": state, "tail": max(tail), "inv_cpu": inv_cpu,
            "inv_wall": inv_wall, "objects": len(inv.objects),
            "room_m2": None if inv.room is None else round(float(inv.room.area_m2), 2)}


def measure_memory(memory, walk: list, n: int, period: float, min_frames: int) -> dict:
    """One (memory, N) row; short streams repeated until ``min_frames`` frames were timed (median)."""
    reps = max(1, -(-min_frames // n))
    runs = [_stream_once(memory, walk, n, period) for _ in range(reps)]
    runs.sort(key=lambda r: sum(r["cpu"]))
    mid = runs[len(runs) // 2]
    per_call = 1000.0 * np.array([c for r in runs for c in r["cpu"]])
    # Deterministic given the tokens: every repetition must agree, or the median would hide it.
    if len({(r["state"], r["tail"], r["objects"]) for r in runs}) != 1:
        raise RuntimeError(f"{memory.name}: repetitions of one {n}-frame stream disagree")
    return {
        "state_bytes": mid["state"],
        "state_bytes_max_tail": mid["tail"],
        "ms_per_frame": 1000.0 * sum(mid["cpu"]) / n,
        "wall_ms_per_frame": 1000.0 * sum(mid["wall"]) / n,
        "observe_cpu_ms_p50": float(np.percentile(per_call, 50)),
        "observe_cpu_ms_p99": float(np.percentile(per_call, 99)),
        "observe_cpu_ms_max": float(per_call.max()),
        "inventory_cpu_ms": 1000.0 * sorted(r["inv_cpu"] for r in runs)[len(runs) // 2],
        "inventory_wall_ms": 1000.0 * sorted(r["inv_wall"] for r in runs)[len(runs) // 2],
        "inventory_objects": mid["objects"],
        "room_area_m2": mid["room_m2"],
        "walk_repeats": -(-n // len(walk)),
        "repetitions": reps,
    }


def memory_ratios(rows: dict) -> dict:
    """ttt over each other memory per N, and the issue's targets."""
    out: dict = {}
    ttt = rows.get("ttt", {})
    for other in ("object_map", "full_context"):
        if other not in rows or not ttt:
            continue
        out[f"ttt_over_{other}"] = {
            f: {k: ttt[f][k] / rows[other][f][k]
                for k in ("ms_per_frame", "wall_ms_per_frame", "inventory_cpu_ms", "state_bytes") if rows[other][f][k]}
            for f in ttt if f in rows[other]
        }
    targets = {}
    if ttt:
        tails = [r["state_bytes_max_tail"] for r in ttt.values()]
        lo, hi = min(ttt, key=int), max(ttt, key=int)
        if len(ttt) >= 2:
            growth = max(tails) / min(tails)
            targets[f"ttt_state_constant_{lo}_to_{hi}"] = {
                "value": growth, "limit": "1 (largest state over the last 16 frames, equal at every length)",
                "pass": growth == 1.0}
        targets["ttt_state_max_bytes"] = {"value": max(tails), "limit": f"<= 1 MiB ({ONE_MIB})",
                                          "pass": max(tails) <= ONE_MIB}
    for f, r in out.get("ttt_over_object_map", {}).items():
        if "ms_per_frame" in r:
            targets[f"ttt_cpu_per_frame_over_object_map_{f}"] = {
                "value": r["ms_per_frame"], "limit": f"<= {TTT_CPU_LIMIT:g}",
                "pass": r["ms_per_frame"] <= TTT_CPU_LIMIT}
    out["targets"] = targets
    return out


def format_memory_table(rows: dict) -> str:
    lines = [f"{'memory':<14}{'frames':>7}{'state KiB':>11}{'tail max KiB':>13}{'cpu ms/fr':>10}{'wall ms/fr':>11}"
             f"{'p99 ms':>8}{'inv cpu ms':>11}{'objects':>8}"]
    for name, per_n in rows.items():
        for f in sorted(per_n, key=int):
            r = per_n[f]
            lines.append(f"{name:<14}{int(f):>7}{r['state_bytes'] / 1024:>11.1f}"
                         f"{r['state_bytes_max_tail'] / 1024:>13.1f}{r['ms_per_frame']:>10.3f}"
                         f"{r['wall_ms_per_frame']:>11.3f}{r['observe_cpu_ms_p99']:>8.2f}"
                         f"{r['inventory_cpu_ms']:>11.1f}{r['inventory_objects']:>8d}")
    return "\n".join(lines)


def run_memories(args, frames: list[int]) -> dict:
    """Measure every ``args.memories`` at every length in ``frames``; returns the JSON section."""
    from spatial_ttt_ros.memory.factory import make_memory
    from spatial_ttt_ros.training.learned_data import RATE_HZ

    if args.walk_frames < 1 or args.walk_rooms < 1:
        raise ValueError("--walk-frames and --walk-rooms must be positive")
    try:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, int(args.threads)))
    except ImportError:  # object_map alone needs no torch
        torch = None
    try:
        walk_n = min(args.walk_frames, max(frames))  # a walk longer than every stream is never replayed
        t0 = time.perf_counter()
        walk = load_walk(args.walk_seed, args.walk_rooms, walk_n, args.walk_detections, args.cache)
        render_s = time.perf_counter() - t0
        period = walk_period(walk, RATE_HZ)
        print(f"  memories: walk of {walk_n} frames ready ({render_s:.0f} s)", file=sys.stderr, flush=True)
        memories = {name: make_memory(name) for name in args.memories}
        for memory in memories.values():
            for tok in replay(walk, MEMORY_WARMUP_FRAMES, period):  # warm-up (allocator, lazy init), thrown away
                memory.observe(tok)
            memory.inventory()
        rows: dict = {name: {} for name in memories}
        # Lengths outside, memories inside: the memories compared at one length are measured
        # minutes apart at most, under the same load from other jobs.
        for n in sorted(frames):
            for name, memory in memories.items():
                r = measure_memory(memory, walk, n, period, args.min_timed_frames)
                memory.reset()  # free a grown state (full context: 0.3 GB at 10,000 frames)
                rows[name][str(n)] = r
                print(f"  {name:<15}{n:>7} frames: {r['ms_per_frame']:.3f} ms/frame, inventory "
                      f"{r['inventory_cpu_ms']:.1f} ms, {r['inventory_objects']} objects, state {r['state_bytes']} B",
                      file=sys.stderr, flush=True)
        del memories
        gc.collect()
    finally:
        if torch is not None:
            torch.set_num_threads(threads)
    return {
        "note": ("each memory (memory/factory.py make_memory) is fed N frame tokens of one rendered walk; "
                 "longer streams replay the walk: it repeats, each time with every stamp shifted forward "
                 "by the walk's duration (walk.period_s), so stamps keep increasing"),
        "walk": {"seed": args.walk_seed, "rooms": args.walk_rooms, "frames": walk_n, "rate_hz": RATE_HZ,
                 "period_s": period, "detections": args.walk_detections, "render_seconds": round(render_s, 1)},
        "threads": args.threads,
        "warmup_frames": MEMORY_WARMUP_FRAMES,
        "min_timed_frames": args.min_timed_frames,
        "ms_per_frame_note": "process CPU time of observe() / N, one torch thread, median repetition",
        "methods": rows,
        "ratios": memory_ratios(rows),
    }


def run(args) -> int:
    if args.worker:
        print(json.dumps(measure(**json.loads(args.worker))))
        return 0
    if any(f < 1 for f in args.frames):
        raise ValueError("--frames must be positive")
    if not args.methods and not args.memories:
        raise ValueError("nothing to measure: --methods and --memories are both empty")
    base = base_config(args)
    per_call = args.frames_per_call or args.chunk_frames
    methods: dict = {}
    t_start = time.time()
    for method in args.methods:
        methods[method] = {}
        for frames in sorted(args.frames):
            spec = dict(cfg_dict=method_config(base, method), frames=frames, per_call=per_call,
                        threads=args.threads, seed=args.seed, flops=not args.no_flops,
                        min_frames=args.min_timed_frames, warmup_calls=args.warmup_calls)
            res = _run_worker(spec, args.in_process)
            methods[method][str(frames)] = res
            print(f"  {method:<15}{frames:>7} frames: {res['ms_per_frame']:.3f} ms/frame, "
                  f"state {res['state_bytes']} B ({time.time() - t_start:.0f} s elapsed)", file=sys.stderr, flush=True)
    result = {
        "config": base,
        "frames_per_call": per_call,
        "threads": args.threads,
        "flops_note": "FlopCounterMode (matmul/conv flops) over the same stream replayed on the meta device",
        "peak_rss_note": "VmHWM of a fresh process per (method, frames), includes the Python+torch baseline",
        "methods": methods,
        "ratios": ratios(methods),
    }
    targets = dict(result["ratios"]["targets"])
    if methods:
        print(format_table(methods))
    if args.memories:
        result["memories"] = run_memories(args, sorted(args.frames))
        print(format_memory_table(result["memories"]["methods"]))
        targets.update(result["memories"]["ratios"]["targets"])
    for name, t in targets.items():
        value = f"{t['value']:d}" if isinstance(t["value"], int) else f"{t['value']:.3f}"  # bytes stay whole
        print(f"{name:<45} {value}  ({t['limit']}) {'PASS' if t['pass'] else 'FAIL'}")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="spatial-ttt bench scaling", description=__doc__.splitlines()[0])
    configure_parser(p)
    sys.exit(run(p.parse_args()))
