"""``spatial-ttt bench node``: how fast the ROS node keeps up, on this machine.

The node runs as its own process (the console script, as users start it); this
process publishes camera topics to it over DDS, like a camera driver. The clients run
in a third process, each its own ROS node on its own thread, alternating ``~/ask`` and
``~/describe`` every ``--client-period`` seconds (planners). For each front-end (label
image, and the ONNX detector when a model is given):

- sustained rate: input stepped up through ``--rates`` (``--step-seconds`` each), with
  each client count of ``--sustain-clients``; the highest rate at which the node loses
  at most 5 % of the frames published (dropped by the node or lost in DDS; queue drops
  at most 2 %);
- 30 Hz input for ``--seconds`` with each client count of ``--clients`` (default 0, 1
  and 8; queue_size 10, drop-oldest): frames lost (dropped by the node, by reason, or in
  DDS), ``~/ask`` and ``~/describe`` p50, p95 and max;
- the frame accounting identity from the node's /diagnostics, at both ends of every
  phase and over it: frames received = processed + dropped + in flight (frames still in
  flight at the end are written in the next phase); frames lost in DDS (published but
  never received; none with ``--qos reliable``) are reported apart;
- the service calls of each phase with clients: sent by the clients (one uncounted warm-up
  call each included), received and answered by the node (its /diagnostics), and those
  that never came back (30 s).

The publisher and the clients share the CPU with the node (2 cores here), so the numbers
are a floor for a robot where the camera driver and the planner run elsewhere. Prints a
table and writes JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from spatial_ttt_ros.bench.results import write_json
from spatial_ttt_ros.ros.stream_io import LoopingPublisher

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
    parser.add_argument("--clients", type=str, default="0,1,8",
                        help="client counts of the 30 Hz phases (comma list; one number N means 0,1,N)")
    parser.add_argument("--sustain-clients", type=str, default="0,1",
                        help="client counts the sustained rate is measured with (comma list)")
    parser.add_argument("--client-period", type=float, default=0.2,
                        help="each client calls ~/ask or ~/describe (alternately) this often [s]")
    parser.add_argument("--qos", choices=("reliable", "best_effort"), default="best_effort",
                        help="input QoS: best_effort (the node's default, sensor data; frames lost in DDS are "
                             "reported apart) or reliable (every frame reaches the node; costs the node CPU here)")
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


def _client_loop(rclpy, index: int, period_s: float, latencies: dict, ready, start, stop) -> None:
    """One planner: its own node and executor, alternating ~/ask and ~/describe (with
    ``stream_io.service_qos()``: KEEP_ALL replies, see there why)."""
    from rclpy.executors import SingleThreadedExecutor

    from spatial_ttt_ros.ros.stream_io import NodeClient

    node = rclpy.create_node(f"bench_node_speed_client_{index}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    client = NodeClient(node, timeout=30.0, executor=executor)
    warm = NodeClient(node, timeout=5.0, executor=executor)
    try:
        client.wait(60.0)  # discovery is not part of a call's latency
        # Nor is matching: one answered call first (short timeout, retried), not counted.
        for _ in range(6):
            try:
                warm.describe()
                break
            except TimeoutError:
                continue
        ready.release()
        start.wait()
        stop.wait(period_s * index / 8)  # clients do not all call at the same instant
        i = index  # and start on different calls, so asks and describes interleave
        while not stop.is_set():
            t = time.perf_counter()
            kind = "ask" if i % 2 == 0 else "describe"
            try:
                if kind == "ask":
                    ok = client.ask(QUESTIONS[(i // 2) % len(QUESTIONS)]).success
                else:
                    ok = client.describe().success
                latencies[kind].append(time.perf_counter() - t)
            except TimeoutError:  # never answered (30 s): counted apart, the planner goes on
                ok = True
                latencies["lost"].append(kind)
            if not ok:
                latencies["failed"].append(kind)
            i += 1
            stop.wait(max(0.0, period_s - (time.perf_counter() - t)))
    finally:
        latencies["sent"].append(sum(client.sent.values()) + sum(warm.sent.values()))
        executor.remove_node(node)
        node.destroy_node()


def _clients_main(n: int, period_s: float) -> None:
    """The planners' process: ``n`` clients on their own threads. Protocol on stdin/stdout:
    prints "ready" once every client found the services, starts on a "start" line, stops on
    a "stop" line and prints the latencies as one JSON line."""
    import json
    import sys

    import rclpy

    rclpy.init()
    latencies: dict[str, list] = {"ask": [], "describe": [], "failed": [], "lost": [], "sent": []}
    all_ready = threading.Semaphore(0)
    go, halt = threading.Event(), threading.Event()
    threads = [threading.Thread(target=_client_loop, args=(rclpy, k, period_s, latencies, all_ready, go, halt), daemon=True)
               for k in range(n)]
    for t in threads:
        t.start()
    for _ in range(n):
        all_ready.acquire()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "start":
            go.set()
        elif line.strip() == "stop":
            break
    halt.set()
    for t in threads:
        t.join(30.0)
    print(json.dumps(latencies), flush=True)
    rclpy.shutdown()


class _Clients:
    """``n`` clients in their own process: a planner is another process than the camera
    driver, and this process's GIL stays with the publisher."""

    def __init__(self, n: int, period_s: float) -> None:
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spatial_ttt_ros.ros.node_bench", "--clients-process", str(n), str(period_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()  # blocks until the clients are ready (or the process died)
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the bench clients did not start: {line!r}")

    def begin(self) -> None:
        self.proc.stdin.write("start\n")
        self.proc.stdin.flush()

    def finish(self) -> dict:
        import json

        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        try:
            return json.loads(self.proc.stdout.readline())
        finally:
            try:
                self.proc.wait(30.0)
            except Exception:  # noqa: BLE001 - a client stuck in a call: do not hang the bench
                self.proc.kill()


class _Run(LoopingPublisher):
    """One node process plus the publishing/calling side in this process."""

    def __init__(self, node, client, pub, frames, diagnostics: list) -> None:
        import rclpy

        super().__init__(pub, frames)
        self.rclpy, self.node, self.client, self.diagnostics = rclpy, node, client, diagnostics

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.rclpy.spin_once(self.node, timeout_sec=0.02)

    def counters(self) -> dict:
        """The frame ledger from a /diagnostics message published after this call."""
        asked = time.time()
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            self.rclpy.spin_once(self.node, timeout_sec=0.05)
            fresh = [d for d in self.diagnostics if d.header.stamp.sec + d.header.stamp.nanosec * 1e-9 > asked]
            if fresh:
                self.diagnostics.clear()
                values = {kv.key: kv.value for kv in fresh[-1].status[0].values}
                stages = dict(kv.rsplit(" ", 1) for kv in values["frames in flight by stage"].split(", "))
                return {"received": int(values["frames received"]), "processed": int(values["frames processed"]),
                        "dropped": int(values["frames dropped"]), "in_flight": int(values["frames in flight"]),
                        # past the synchroniser: queued or being written (a frame waiting in the
                        # synchroniser may wait for the next frame's messages)
                        "in_node": sum(int(v) for k, v in stages.items() if k != "sync"),
                        "dropped_by": {k[len("dropped "):]: int(v) for k, v in values.items()
                                       if k.startswith("dropped ") and k != "dropped (queue full)"},
                        "calls": {k: int(values.get(f"service {k}", 0)) for k in
                                  ("calls received", "calls answered", "answers not sent")},
                        "values": values}
        raise RuntimeError("no fresh /diagnostics from the node")

    def settled(self, timeout: float = 20.0) -> dict:
        """The ledger once it has not changed for 1 s (on a loaded machine the node can stall
        for a moment and then take a burst; a frame whose partner was lost in DDS may stay in
        flight until the next phase's messages arrive)."""
        key = ("received", "processed", "dropped", "in_flight")
        last, stable_since = self.counters(), time.monotonic()
        end = time.monotonic() + timeout
        while time.monotonic() < end and (last["in_node"] or time.monotonic() - stable_since < 1.0):
            self.spin(0.25)
            now = self.counters()
            if [now[k] for k in key] != [last[k] for k in key]:
                stable_since = time.monotonic()
            last = now
        return last

    def stream(self, rate_hz: float, seconds: float, clients: int = 0, client_period_s: float = 0.2) -> dict:
        before = self.settled()
        clients_proc = _Clients(clients, client_period_s) if clients else None
        if clients_proc is not None:
            clients_proc.begin()
        published = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            self.publish_one()
            published += 1
            self.rclpy.spin_once(self.node, timeout_sec=0.0)
            delay = t0 + published / rate_hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        elapsed = time.monotonic() - t0
        no_calls = {"ask": [], "describe": [], "failed": [], "lost": [], "sent": []}
        latencies = clients_proc.finish() if clients_proc is not None else no_calls
        after = self.settled()
        received = after["received"] - before["received"]
        processed = after["processed"] - before["processed"]
        dropped = after["dropped"] - before["dropped"]
        # Frames still waiting at either end (an anchor whose partner was lost in DDS waits for
        # the next frame's messages): in flight, not lost.
        in_flight = after["in_flight"] - before["in_flight"]
        dropped_by = {k: v - before["dropped_by"].get(k, 0) for k, v in after["dropped_by"].items()
                      if v - before["dropped_by"].get(k, 0)}
        return {
            "clients": clients,
            "offered_hz": published / elapsed,
            "published": published,
            "received": received,
            "processed": processed,
            "processed_hz": processed / elapsed,
            "dropped": dropped,
            "dropped_by": dropped_by,
            # Frames the robot lost: dropped by the node (any reason) or in DDS; frames still in
            # flight at the end of the phase are not lost (they are written in the next one).
            "dropped_fraction": (dropped + published - received) / published if published else 0.0,
            "lost_before_node": published - received,  # in DDS: never reached the subscription
            "in_flight_change": in_flight,
            "in_flight_at_end": after["in_flight"],
            # The node's own books: every frame it received was written, dropped for a reason or
            # is still in flight, at both ends of the phase and over the phase.
            "identity_holds": all(c["received"] == c["processed"] + c["dropped"] + c["in_flight"] for c in (before, after))
            and received == processed + dropped + in_flight,
            "ask_latency": _pct(latencies["ask"]),
            "describe_latency": _pct(latencies["describe"]),
            "failed_calls": len(latencies["failed"]),
            "lost_calls": len(latencies.get("lost", [])),  # no answer within 30 s
            # The node's side of the calls (warm-up calls included): requests sent by the clients,
            # received and answered by the node, answers the middleware refused to send.
            "service_calls": {"sent": sum(latencies.get("sent", [])),
                              **{k.replace(" ", "_"): after["calls"][k] - before["calls"][k] for k in after["calls"]}},
            "stage_latency": {k: v for k, v in after["values"].items() if k.startswith("latency")},
        }


def _counts(text: str, n_default: str) -> list[int]:
    values = sorted({int(v) for v in (text or n_default).split(",") if v.strip()})
    if len(values) == 1 and values[0] > 1:  # "--clients 8": 0, 1 and 8
        values = [0, 1, values[0]]
    return values


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
                 "diagnostics_period_s": 0.25, "description_period_s": 0.0,
                 "qos_reliability": args.qos, "qos_depth": 100}
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
        client.wait(120.0)
        from spatial_ttt_ros.ros.stream_io import reliable_qos

        qos = reliable_qos(100)
        if args.qos == "best_effort":
            from rclpy.qos import ReliabilityPolicy

            qos.reliability = ReliabilityPolicy.BEST_EFFORT
        pub = StreamPublisher(node, pose="pose", labels=(detector == "labels"), depth_encoding="16UC1", qos=qos)
        pub.wait_for_subscribers(30.0, spin=lambda t: rclpy.spin_once(node, timeout_sec=t))
        run = _Run(node, client, pub, frames, diagnostics)
        run.stream(10.0, 2.0)  # warm-up: model caches, DDS discovery of every topic
        sustained: dict[str, float] = {}
        steps: dict[str, list] = {}
        for clients in _counts(args.sustain_clients, "0"):
            best, steps[str(clients)] = 0.0, []
            for rate in [float(r) for r in args.rates.split(",") if r.strip()]:
                step = run.stream(rate, args.step_seconds, clients, args.client_period)
                step["rate_hz"] = rate
                steps[str(clients)].append(step)
                # Kept up: at most 5 % of the frames published lost (dropped by the node or in DDS),
                # queue drops at most 2 %.
                kept_up = step["dropped_fraction"] <= 0.05 and \
                    step["dropped_by"].get("queue_full", 0) <= 0.02 * step["published"]
                print(f"  {detector}, {clients} client(s): {rate:5.1f} Hz in -> {step['processed_hz']:5.1f} Hz written, "
                      f"{step['dropped']} dropped {step['dropped_by']}, {step['lost_before_node']} lost in DDS"
                      + ("" if kept_up else "  (falls behind)"))
                if not kept_up:
                    break
                best = rate
            sustained[str(clients)] = best
        at30 = {}
        for clients in _counts(args.clients, "0,1,8"):
            r = run.stream(30.0, args.seconds, clients, args.client_period)
            at30[str(clients)] = r
            print(f"  {detector}, 30 Hz, {clients} client(s): {r['dropped'] + r['lost_before_node']} of {r['published']} lost "
                  f"({100 * r['dropped_fraction']:.1f} %), ask p95 {r['ask_latency'].get('p95_ms', float('nan')):.0f} ms, "
                  f"describe p95 {r['describe_latency'].get('p95_ms', float('nan')):.0f} ms, identity "
                  f"{'holds' if r['identity_holds'] else 'BROKEN'}"
                  + (f"; calls sent {r['service_calls']['sent']}, node received {r['service_calls']['calls_received']}"
                     f" answered {r['service_calls']['calls_answered']}, {r['lost_calls']} never came back" if clients else ""))
        result = {
            "detector": detector,
            "method": method,
            "frames": source,
            "client_period_s": args.client_period,
            "sustained_hz": sustained,
            "steps": steps,
            "at_30hz": at30,
            "identity_holds": all(s["identity_holds"] for ss in steps.values() for s in ss)
            and all(r["identity_holds"] for r in at30.values()),
            "device": run.counters()["values"].get("device", "?"),
        }
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.stop()
    return result


def _ms(lat: dict) -> str:
    if not lat.get("n"):
        return "-"
    return f"{lat['p50_ms']:.0f}/{lat['p95_ms']:.0f}/{lat['max_ms']:.0f}"


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
    print(f"\nnode speed ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, memory {method}, "
          f"clients call every {args.client_period} s):")
    print("| front-end | frames | sustained [Hz] (clients) | clients at 30 Hz | dropped | ask p50/p95/max [ms] | "
          "describe p50/p95/max [ms] | received = processed + dropped (+ change in flight) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        sustained = ", ".join(f"{hz:.0f} ({c})" for c, hz in r["sustained_hz"].items())
        for clients, a in r["at_30hz"].items():
            print(
                f"| {r['detector']} | {r['frames']} | {sustained} | {clients} | "
                f"{100 * a['dropped_fraction']:.1f} % ({a['dropped'] + a['lost_before_node']} of {a['published']}) | "
                f"{_ms(a['ask_latency'])} | {_ms(a['describe_latency'])} | "
                f"{a['received']} = {a['processed']} + {a['dropped']}"
                + (f" {a['in_flight_change']:+d} in flight" if a["in_flight_change"] else "")
                + f" {'(holds)' if a['identity_holds'] else '(BROKEN)'} |"
            )
    if args.json:
        doc = {"benchmark": "node", "method": method, "machine": platform.machine(), "cpus": os.cpu_count(),
               "command": "spatial-ttt " + " ".join(sys.argv[1:]),
               "load_average_1min_at_end": os.getloadavg()[0], "results": results}
        write_json(args.json, doc)
    return 0 if all(r["identity_holds"] for r in results) else 1


if __name__ == "__main__":  # the clients' process (_Clients)
    import sys

    if len(sys.argv) == 4 and sys.argv[1] == "--clients-process":
        _clients_main(int(sys.argv[2]), float(sys.argv[3]))
