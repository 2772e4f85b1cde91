"""Turn an ``EvalResult`` into the files a team decides from.

DIR/report.json  scores (overall, per task), every question with its answer and the
                 positions used, throughput, latency per stage (p50/p95), state bytes
                 over frames, config, git commit, model checksum, dropped frames,
                 bad question records
DIR/report.md    the same for people: summary, per-task and per-question tables
DIR/scores_by_task.png, DIR/per_frame.png (state bytes and ms per frame against
                 frames seen), DIR/latency_hist.png
DIR/timing.csv   frame index, stamp, ms per stage, state bytes
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from spatial_ttt_ros.evaluation.metrics import aggregate, find_duplicates, is_abstention, task_of
from spatial_ttt_ros.evaluation.replay import EvalResult, git_commit

PLOTS = ("scores_by_task.png", "per_frame.png", "latency_hist.png")


def _pct(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"n": 0, "p50": None, "p95": None, "mean": None, "max": None}
    return {
        "n": int(a.size),
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "mean": round(float(a.mean()), 3),
        "max": round(float(a.max()), 3),
    }


def _finite(v):
    """JSON has no NaN: non-finite numbers become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def stage_names(result: EvalResult) -> list[str]:
    names: list[str] = []
    for f in result.frames:
        for k in f.ms:
            if k not in names:
                names.append(k)
    return names


def build_report(result: EvalResult) -> dict:
    scored = [(q.record, q.score) for q in result.questions]
    agg = aggregate(scored)
    repeats = find_duplicates(q.record for q in result.questions)
    abstentions: dict[str, int] = {}
    questions = []
    for i, q in enumerate(result.questions):
        r = q.record
        a = q.answer or {}
        abstained = is_abstention(r, q.prediction)
        if abstained:
            abstentions[task_of(r)] = abstentions.get(task_of(r), 0) + 1
        questions.append(
            {
                "id": r.get("id"),
                "type": r.get("question_type"),
                "question": r.get("question"),
                "options": r.get("options") or [],
                "ground_truth": r.get("ground_truth"),
                "prediction": _finite(q.prediction),
                "answer": a.get("text", ""),
                "value": a.get("value"),
                "unit": a.get("unit", ""),
                "option": a.get("option", ""),
                "confidence": a.get("confidence"),
                "score": round(float(q.score), 4),
                "positions": a.get("positions", []),
                "time": r.get("time"),
                "asked_at": q.asked_at,
                "frames_seen": q.frames_seen,
                "latency_ms": round(q.latency_ms, 3),
                "error": q.error,
                "abstained": abstained,  # no option / no number: scored 0
                # a repeat of an earlier question (same objects in any order): not scored again
                "duplicate_of": result.questions[repeats[i]].record.get("id") if i in repeats else None,
            }
        )
    latency = {s: _pct([f.ms[s] for f in result.frames if s in f.ms]) for s in stage_names(result)}
    latency.update(result.stage_latency)  # live: the node's own per-stage summaries
    latency["ask"] = _pct([q.latency_ms for q in result.questions])
    n = len(result.frames) if result.mode == "offline" else result.frames_published - result.dropped_frames
    samples = result.state_samples or [(i + 1, f.state_bytes) for i, f in enumerate(result.frames)]
    sb = [b for _, b in samples]
    bag = result.bag
    return {
        "overall": agg["overall"],
        "tasks": agg["tasks"],
        "levels": agg.get("levels", {}),
        "counts": agg.get("counts", {}),
        "abstentions": abstentions,  # per task: questions the memory could not answer (scored 0)
        "duplicates": agg.get("duplicates", {}),  # per task: repeated questions, scored once
        "n_questions": len(questions),
        "n_answered": sum(1 for q in result.questions if not q.error),
        "questions": questions,
        "mode": result.mode,
        "method": result.config.get("method"),
        "frames_processed": n,
        "frames_published": result.frames_published,
        "dropped_frames": int(result.dropped_frames),
        "drops": dict(result.drops),
        # frames per second of model time (offline) or of playback wall time (live)
        "throughput_fps": round(n / result.process_s, 3) if result.process_s > 0 else None,
        "wall_s": round(result.wall_s, 3),
        "latency": latency,
        "state_bytes": {
            "frames_seen": [k for k, _ in samples],
            "bytes": sb,
            "max": max(sb) if sb else 0,
            "last": sb[-1] if sb else 0,
        },
        "config": result.config,
        "git_commit": git_commit(),
        "checkpoint": result.checkpoint,
        "model_checksum": result.model_checksum,
        "bag": {
            "path": str(bag.path),
            "color_topic": bag.color_topic,
            "pose_source": bag.pose_source,
            "labels": bag.has_labels,
            "colour_images": bag.n_color,
            "frames": bag.n_frames,
            "skipped": bag.skipped,
            "duration_s": round(bag.end_stamp - bag.start_stamp, 3),
            "rate_hz": round(bag.rate_hz, 3),
        },
        "errors": list(result.record_errors),
        "inventory": result.inventory,
        "notes": list(result.notes),
        "warnings": list(result.warnings),
        "inputs": list(result.inputs),  # which topic each input came from, what was missing
        "detections": result.detections,
        "label_ids_seen": list(result.label_ids_seen),
    }


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(rep: dict) -> str:
    lines = [f"# Evaluation: {rep['method']} ({rep['mode']})", ""]
    for w in rep.get("warnings", []):
        lines += [f"> **Warning:** {w}", ""]
    if rep.get("inputs"):
        lines += ["Inputs read from the bag:", ""] + [f"- {_cell(i)}" for i in rep["inputs"]] + [""]
    lat = rep["latency"]
    proc = lat.get("process") or lat.get("node queue+process") or {}
    summary = [
        ("overall score (%)", f"{rep['overall']:.1f}"),
        ("questions (answered / total)", f"{rep['n_answered']} / {rep['n_questions']}"),
        ("abstentions (scored 0)", str(sum(rep["abstentions"].values()))),
        ("repeated questions (scored once)", str(sum(rep["duplicates"].values()))),
        ("detections (front-end, all frames)", _fmt(rep.get("detections"))),
        ("bad question records skipped", str(len(rep["errors"]))),
        ("bag", f"`{rep['bag']['path']}` ({rep['bag']['frames']} frames, pose from {rep['bag']['pose_source']})"),
        ("frames processed / published", f"{rep['frames_processed']} / {rep['frames_published']}"),
        ("dropped frames", str(rep["dropped_frames"]) + (f" ({', '.join(f'{k}: {v}' for k, v in rep['drops'].items())})" if rep["drops"] else "")),
        ("throughput (frames/s)", _fmt(rep["throughput_fps"])),
        ("ms per frame p50 / p95", f"{_fmt(proc.get('p50'))} / {_fmt(proc.get('p95'))}"),
        ("ms per question p50 / p95", f"{_fmt(lat['ask']['p50'])} / {_fmt(lat['ask']['p95'])}"),
        ("state bytes (last / max)", f"{rep['state_bytes']['last']} / {rep['state_bytes']['max']}"),
        ("wall time (s)", _fmt(rep["wall_s"])),
        ("git commit", f"`{rep['git_commit']}`"),
        ("model checksum (sha256)", f"`{rep['model_checksum']}`" if rep["model_checksum"] else "- (no weights)"),
    ]
    lines += ["| | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in summary] + [""]
    lines += ["## Score per task", "",
              "An abstention (\"I cannot tell\": no option or number given) scores 0; a repeated question "
              "(same objects in any order) is scored once.", "",
              "| task | questions scored | score (%) | abstentions | repeats not scored |",
              "| --- | --- | --- | --- | --- |"]
    for task, s in rep["tasks"].items():
        lines.append(f"| {task} | {rep['counts'].get(task, '')} | {s:.1f} | "
                     f"{rep['abstentions'].get(task, 0)} | {rep['duplicates'].get(task, 0)} |")
    lines += ["", "## Latency per stage (ms)", "", "| stage | p50 | p95 | mean | max |", "| --- | --- | --- | --- | --- |"]
    for stage, s in lat.items():
        lines.append(
            f"| {stage} | {_fmt(s.get('p50'))} | {_fmt(s.get('p95'))} | {_fmt(s.get('mean'))} | {_fmt(s.get('max'))} |"
        )
    if rep["mode"] == "live":
        lines += ["", "Live: stage latencies (all but ask and publish) are the node's own, from /diagnostics; "
                  "ask is the service round trip."]
    lines += ["", "## Questions", "",
              "| id | type | asked at (s) | question | ground truth | prediction | score | answer |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for q in rep["questions"]:
        ans = q["answer"] if not q["error"] else f"error: {q['error']}"
        if q["abstained"]:
            ans = f"(abstained) {ans}"
        if q["duplicate_of"] is not None:
            ans = f"(repeat of {q['duplicate_of']}, not scored) {ans}"
        lines.append(
            f"| {_cell(q['id'])} | {q['type']} | {q['asked_at']:.1f} | {_cell(q['question'])} | "
            f"{_cell(q['ground_truth'])} | {_cell(_fmt(q['prediction']))} | {q['score']:.2f} | {_cell(ans)} |"
        )
    if rep["errors"]:
        lines += ["", "## Question records skipped", ""] + [f"- {_cell(e)}" for e in rep["errors"]]
    if rep["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in rep["notes"]]
    lines += ["", "Plots: " + ", ".join(f"[{p}]({p})" for p in PLOTS) + "; per-frame timing: [timing.csv](timing.csv)", ""]
    return "\n".join(lines)


def write_plots(rep: dict, result: EvalResult, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(7, 3.6))
    tasks = list(rep["tasks"])
    ax.barh(tasks[::-1], [rep["tasks"][t] for t in tasks][::-1], color="#4477aa")
    ax.axvline(rep["overall"], color="k", ls="--", lw=1, label=f"overall {rep['overall']:.1f}")
    ax.set_xlim(0, 100)
    ax.set_xlabel("score (%)")
    ax.set_title(f"score per task: {rep['method']} ({rep['mode']})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    paths.append(out / PLOTS[0])
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    x = np.arange(1, len(result.frames) + 1)
    samples = rep["state_bytes"]
    a1.plot(samples["frames_seen"], [b / 1024 for b in samples["bytes"]], color="#228833", marker="." if result.mode == "live" else None)
    a1.set_ylabel("state (KiB)")
    a1.set_ylim(bottom=0)
    a1.set_title("memory state and time per frame against frames seen")
    key = next((k for k in ("process", "publish") if any(k in f.ms for f in result.frames)), None)
    if key:
        a2.plot(x, [f.ms.get(key, np.nan) for f in result.frames], lw=0.8, color="#aa3377")
    a2.set_ylabel(f"ms per frame ({key})")
    a2.set_xlabel("frames seen" if result.mode == "offline" else "frames seen (top) / published (bottom)")
    a2.set_ylim(bottom=0)
    fig.tight_layout()
    paths.append(out / PLOTS[1])
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for stage in stage_names(result):
        v = [f.ms[stage] for f in result.frames if stage in f.ms]
        if v and stage != "read":
            ax.hist(v, bins=40, alpha=0.6, label=stage)
    asks = [q.latency_ms for q in result.questions]
    if asks:
        ax.hist(asks, bins=20, alpha=0.6, label="ask")
    ax.set_xlabel("ms")
    ax.set_ylabel("count")
    ax.set_title("latency")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    paths.append(out / PLOTS[2])
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write_timing_csv(result: EvalResult, path: Path) -> None:
    stages = stage_names(result)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame_index", "stamp"] + [f"{s}_ms" for s in stages] + ["state_bytes"])
        for fr in result.frames:
            w.writerow(
                [fr.index, f"{fr.stamp:.6f}"]
                + [("" if s not in fr.ms else f"{fr.ms[s]:.3f}") for s in stages]
                + [fr.state_bytes]
            )


def write_report(result: EvalResult, out: str | Path) -> dict:
    """Write every report file into ``out``; returns the report dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rep = build_report(result)
    (out / "report.json").write_text(json.dumps(rep, indent=1, default=_json_default) + "\n")
    (out / "report.md").write_text(render_markdown(rep))
    write_timing_csv(result, out / "timing.csv")
    write_plots(rep, result, out)
    return rep


def _json_default(o):
    if isinstance(o, np.generic):
        return _finite(o.item())
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")
