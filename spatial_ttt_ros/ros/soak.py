"""``spatial-ttt bench soak``: the node over a long run, for leaks and drift.

The node runs as its own process (as in ``bench node``, whose publisher and counters this
reuses); this process publishes simulated frames at ``--rate`` Hz for ``--minutes`` while
a planner thread calls ``~/ask`` every ``--ask-period`` seconds. Every ``--sample`` seconds
it records the node's RSS, threads and open file descriptors (from /proc), frames in,
processed and dropped (from /diagnostics) and the ask latencies of that interval.
Writes JSON (``--json``) and a PNG of the four series beside it; prints the RSS growth
after the first minute (the soak's pass mark: under 5 %) and any error line of the log.
It needs a running node, so it lives under ros/ (layer 7) like ``bench node``;
bench/cli.py only dispatches to it.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from spatial_ttt_ros.bench.results import write_json
from spatial_ttt_ros.ros.stream_io import LoopingPublisher


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the run [min]")
    parser.add_argument("--method", default="object_map", help="memory method of the node")
    parser.add_argument("--rate", type=float, default=30.0, help="input rate [Hz]")
    parser.add_argument("--ask-period", type=float, default=1.0, help="a ~/ask every this many seconds")
    parser.add_argument("--sample", type=float, default=10.0, help="sampling period [s]")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--json", type=Path, default=Path("runs/soak/soak.json"), help="results (a PNG is written beside)")


def _proc_stats(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mib": int(fields["VmRSS"].split()[0]) / 1024.0,
        "threads": int(fields["Threads"]),
        "fds": len(list(Path(f"/proc/{pid}/fd").iterdir())),
    }


def _plot(samples: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_min"] for s in samples]
    fig, ax = plt.subplots(2, 2, figsize=(10, 6))
    ax[0, 0].plot(t, [s["rss_mib"] for s in samples]); ax[0, 0].set_ylabel("RSS [MiB]")
    ax[0, 1].plot(t, [s["threads"] for s in samples], label="threads")
    ax[0, 1].plot(t, [s["fds"] for s in samples], label="fds"); ax[0, 1].legend()
    ax[1, 0].plot(t, [s["dropped"] for s in samples], label="dropped")
    ax[1, 0].plot(t, [s["processed"] for s in samples], label="processed"); ax[1, 0].legend()
    ax[1, 1].plot(t, [s["ask_p95_ms"] for s in samples], label="ask p95")
    ax[1, 1].plot(t, [s["ask_p50_ms"] for s in samples], label="ask p50"); ax[1, 1].set_ylabel("ms"); ax[1, 1].legend()
    for a in ax.flat:
        a.set_xlabel("minutes")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


QUESTION = "How many chairs are in this room?"


class _Soak(LoopingPublisher):
    """The publishing, asking and counting side (its own, so the soak does not lean on
    ``bench node``'s internals)."""

    def __init__(self, rclpy, node, pub, frames) -> None:
        super().__init__(pub, frames)
        self.rclpy, self.node = rclpy, node
        self.diagnostics: list = []
        self.latencies: list[float] = []
        self.failed_asks = 0
        self.lock = threading.Lock()

    def on_diagnostics(self, msg) -> None:
        if msg.status and msg.status[0].name.endswith(": spatial memory"):
            self.diagnostics[:] = [msg]  # keep the latest only: the soak's own memory stays flat

    def counters(self) -> dict:
        """Frame counts of the latest /diagnostics (the ledger's names where the node has them)."""
        if not self.diagnostics:
            return {"in": 0, "processed": 0, "dropped": 0, "dropped_queue": 0}
        v = {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values}
        queue = int(v.get("dropped (queue full)", 0))
        return {"in": int(v.get("frames received", v.get("frames in", 0))), "processed": int(v.get("frames processed", 0)),
                "dropped": int(v.get("frames dropped", queue)), "dropped_queue": queue}

    def ask_loop(self, period_s: float, stop: threading.Event) -> None:
        """A planner: its own node and executor, one ~/ask every ``period_s``."""
        from rclpy.executors import SingleThreadedExecutor

        from spatial_ttt_ros.ros.stream_io import NodeClient

        node = self.rclpy.create_node("bench_soak_asker")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        client = NodeClient(node, timeout=30.0, executor=executor)
        try:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    ok = client.ask(QUESTION).success
                except TimeoutError:
                    ok = False
                with self.lock:
                    self.latencies.append(time.perf_counter() - t)
                    self.failed_asks += 0 if ok else 1
                stop.wait(max(0.0, period_s - (time.perf_counter() - t)))
        finally:
            executor.remove_node(node)
            node.destroy_node()

    def take_latencies(self) -> np.ndarray:
        with self.lock:
            lat, self.latencies = np.asarray(self.latencies) * 1e3, []
        return lat


def run(args: argparse.Namespace) -> int:
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
    from spatial_ttt_ros.sim.stream import simulate_stream

    s = simulate_stream(seed=7, n_rooms=2, n_frames=120, rate_hz=10.0, width=args.width, height=args.height)
    frames = [f for f, _ in s.frames()]
    tmp = Path(tempfile.mkdtemp(prefix="spatial_ttt_soak_"))
    params = write_params(tmp / "params.yaml", {"detector": "labels", "method": args.method, "memory_dir": str(tmp / "m"),
                                                "diagnostics_period_s": 0.5, "description_period_s": 1.0})
    isolate_ros_domain()
    proc = NodeProcess(params, command=node_command())
    rclpy.init()
    node = rclpy.create_node("bench_soak")
    samples: list[dict] = []
    stop = threading.Event()
    failed_asks = 0
    try:
        client = NodeClient(node, timeout=60.0)
        client.wait(120.0)
        pub = StreamPublisher(node, pose="pose", labels=True)
        pub.wait_for_subscribers(60.0, spin=lambda t: rclpy.spin_once(node, timeout_sec=t))
        soak = _Soak(rclpy, node, pub, frames)
        node.create_subscription(DiagnosticArray, "/diagnostics", soak.on_diagnostics, 10)
        asker = threading.Thread(target=soak.ask_loop, args=(args.ask_period, stop), daemon=True)
        asker.start()
        t0 = time.monotonic()
        next_sample, published = t0, 0
        end = t0 + args.minutes * 60.0
        while time.monotonic() < end:
            soak.publish_one()
            published += 1
            rclpy.spin_once(node, timeout_sec=0.0)
            now = time.monotonic()
            if now >= next_sample:
                c = soak.counters()
                lat = soak.take_latencies()
                samples.append({"t_min": (now - t0) / 60.0, **_proc_stats(proc.proc.pid), "published": published,
                                **c, "asks": int(lat.size),
                                "ask_p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                                "ask_p95_ms": float(np.percentile(lat, 95)) if lat.size else float("nan")})
                print(f"  {samples[-1]['t_min']:6.2f} min: RSS {samples[-1]['rss_mib']:.1f} MiB, "
                      f"{samples[-1]['threads']} threads, {samples[-1]['fds']} fds, processed {c['processed']}, "
                      f"dropped {c['dropped']}, ask p95 {samples[-1]['ask_p95_ms']:.0f} ms", flush=True)
                next_sample = now + args.sample
            delay = t0 + published / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        stop.set()
        asker.join(30.0)
        failed_asks = soak.failed_asks
    finally:
        stop.set()
        node.destroy_node()
        rclpy.shutdown()
        code = proc.stop()
    log = proc.log()
    errors = [line for line in log.splitlines() if "[ERROR]" in line or "[FATAL]" in line or "Traceback" in line]
    after_1min = [s for s in samples if s["t_min"] >= 1.0] or samples
    growth = (after_1min[-1]["rss_mib"] / after_1min[0]["rss_mib"] - 1.0) if after_1min else float("nan")
    doc = {"benchmark": "soak", "method": args.method, "rate_hz": args.rate, "minutes": args.minutes,
           "ask_period_s": args.ask_period, "rss_growth_after_1min": growth, "exit_code": code,
           "failed_asks": failed_asks,
           "error_lines": errors[:50], "samples": samples}
    write_json(args.json, doc)
    png = args.json.with_suffix(".png")
    if samples:
        _plot(samples, png, f"soak: {args.method}, {args.rate:g} Hz, {args.minutes:g} min")
    print(f"soak {args.method}: RSS growth after the first minute {100 * growth:.2f} %, "
          f"{len(errors)} error line(s), {failed_asks} failed ask(s), exit code {code}; {args.json}, {png}")
    return 0 if code == 0 and not errors and not failed_asks else 1
