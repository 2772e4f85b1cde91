"""``spatial-ttt bench node``: how fast the ROS node keeps up, on this machine.

The node runs as its own process (the console script, as users start it); this
process publishes camera topics to it over DDS, like a camera driver. For each
front-end (label image, and the ONNX detector when a model is given):

- sustained rate: input stepped up through ``--rates`` (``--step-seconds`` each);
  the highest rate at which the node still writes at least 95 % of the frames it
  publishes into memory (queue drops at most 2 %) is what it keeps up with;
- 30 Hz input: frames published at 30 Hz for ``--seconds`` with the default queue
  (queue_size 10, drop-oldest); the fraction dropped;
- service latency: ~/ask and ~/describe called while the 30 Hz stream runs and
  again idle; p50 and p95 in milliseconds.

The publisher shares the CPU with the node (2 cores here), so the numbers are a
floor for a robot where the camera driver runs elsewhere. Prints a table and
writes JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from spatial_ttt_ros.bench.results import write_json

REPO = Path(__file__).resolve().parents[2]
SHARED_MODEL = REPO.parent / "shared" / "models" / "yolox_nano" / "yolox_nano.onnx"
HOLOLENS = REPO.parent / "shared" / "data" / "hololens_office"
QUESTIONS = (
    "How many chairs are in this room?",
    "What is the size of this room (in square meters)?",
    "Measuring from the closest point of each object, what is the direct distance between the sofa and the table (in meters)?",
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--method", default=None, help="memory method (default: the node's default, config/spatial_ttt.yaml)")
    parser.add_argument("--detector", choices=("labels", "onnx", "both"), default="both")
    parser.add_argument("--model-path", type=Path, default=SHARED_MODEL if SHARED_MODEL.is_file() else None,
                        help="ONNX detector for the onnx runs (default: ../shared/models/yolox_nano)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the 30 Hz phase [s]")
    parser.add_argument("--rates", type=str, default="5,10,15,20,30,45,60",
                        help="input rates [Hz] stepped through for the sustained rate")
    parser.add_argument("--step-seconds", type=float, default=4.0, help="length of each rate step [s]")
    parser.add_argument("--width", type=int, default=320, help="simulated image width (labels runs)")
    parser.add_argument("--height", type=int, default=240, help="simulated image height (labels runs)")


def _pct(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    a = np.asarray(values) * 1e3
    return {"n": len(values), "p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "max_ms": float(a.max())}


def _frames_for(detector: str, width: int, height: int):
    """(frames, jpeg bytes or None): the hololens walk for the detector when present, else simulated frames."""
    from spatial_ttt_ros.frames import CameraFrame

    if detector == "onnx" and (HOLOLENS / "poses.txt").is_file():
        import cv2

        names = sorted(p.stem for p in (HOLOLENS / "rgb").glob("*.jpg"))[::6][:60]
        K = np.loadtxt(HOLOLENS / "K.txt")
        poses = np.loadtxt(HOLOLENS / "poses.txt").reshape(-1, 4, 4)[::6][:60]
        y_up_to_z_up = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
        frames = []
        for name, T in zip(names, poses):
            bgr = cv2.imread(str(HOLOLENS / "rgb" / f"{name}.jpg"))
            depth = cv2.imread(str(HOLOLENS / "depth" / f"{name}.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000
            frames.append(CameraFrame(0.0, depth, K, y_up_to_z_up @ T, rgb=bgr[:, :, ::-1].copy()))
        return frames, f"hololens_office ({frames[0].depth.shape[1]}x{frames[0].depth.shape[0]})"
    from spatial_ttt_ros.sim.stream import simulate_stream

    s = simulate_stream(seed=7, n_rooms=2, n_frames=60, rate_hz=10.0, width=width, height=height)
    return [f for f, _ in s.frames()], f"simulator ({width}x{height})"


class _Run:
    """One node process plus the publishing/calling side in this process."""

    def __init__(self, node, client, pub, frames, diagnostics: list) -> None:
        import rclpy

        self.rclpy, self.node, self.client, self.pub, self.diagnostics = rclpy, node, client, pub, diagnostics
        # Messages are built once; publishing only restamps them, so the publisher stays cheap.
        self.messages = [pub.messages(f, 0.0) for f in frames]
        self.stamp = 100.0
        self.i = 0

    def publish_one(self) -> None:
        from spatial_ttt_ros.ros.conversions import sec_to_stamp

        msgs = self.messages[self.i % len(self.messages)]
        t = sec_to_stamp(self.stamp)
        for name in ("camera_info", "pose", "labels", "color", "depth"):
            if name in msgs and name in self.pub.pubs:
                msgs[name].header.stamp = t
                self.pub.pubs[name].publish(msgs[name])
        self.stamp += 0.01  # stamps only need to increase; the memory does not read rates
        self.i += 1

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.rclpy.spin_once(self.node, timeout_sec=0.02)

    def _ask_loop(self, period_s: float, latencies: list[float], stop) -> None:
        from rclpy.executors import SingleThreadedExecutor

        from spatial_ttt_ros.ros.stream_io import NodeClient

        node = self.rclpy.create_node("bench_node_speed_asker")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        client = NodeClient(node, timeout=30.0, executor=executor)
        try:
            i = 0
            while not stop.is_set():
                t = time.perf_counter()
                client.ask(QUESTIONS[i % len(QUESTIONS)])
                latencies.append(time.perf_counter() - t)
                i += 1
                stop.wait(max(0.0, period_s - (time.perf_counter() - t)))
        finally:
            executor.remove_node(node)
            node.destroy_node()

    def counters(self) -> dict[str, float]:
        """Diagnostics published after this call (older ones may still sit in the DDS queue)."""
        asked = time.time()
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            self.rclpy.spin_once(self.node, timeout_sec=0.05)
            fresh = [d for d in self.diagnostics if d.header.stamp.sec + d.header.stamp.nanosec * 1e-9 > asked]
            if fresh:
                self.diagnostics.clear()
                values = {kv.key: kv.value for kv in fresh[-1].status[0].values}
                return {"in": int(values["frames in"]), "processed": int(values["frames processed"]),
                        "dropped": int(values["dropped (queue full)"]), "values": values}
        raise RuntimeError("no fresh /diagnostics from the node")

    def settled(self, timeout: float = 15.0) -> dict:
        """Counters once the node has taken in and processed everything (unchanged for 1.5 s:
        on a loaded machine the node can stall for a moment and then take a burst)."""
        last, stable_since = self.counters(), time.monotonic()
        end = time.monotonic() + timeout
        while time.monotonic() < end and time.monotonic() - stable_since < 1.5:
            self.spin(0.3)
            now = self.counters()
            if (now["in"], now["processed"], now["dropped"]) != (last["in"], last["processed"], last["dropped"]):
                last, stable_since = now, time.monotonic()
        return last

    def stream(self, rate_hz: float, seconds: float, ask_period_s: float = 0.0) -> dict:
        before = self.settled()
        latencies: list[float] = []
        stop = threading.Event()
        asker = None
        if ask_period_s > 0:  # a planner asking while the camera streams: its own thread and node
            asker = threading.Thread(target=self._ask_loop, args=(ask_period_s, latencies, stop), daemon=True)
            asker.start()
        published = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            self.publish_one()
            published += 1
            self.rclpy.spin_once(self.node, timeout_sec=0.0)
            delay = t0 + published / rate_hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        stop.set()
        if asker is not None:
            asker.join(30.0)
        elapsed = time.monotonic() - t0
        after = self.settled()
        synced = after["in"] - before["in"]
        processed = after["processed"] - before["processed"]
        dropped = after["dropped"] - before["dropped"]
        return {
            "offered_hz": published / elapsed,
            "published": published,
            "synced": synced,
            "processed": processed,
            "processed_hz": processed / elapsed,
            "dropped_queue_full": dropped,
            "dropped_fraction": dropped / synced if synced else 0.0,
            "lost_before_node": published - synced,  # best-effort transport or unsynced
            "ask_latency": _pct(latencies),
            "stage_latency": {k: v for k, v in after["values"].items() if k.startswith("latency")},
        }


def bench_one(detector: str, args: argparse.Namespace, method: str) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    from spatial_ttt_ros.ros.stream_io import (
        NodeClient,
        NodeProcess,
        StreamPublisher,
        isolate_ros_domain,
        node_command,
        write_params,
    )

    frames, source = _frames_for(detector, args.width, args.height)
    tmp = Path(tempfile.mkdtemp(prefix="spatial_ttt_bench_node_"))
    overrides = {"detector": detector, "method": method, "memory_dir": str(tmp / "memories"),
                 "diagnostics_period_s": 0.25, "description_period_s": 0.0}
    if detector == "onnx":
        overrides["model_path"] = str(args.model_path)
    isolate_ros_domain()
    proc = NodeProcess(write_params(tmp / "params.yaml", overrides), command=node_command())
    rclpy.init()
    node = rclpy.create_node("bench_node_speed")
    diagnostics: list = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    try:
        client = NodeClient(node, timeout=30.0)
        client.wait(60.0)
        pub = StreamPublisher(node, pose="pose", labels=(detector == "labels"), depth_encoding="16UC1")
        pub.wait_for_subscribers(30.0, spin=lambda t: rclpy.spin_once(node, timeout_sec=t))
        run = _Run(node, client, pub, frames, diagnostics)
        run.stream(10.0, 2.0)  # warm-up: model caches, DDS discovery of every topic
        steps, sustained = [], 0.0
        for rate in [float(r) for r in args.rates.split(",") if r.strip()]:
            step = run.stream(rate, args.step_seconds)
            step["rate_hz"] = rate
            steps.append(step)
            # Kept up: at least 95 % of what was published got into memory (losses in DDS or the
            # synchroniser count: they are frames the node was too busy to take), queue drops <= 2 %.
            kept_up = step["processed"] >= 0.95 * step["published"] - 1 and step["dropped_fraction"] <= 0.02
            print(f"  {detector}: {rate:5.1f} Hz in -> {step['processed_hz']:5.1f} Hz written, "
                  f"{step['dropped_queue_full']} dropped, {step['lost_before_node']} lost before the node"
                  + ("" if kept_up else "  (falls behind)"))
            if not kept_up:
                break
            sustained = rate
        at30 = run.stream(30.0, args.seconds, ask_period_s=0.2)
        idle_ask, idle_describe = [], []
        for i in range(40):
            t = time.perf_counter()
            client.ask(QUESTIONS[i % len(QUESTIONS)])
            idle_ask.append(time.perf_counter() - t)
            t = time.perf_counter()
            client.describe()
            idle_describe.append(time.perf_counter() - t)
        result = {
            "detector": detector,
            "method": method,
            "frames": source,
            "sustained_hz": sustained,
            "steps": steps,
            "at_30hz": at30,
            "ask_latency_under_30hz": at30["ask_latency"],
            "ask_latency_idle": _pct(idle_ask),
            "describe_latency_idle": _pct(idle_describe),
            "device": run.counters()["values"].get("device", "?"),
        }
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.stop()
    return result


def run(args: argparse.Namespace) -> int:
    from spatial_ttt_ros.ros.params import PARAMETERS  # plain Python: no rclpy import

    method = args.method or next(p.default for p in PARAMETERS if p.name == "method")
    detectors = ["labels", "onnx"] if args.detector == "both" else [args.detector]
    if "onnx" in detectors and (args.model_path is None or not Path(args.model_path).is_file()):
        if args.detector == "onnx":
            raise ValueError(f"--model-path {args.model_path}: no ONNX model there")
        print("bench node: no ONNX model (../shared/models/yolox_nano): labels only")
        detectors = ["labels"]
    results = [bench_one(d, args, method) for d in detectors]
    print(f"\nnode speed ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, memory {method}):")
    print("| front-end | frames | sustained [Hz] | dropped at 30 Hz | ask p50/p95 at 30 Hz [ms] | ask p50/p95 idle [ms] | describe p50/p95 [ms] |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        a30, ai, di = r["ask_latency_under_30hz"], r["ask_latency_idle"], r["describe_latency_idle"]
        print(
            f"| {r['detector']} | {r['frames']} | {r['sustained_hz']:.1f} | "
            f"{100 * r['at_30hz']['dropped_fraction']:.0f} % ({r['at_30hz']['dropped_queue_full']} of {r['at_30hz']['synced']}) | "
            f"{a30.get('p50_ms', float('nan')):.1f}/{a30.get('p95_ms', float('nan')):.1f} | "
            f"{ai['p50_ms']:.1f}/{ai['p95_ms']:.1f} | {di['p50_ms']:.1f}/{di['p95_ms']:.1f} |"
        )
    if args.json:
        doc = {"benchmark": "node", "method": method, "machine": platform.machine(), "cpus": os.cpu_count(),
               "load_average_1min_at_end": os.getloadavg()[0], "results": results}
        write_json(args.json, doc)
    return 0
