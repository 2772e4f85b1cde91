"""``spatial-ttt bench scaling``: state size, peak memory, time and compute versus stream length.

For the TTT memory and the two baselines of DESIGN.md at equal width and depth:

    ttt             hybrid SWA + fast-weight layers (+ bounded anchor layers), constant state
    sliding_window  the same network with the TTT branch off (same anchors)
    full_context    every layer attends over every past token (KV cache grows linearly)

each stream of N random frames is fed chunk by chunk (``--frames-per-call``, default
one TTT chunk) like a robot would, and we record

    state_bytes     StreamingState.nbytes() after N frames
    peak_rss_bytes  ru_maxrss of a fresh subprocess that ran only this (method, N)
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
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from spatial_ttt_ros.bench.results import write_json

METHODS = ("ttt", "sliding_window", "full_context")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000, 10000], help="stream lengths")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
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


def run(args) -> int:
    if args.worker:
        print(json.dumps(measure(**json.loads(args.worker))))
        return 0
    if any(f < 1 for f in args.frames):
        raise ValueError("--frames must be positive")
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
        "peak_rss_note": "ru_maxrss of a fresh process per (method, frames), includes the Python+torch baseline",
        "methods": methods,
        "ratios": ratios(methods),
    }
    print(format_table(methods))
    for name, t in result["ratios"]["targets"].items():
        print(f"{name:<45} {t['value']:.3f}  ({t['limit']}) {'PASS' if t['pass'] else 'FAIL'}")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="spatial-ttt bench scaling", description=__doc__.splitlines()[0])
    configure_parser(p)
    sys.exit(run(p.parse_args()))
