#!/usr/bin/env python3
"""Choose a learned memory's decoding threshold on the validation seeds.

Each validation stream is written once and its final state decoded at every threshold
(the threshold acts only in decoding), scored as ``spatial-ttt bench quality`` scores it.
The rule used for the shipped checkpoints: the threshold with the best mean over the runs.

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
    p.add_argument("--cache", default="runs/learned_cache")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    thresholds = [float(t) for t in a.thresholds.split(",")]
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
                for t in thresholds:  # the same written state, decoded at each threshold
                    memory.threshold = t
                    scored.setdefault((int(frames), mode, t), []).append(q.score_inventory(memory.inventory(), questions))
    rows = []
    for (frames, mode, t), per_scene in sorted(scored.items()):
        agg = aggregate([x for sc in per_scene for x in sc])
        rows.append({"frames": frames, "detections": mode, "threshold": t, "overall": round(agg["overall"], 2),
                     "tasks": {k: round(v, 2) for k, v in agg["tasks"].items()}})
        print(f"{frames:>5} {mode:<6} {t:.2f} {agg['overall']:6.1f}", flush=True)
    means = {t: round(float(np.mean([r["overall"] for r in rows if r["threshold"] == t])), 2) for t in thresholds}
    best = max(means, key=means.get)
    print("mean over runs: " + ", ".join(f"{t:.2f}: {m}" for t, m in means.items()) + f"; best {best}")
    if a.json:
        Path(a.json).write_text(json.dumps({"method": a.method, "checkpoint": a.checkpoint, "runs": a.runs,
                                            "rows": rows, "mean": {str(t): m for t, m in means.items()}, "best": best}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
