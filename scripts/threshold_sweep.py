#!/usr/bin/env python3
"""Choose a learned memory's decoding settings (threshold and the rest) on the validation seeds.

Each validation stream is written once and its final state decoded at every threshold and every
value of the other decoding settings given: ``--birth-radii`` (``learned_readout.BIRTH_RADIUS``:
the cells around a peak whose births date the object), ``--peak-windows`` (``PEAK_WINDOW``: the
window an object's heat must be the largest of), ``--min-shares`` (``MIN_SHARE``: the share of
its class's strongest peak an object's heat must reach) and ``--min-frees`` (``MIN_FREE``: the
free-channel level of a floor cell, for the room). Each setting is scored as ``spatial-ttt bench
quality`` scores it. The rule used for the shipped checkpoints: the setting with the best mean
over the runs.

    .venv/bin/python scripts/threshold_sweep.py --method ttt --checkpoint runs/v3b_ttt/model.safetensors \
        --runs "300:8:exact,noisy,sparse;1000:8:exact,noisy,sparse;5000:3:noisy" --json out.json

``--runs``: ``frames:scenes:detection modes`` separated by ``;``. Validation seeds only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    import torch

    from spatial_ttt_ros.bench import quality as q
    from spatial_ttt_ros.evaluation.metrics import aggregate
    from spatial_ttt_ros.memory.factory import make_memory
    from spatial_ttt_ros.training.learned_data import cached_or_rendered

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", default="ttt")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--thresholds", default="0.1,0.15,0.2,0.25,0.3")
    p.add_argument("--runs", default="300:8:exact,noisy,sparse;1000:8:exact,noisy,sparse;5000:3:noisy")
    p.add_argument("--birth-radii", default=None, help="e.g. 1,2,3 (default: the module's BIRTH_RADIUS only)")
    p.add_argument("--peak-windows", default=None, help="e.g. 3,5,7 (default: the module's PEAK_WINDOW only)")
    p.add_argument("--min-shares", default=None, help="e.g. 0,0.4,0.5 (default: the module's MIN_SHARE only)")
    p.add_argument("--min-frees", default=None, help="e.g. 0.5,0.6 (default: the module's MIN_FREE only)")
    p.add_argument("--cache", default="runs/learned_cache")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from spatial_ttt_ros.memory import learned_readout

    thresholds = [float(t) for t in a.thresholds.split(",")]
    radii = [int(r) for r in a.birth_radii.split(",")] if a.birth_radii else [learned_readout.BIRTH_RADIUS]
    windows = [int(k) for k in a.peak_windows.split(",")] if a.peak_windows else [learned_readout.PEAK_WINDOW]
    shares = [float(x) for x in a.min_shares.split(",")] if a.min_shares else [learned_readout.MIN_SHARE]
    frees = [float(x) for x in a.min_frees.split(",")] if a.min_frees else [learned_readout.MIN_FREE]
    settings = [(t, r, k, m, f) for f in frees for m in shares for k in windows for r in radii for t in thresholds]
    memory = make_memory(a.method, checkpoint=a.checkpoint)
    seeds = q.split_seeds("validation")
    scored: dict[tuple[int, str, float], list] = {}
    for spec in a.runs.split(";"):
        frames, n_scenes, modes = spec.split(":")
        for seed in seeds[: int(n_scenes)]:
            streams = cached_or_rendered(a.cache, seed, q.rooms_for_frames(int(frames)), int(frames), tuple(modes.split(",")))
            questions = q.questions_for(next(iter(streams.values())))
            for mode, stream in streams.items():
                q.run_memory(memory, stream)
                for t, r, k, m, f in settings:  # the same written state, decoded at each setting
                    learned_readout.BIRTH_RADIUS, learned_readout.PEAK_WINDOW = r, k
                    learned_readout.MIN_SHARE, learned_readout.MIN_FREE = m, f
                    memory.threshold = t  # also drops the inventory decoded at the previous setting
                    scored.setdefault((int(frames), mode, t, r, k, m, f), []).append(q.score_inventory(memory.inventory(), questions))
    rows = []
    for (frames, mode, t, r, k, m, f), per_scene in sorted(scored.items()):
        agg = aggregate([x for sc in per_scene for x in sc])
        rows.append({"frames": frames, "detections": mode, "threshold": t, "birth_radius": r, "peak_window": k,
                     "min_share": m, "min_free": f, "overall": round(agg["overall"], 2),
                     "tasks": {n: round(v, 2) for n, v in agg["tasks"].items()}})
        print(f"{frames:>5} {mode:<6} {t:.2f} r{r} w{k} s{m} f{f} {agg['overall']:6.1f}", flush=True)

    def name(t: float, r: int, k: int, m: float, f: float) -> str:
        return (str(t) + (f"/r{r}" if len(radii) > 1 else "") + (f"/w{k}" if len(windows) > 1 else "")
                + (f"/s{m}" if len(shares) > 1 else "") + (f"/f{f}" if len(frees) > 1 else ""))

    def key(x: dict) -> tuple:
        return x["threshold"], x["birth_radius"], x["peak_window"], x["min_share"], x["min_free"]

    means = {name(*st): round(float(np.mean([x["overall"] for x in rows if key(x) == st])), 2) for st in settings}
    best = max(means, key=means.get)
    print("mean over runs: " + ", ".join(f"{k}: {m}" for k, m in means.items()) + f"; best {best}")
    if a.json:
        Path(a.json).write_text(json.dumps({"method": a.method, "checkpoint": a.checkpoint, "runs": a.runs,
                                            "rows": rows, "mean": means, "best": float(best) if len(radii) == len(windows) == len(shares) == len(frees) == 1 else best}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
