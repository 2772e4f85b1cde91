"""Live replay: the node in its own process, the bag played onto its topics, questions
asked through ``~/ask``.

1. Start ``python -m spatial_ttt_ros.ros.node --ros-args --params-file <tmp yaml>
   -r __ns:=/spatial_ttt_eval`` in a private ROS domain on localhost (parallel runs do
   not hear each other) with the evaluation's method, detector and pose source.
2. Play the bag's raw CDR messages (colour, depth, camera_info, labels, pose or odom)
   onto the node's input topics in log-time order, paced by the log times divided by
   ``rate_scale``, with the node's input QoS (sensor data: best effort).
3. At each question's stream time (and at the end) pause playback, wait until the node
   has accounted for every frame published so far (its /diagnostics counters: frames
   in, processed, dropped from the queue, dropped by the synchroniser), then ask.
   Pausing makes the answers comparable with the offline replay's: they differ only
   where frames were dropped, and the report counts those.
4. Stop the node with SIGINT (as Ctrl-C) and check it exits cleanly.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from spatial_ttt_ros import topics as T
from spatial_ttt_ros.evaluation.bag_reader import BagReader, header_stamp
from spatial_ttt_ros.evaluation.replay import (
    EvalConfig,
    EvalResult,
    FrameTiming,
    QuestionResult,
    _progress,
    resolve_checkpoint,
    schedule,
    score,
    sha256_file,
)
from spatial_ttt_ros.vlm.qa_backend import route

NAMESPACE = "/spatial_ttt_eval"
NODE_NAME = "spatial_ttt"
START_TIMEOUT_S = 180.0  # loading torch and the model on a busy 2-core CPU
SETTLE_TIMEOUT_S = 5.0  # no progress for this long: the rest was lost in transport
ASK_TIMEOUT_S = 60.0
DIAG_PERIOD_S = 0.2
# problems that end a frame after the synchroniser released it (it never reaches the memory)
REJECT_KINDS = ("no_camera_info", "size_mismatch", "unsupported_encoding", "out_of_order", "time_jump",
                "bad_frame", "worker_error")
# problems of frames the synchroniser dropped (never offered to the worker)
SYNC_KINDS = ("no_pose", "no_color", "no_labels", "no_depth")


class _Diagnostics:
    """The latest /diagnostics values of our node, plus (frames in memory, state bytes) samples."""

    def __init__(self, status_name: str) -> None:
        self.status_name = status_name
        self.values: dict[str, str] = {}
        self.level = None
        self.message = ""
        self.count = 0
        self.samples: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def on_msg(self, msg) -> None:
        for st in msg.status:
            if st.name != self.status_name:
                continue
            vals = {kv.key: kv.value for kv in st.values}
            with self.lock:
                self.values, self.level, self.message = vals, st.level, st.message
                self.count += 1
                k, b = _int(vals.get("frames in memory")), _int(vals.get("state bytes"))
                if k > 0 and (not self.samples or self.samples[-1][0] != k):
                    self.samples.append((k, b))

    def snapshot(self) -> tuple[int, dict[str, str]]:
        with self.lock:
            return self.count, dict(self.values)


def _int(v) -> int:
    try:
        return int(str(v).split("/")[0])
    except (TypeError, ValueError):
        return 0


def counters(vals: dict[str, str]) -> dict[str, int]:
    problems = {k[len("problem "):]: _int(v) for k, v in vals.items() if k.startswith("problem ")}
    return {
        "frames_in": _int(vals.get("frames in")),
        "processed": _int(vals.get("frames processed")),
        "in_memory": _int(vals.get("frames in memory")),
        "queue_dropped": _int(vals.get("dropped (queue full)")),
        "discarded": _int(vals.get("discarded (reset)")),
        "queue_depth": _int(vals.get("queue depth")),
        "rejected": sum(problems.get(k, 0) for k in REJECT_KINDS),
        "sync_dropped": sum(problems.get(k, 0) for k in SYNC_KINDS),
        "state_bytes": _int(vals.get("state bytes")),
        "detections": _int(vals.get("detections")),  # the front-end's 2D detections so far
        **{f"problem {k}": v for k, v in problems.items()},
    }


def settled(c: dict[str, int], published: int) -> bool:
    """Every frame published so far has reached the memory or been counted as dropped."""
    offered_all = c["frames_in"] + c["sync_dropped"] >= published
    done = c["processed"] + c["queue_dropped"] + c["discarded"] + c["rejected"] >= c["frames_in"]
    return offered_all and done and c["queue_depth"] == 0


def node_stage_latency(vals: dict[str, str]) -> dict[str, dict]:
    """'latency memory p50/p95/max [ms]': '12.0/30.1/44.0' -> {'memory': {p50, p95, max}}."""
    out = {}
    for k, v in vals.items():
        m = re.fullmatch(r"latency (.+) p50/p95/max \[ms\]", k)
        if m:
            try:
                p50, p95, mx = (float(x) for x in v.split("/"))
            except ValueError:
                continue
            out[f"node {m.group(1)}"] = {"p50": p50, "p95": p95, "max": mx, "mean": None, "n": None}
    return out


def node_params(cfg: EvalConfig, pose_source: str, compressed: bool, memory_dir: str) -> dict:
    p = {
        "autostart": True,
        "method": cfg.method,
        "checkpoint": "" if cfg.checkpoint is None else str(Path(cfg.checkpoint).resolve()),
        "detector": cfg.detector,
        "device": cfg.device,
        "fp16": False,  # the offline replay runs fp32: keep the answers comparable
        "pose_source": pose_source,
        "use_compressed": compressed,
        "memory_dir": memory_dir,
        "description_period_s": 0.0,  # nobody listens; keep the CPU for the memory
        "diagnostics_period_s": DIAG_PERIOD_S,
        "score_threshold": float(cfg.score_threshold),
        "qos_reliability": "reliable" if cfg.qos == "reliable" else "best_effort",
    }
    if cfg.qa_backend != "geometry":  # the node answers with one backend (both are recorded offline only)
        p.update(qa_backend=cfg.qa_backend, vlm_dtype=cfg.vlm_dtype,
                 vlm_keyframe_interval_s=float(cfg.vlm_keyframe_interval_s),
                 vlm_checkpoint="" if cfg.vlm_checkpoint is None else str(Path(cfg.vlm_checkpoint).resolve()))
    if cfg.detector == "labels" and cfg.class_names is not None:
        from spatial_ttt_ros.perception.label_names import LabelTable

        # the node's class_names parameter: id i is class_names[i - 1] ("" = unused id)
        p["class_names"] = LabelTable.load(cfg.class_names).as_node_list()
    if cfg.detector == "onnx":
        from spatial_ttt_ros.pipeline import default_class_names

        names = cfg.class_names or default_class_names(cfg.model_path)
        p["model_path"] = str(Path(cfg.model_path).resolve())
        p["class_names_file"] = "" if names is None else str(Path(names).resolve())
        p["providers"] = ["CPUExecutionProvider"] if cfg.device == "cpu" else ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return p


def _answer_dict(ans) -> dict:
    value = float(ans.value)
    return {
        "task": ans.task_type,
        "text": ans.text,
        "value": value if np.isfinite(value) else None,
        "unit": ans.unit,
        "option": ans.option,
        "choice": ans.choice,
        "confidence": float(ans.confidence),
        "positions": [
            {"label": lab, "position": [round(p.point.x, 4), round(p.point.y, 4), round(p.point.z, 4)]}
            for lab, p in zip(ans.position_labels, ans.positions)
        ],
    }


def _wait_future(future, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.005)
    return future.done()


def run_live(cfg: EvalConfig, records: list[dict], record_errors: list[str] | None = None) -> EvalResult:
    reader = BagReader(cfg.bag, cfg.topics, use_labels=cfg.detector == "labels", max_frames=cfg.max_frames)
    info = reader.info
    kind = info.pose_source.split()[0]
    if kind == "tf":
        raise ValueError(
            f"bag {cfg.bag}: --live needs a pose ({cfg.topics.pose}) or odometry ({cfg.topics.odom}) topic; "
            "the node reads /tf only where tf2_ros is installed (run without --live to use /tf)"
        )
    saved_env = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    try:
        return _run_live(cfg, records, record_errors or [], reader, kind)
    finally:
        for k, v in saved_env.items():  # the private domain was for this run only
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_live(cfg, records, record_errors, reader: BagReader, pose_kind: str) -> EvalResult:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    from spatial_ttt_ros.ros.stream_io import NodeProcess, isolate_ros_domain, service_qos, write_params
    from spatial_ttt_ros.srv import Ask

    tp = cfg.topics
    info = reader.info
    compressed = info.color_topic == tp.color_compressed
    pose_topic = tp.pose if pose_kind == "pose" else tp.odom
    # bag topic -> (node input topic, message class)
    routes = {
        info.color_topic: (T.COLOR_COMPRESSED, CompressedImage) if compressed else (T.COLOR, Image),
        tp.depth: (T.DEPTH, Image),
        tp.camera_info: (T.CAMERA_INFO, CameraInfo),
        pose_topic: (T.POSE, PoseStamped) if pose_kind == "pose" else (T.ODOM, Odometry),
    }
    if cfg.detector == "labels" and info.has_labels:
        routes[tp.labels] = (T.LABELS, Image)

    plan_stamps = [p["stamp"] for p in reader._plan]
    n_plan = len(plan_stamps)
    start = plan_stamps[0]
    when = schedule(records, start, plan_stamps)
    ask_points = sorted(k for k in when if k > 0 and k < n_plan)  # k frames in, then ask

    domain = isolate_ros_domain()
    tmp = Path(tempfile.mkdtemp(prefix="spatial_ttt_eval_"))
    params = write_params(tmp / "params.yaml", node_params(cfg, pose_kind, compressed, str(tmp / "memory")))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node("spatial_ttt_eval_player", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    proc = None
    target = f"{NAMESPACE}/{NODE_NAME}"
    diag = _Diagnostics(f"{target}: spatial memory")
    results: list[QuestionResult] = []
    timings: list[FrameTiming] = []
    notes: list[str] = []
    try:
        reliability = ReliabilityPolicy.RELIABLE if cfg.qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=reliability,
                         durability=DurabilityPolicy.VOLATILE)  # the node's input QoS (sensor data by default)
        # The node's inputs are relative names, so they live under its namespace.
        pubs = {src: node.create_publisher(cls, f"{NAMESPACE}/{dst.lstrip('/')}", qos) for src, (dst, cls) in routes.items()}
        node.create_subscription(DiagnosticArray, "/diagnostics", diag.on_msg, 50)
        ask = node.create_client(Ask, f"{target}/ask", qos_profile=service_qos())

        proc = NodeProcess(params, ["-r", f"__ns:={NAMESPACE}", "-r", f"__node:={NODE_NAME}"])
        _wait_ready(proc, ask, pubs, diag)

        def wait_settled(published: int) -> dict[str, int]:
            last, last_change = None, time.monotonic()
            n0 = diag.snapshot()[0]
            while True:
                n, vals = diag.snapshot()
                c = counters(vals)
                if n > n0 and settled(c, published):  # n > n0: a report made after our last publish
                    return c
                key = (c["frames_in"], c["processed"], c["sync_dropped"], c["queue_depth"])
                if key != last:
                    last, last_change = key, time.monotonic()
                elif time.monotonic() - last_change > SETTLE_TIMEOUT_S:
                    notes.append(f"after {published} frames the node stopped at {c['frames_in']} in, "
                                 f"{c['in_memory']} in memory: the rest was lost in transport")
                    return c
                if not proc.alive():
                    raise RuntimeError(f"the node exited during the replay:\n{_tail(proc.log())}")
                time.sleep(0.02)

        def ask_due(k: int, c: dict[str, int]) -> None:
            for r in when.get(k, []):
                req = Ask.Request(question=r["question"], options=list(r.get("options") or []))
                t0 = time.perf_counter()
                fut = ask.call_async(req)
                if not _wait_future(fut, ASK_TIMEOUT_S):
                    raise RuntimeError(f"~/ask did not answer {r['id']!r} within {ASK_TIMEOUT_S} s")
                ms = (time.perf_counter() - t0) * 1e3
                res = fut.result()
                ans, err = (_answer_dict(res.answer), "") if res.success else (None, res.error)
                pred, sc = score(r, ans)
                stamp = plan_stamps[k - 1] if k > 0 else start
                backend = route(r["question"], r.get("options") or None, cfg.qa_backend)  # as the node routes it
                results.append(QuestionResult(r, round(stamp - start, 6), c["in_memory"], ans, pred, sc, ms, err, backend))

        # ---- play
        plan_set = set(plan_stamps)
        published = 0  # plan frames whose colour image went out
        next_ask = 0
        bar = _progress(n_plan, f"{cfg.method} live", cfg.progress)
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        t_start = None
        t_play = time.perf_counter()
        paused = 0.0
        frame_pub_ms: dict[float, float] = {}
        late_ms: dict[float, float] = {}
        with AnyReader([Path(cfg.bag)], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as bag:
            conns = [c for c in bag.connections if c.topic in routes]
            # The camera's intrinsics first, as a camera driver has them out before any image:
            # otherwise the first depth image can reach the node ahead of its camera_info
            # (separate DDS readers) and be dropped for want of it.
            info_conns = [c for c in conns if c.topic == tp.camera_info]
            for _, _, raw in bag.messages(connections=info_conns):
                pubs[tp.camera_info].publish(bytes(raw))
                time.sleep(0.3)
                break
            for conn, logtime, raw in bag.messages(connections=conns):
                raw = bytes(raw)
                stamp = header_stamp(raw)
                if stamp < start - 1e-9 or (cfg.max_frames is not None and stamp > plan_stamps[-1] + 1e-9):
                    continue
                # a question due after frame k is asked before anything newer than frame k goes out
                while next_ask < len(ask_points) and stamp > plan_stamps[ask_points[next_ask] - 1] + 1e-9:
                    k = ask_points[next_ask]
                    tp0 = time.perf_counter()
                    ask_due(k, wait_settled(published))
                    paused += time.perf_counter() - tp0
                    next_ask += 1
                if t_start is None:
                    t_start = (time.perf_counter(), logtime)
                due = t_start[0] + paused + (logtime - t_start[1]) * 1e-9 / cfg.rate_scale
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                t0 = time.perf_counter()
                pubs[conn.topic].publish(raw)
                dt = (time.perf_counter() - t0) * 1e3
                frame_pub_ms[stamp] = frame_pub_ms.get(stamp, 0.0) + dt
                if conn.topic == info.color_topic and stamp in plan_set:
                    late_ms[stamp] = max(0.0, (t0 - due) * 1e3)
                    published += 1
                    bar.update(1)
        play_s = time.perf_counter() - t_play - paused
        for k in ask_points[next_ask:]:
            ask_due(k, wait_settled(published))
        final = wait_settled(published)
        process_s = time.perf_counter() - t_play
        ask_due(n_plan, final)
        bar.close()
        # one more report, after the last answer, for the node's final latency summary
        n = diag.snapshot()[0]
        deadline = time.monotonic() + 2.0
        while diag.snapshot()[0] == n and time.monotonic() < deadline:
            time.sleep(0.02)
        _, vals = diag.snapshot()
        final = counters(vals)
    finally:
        rc = proc.stop(timeout=20.0) if proc is not None else None
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        spinner.join(timeout=2.0)
    if rc not in (0, None):
        notes.append(f"the node exited with code {rc} on SIGINT")
    log_text = proc.log() if proc is not None else ""
    (tmp / "node.log").write_text(log_text)

    for i, s in enumerate(plan_stamps):
        if s in late_ms:
            timings.append(FrameTiming(i, s, {"publish": frame_pub_ms.get(s, 0.0), "late": late_ms[s]}, 0))
    samples = list(diag.samples)
    for f in timings:  # state bytes last reported at or before this many frames
        j = np.searchsorted([k for k, _ in samples], f.index + 1, side="right") - 1
        f.state_bytes = samples[j][1] if j >= 0 else 0
    in_memory = final["in_memory"]
    dropped = max(0, n_plan - in_memory)
    # why: the node's counters per kind (no_color etc.: a partner message never arrived,
    # typically lost by best-effort transport), and whatever the node never saw at all
    drops = {"queue_full": final["queue_dropped"], "not_published": n_plan - published}
    for kind in SYNC_KINDS + REJECT_KINDS:
        drops[kind] = final.get(f"problem {kind}", 0)
    drops["never_arrived"] = max(0, dropped - sum(drops.values()))
    drops = {k: int(v) for k, v in drops.items() if v}
    order = {id(r): i for i, r in enumerate(records)}
    results.sort(key=lambda q: order[id(q.record)])
    ckpt = resolve_checkpoint(cfg.method, cfg.checkpoint)
    notes.append(f"playback {play_s:.1f} s at rate x{cfg.rate_scale:g} (bag {info.end_stamp - info.start_stamp:.1f} s); "
                 f"node log: {tmp / 'node.log'}")
    return EvalResult(
        mode="live",
        config=cfg.to_json(),
        bag=info,
        questions=results,
        frames=timings,
        record_errors=list(record_errors),
        wall_s=process_s,
        process_s=process_s,
        dropped_frames=dropped,
        frames_published=published,
        inventory=None,
        checkpoint=None if ckpt is None else str(ckpt),
        model_checksum=sha256_file(ckpt),
        notes=notes,
        state_samples=samples,
        stage_latency=node_stage_latency(vals),
        drops=drops,
        # None when the node never reported it (no diagnostics): then the final check is skipped
        detections=final.get("detections") if "detections" in vals else None,
    )


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _wait_ready(proc, ask_client, pubs: dict, diag: _Diagnostics) -> None:
    """Until the node serves ~/ask, subscribes to every input and reports on /diagnostics."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not proc.alive():
            log = proc.log()
            why = [ln for ln in log.splitlines() if "configure failed" in ln or "could not configure" in ln]
            line = why[0].split("]: ", 1)[-1] if why else _tail(log, 5).replace("\n", " | ")
            raise ValueError(f"the node did not start: {line}")
        ready = ask_client.service_is_ready() and all(p.get_subscription_count() > 0 for p in pubs.values())
        if ready and diag.snapshot()[0] > 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the node was not ready after {START_TIMEOUT_S:.0f} s:\n{_tail(proc.log())}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: spatial-ttt eval --live ...")
