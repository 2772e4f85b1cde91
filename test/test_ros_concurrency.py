"""Questions never hold up frames, and every frame is accounted for (issue 13), over DDS.

The node runs as its own process (object map, label images, a small queue and input
buffer so that frames really are lost); this process streams frames at it as fast as it
can while four clients, each its own ROS node on its own thread, alternate ``~/ask`` and
``~/describe``. Checked:

- every /diagnostics message during the run satisfies received = processed + dropped +
  in flight, with no stage below zero;
- at the end: received = depth messages published (reliable QoS, nothing lost in DDS),
  nothing in flight, processed + dropped = published, and the frames the synchroniser
  had to give up (labels withheld for some frames, colour withheld for a run longer
  than the input buffer: evictions) are counted exactly;
- every question was answered, each from a snapshot whose stamp is a published frame's;
- the node's own books of the service calls (/diagnostics): every request the clients sent
  was received and answered (received = answered = sent), and the middleware refused none
  of its answers. A call the node received and answered but a client never got back would
  be lost in transport: the clients call with ``stream_io.service_qos()`` (KEEP_ALL replies),
  without which about one call in 950 was lost that way under load (see there).
"""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.slow  # a running node: tens of seconds

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from spatial_ttt_ros.ros.stream_io import (  # noqa: E402
    NodeClient,
    NodeProcess,
    StreamPublisher,
    isolate_ros_domain,
    node_command,
    reliable_qos,
    write_params,
)
from spatial_ttt_ros.sim.stream import simulate_stream  # noqa: E402

N_FRAMES = 240
DT = 0.02  # stamp step [s]: a run of NO_COLOR frames stays within the node's 1 s time-jump gap
SYNC_BUFFER = 20  # room for the executor taking one topic a few messages ahead of another
NO_LABELS = {30, 31, 100, 170}  # depth without its label image: the anchor never pairs
NO_COLOR = set(range(120, 165))  # a run of 45 > SYNC_BUFFER: 25 anchors evicted, 20 never paired
N_CLIENTS = 4
LOST_AFTER_S = 10.0  # a call unanswered this long is lost (none may be)


def _values(msg) -> dict[str, str]:
    return {kv.key: kv.value for kv in msg.status[0].values}


def _ledger(values: dict[str, str]) -> tuple[int, int, int, int]:
    return (int(values["frames received"]), int(values["frames processed"]), int(values["frames dropped"]),
            int(values["frames in flight"]))


def _client_loop(index: int, stop: threading.Event, results: list, made: list) -> None:
    node = rclpy.create_node(f"concurrency_client_{index}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    client = NodeClient(node, timeout=LOST_AFTER_S, executor=executor)
    made.append(client)
    try:
        _warm_up(node, executor, made)
        i = 0
        while not stop.is_set():
            t = time.perf_counter()
            try:
                if i % 2 == 0:
                    r = client.ask("How many chairs are in this room?")
                    results.append(("ask", time.perf_counter() - t, r.success, r.answer.header.stamp, r.error))
                else:
                    r = client.describe()
                    results.append(("describe", time.perf_counter() - t, r.success, r.description.header.stamp, r.error))
            except TimeoutError as exc:  # counted: a call that never came back (which client, which call)
                results.append(("lost", time.perf_counter() - t, True, None, f"client {index} call {i}: {exc}"))
            i += 1
    except Exception as exc:  # noqa: BLE001 - anything else fails the test
        results.append(("error", 0.0, False, None, f"{type(exc).__name__}: {exc}"))
    finally:
        executor.remove_node(node)
        node.destroy_node()


def _warm_up(node, executor, made: list) -> None:
    """One answered call before the measured ones, so that discovery is not in their latency
    (the node's answer to a client whose reply reader it has not matched yet would be refused
    by the middleware: counted as "service answers not sent", which must stay 0)."""
    warm = NodeClient(node, timeout=5.0, executor=executor)
    made.append(warm)
    for _ in range(6):
        try:
            warm.describe()
            return
        except TimeoutError:
            continue
    raise TimeoutError("no answer from ~/describe in 6 tries")


def test_frames_accounted_while_clients_ask(tmp_path):
    s = simulate_stream(seed=11, n_rooms=1, n_frames=40, rate_hz=10.0, width=160, height=120)
    base = [f for f, _ in s.frames()]
    isolate_ros_domain()
    params = write_params(tmp_path / "params.yaml", {
        "detector": "labels", "method": "object_map", "memory_dir": str(tmp_path / "memories"),
        "qos_reliability": "reliable", "qos_depth": 1000,  # nothing lost before the node: DDS keeps it all
        "queue_size": 2, "sync_buffer_size": SYNC_BUFFER,  # but the node itself must drop
        "sync_tolerance_s": DT / 4,  # a frame pairs only with its own messages, not a neighbour's
        "diagnostics_period_s": 0.1, "description_period_s": 0.0,
    })
    proc = NodeProcess(params, command=node_command())
    rclpy.init()
    node = rclpy.create_node("concurrency_test")
    diagnostics: list = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 100)
    stop = threading.Event()
    results: list = []
    clients: list[threading.Thread] = []
    made: list[NodeClient] = []  # every client, for the requests each sent
    try:
        client = NodeClient(node, timeout=30.0)
        made.append(client)
        client.wait(60.0)
        pub = StreamPublisher(node, pose="pose", labels=True, depth_encoding="16UC1", qos=reliable_qos(1000))
        pub.wait_for_subscribers(30.0, spin=lambda t: rclpy.spin_once(node, timeout_sec=t))
        clients = [threading.Thread(target=_client_loop, args=(k, stop, results, made), daemon=True)
                   for k in range(N_CLIENTS)]
        for c in clients:
            c.start()
        stamps = []
        t0 = time.monotonic()
        for i in range(N_FRAMES):
            stamp = 1000.0 + DT * i
            skip = ("labels",) if i in NO_LABELS else ("color",) if i in NO_COLOR else ()
            pub.publish(base[i % len(base)], stamp=stamp, skip=skip)
            stamps.append(stamp)
            rclpy.spin_once(node, timeout_sec=0.0)
            time.sleep(max(0.0, t0 + (i + 1) / 60.0 - time.monotonic()))  # 60 Hz: faster than the node here
        time.sleep(1.0)  # the clients keep asking while the node catches up
        stop.set()
        for c in clients:
            c.join(40.0)

        # Settled: everything published has arrived and left the pipeline one way or another.
        deadline, last = time.monotonic() + 60.0, None
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
            if diagnostics:
                last = _values(diagnostics[-1])
                received, processed, dropped, in_flight = _ledger(last)
                if received == N_FRAMES and in_flight == 0:
                    break
        assert last is not None, f"no /diagnostics\n{proc.log()[-3000:]}"
        for msg in diagnostics:  # the identity in every message, under load included
            v = _values(msg)
            received, processed, dropped, in_flight = _ledger(v)
            assert received == processed + dropped + in_flight, v
            stages = dict(kv.split(" ") for kv in v["frames in flight by stage"].split(", "))
            assert all(int(n) >= 0 for n in stages.values()), v
        received, processed, dropped, in_flight = _ledger(last)
        assert received == N_FRAMES and in_flight == 0, last
        assert processed + dropped == N_FRAMES
        by = {k[len("dropped "):]: int(v) for k, v in last.items() if k.startswith("dropped ") and k != "dropped (queue full)"}
        assert sum(by.values()) == dropped, by
        # The synchroniser's losses: at least the label-less frames and the colour-less run (more when
        # the loaded executor takes one topic far ahead of another), evictions among them.
        # (Whether a lost frame is counted as an overflow eviction or as having no partner depends on
        # the order the loaded executor delivers the topics in: both are synchroniser losses.)
        assert by.get("sync_no_partner", 0) + by.get("sync_overflow", 0) >= len(NO_LABELS) + len(NO_COLOR), by
        assert by.get("queue_full", 0) == int(last["dropped (queue full)"])
        # The memory holds what the ledger says was written (the snapshot catches up once idle).
        time.sleep(0.5)
        assert client.frames_seen() == processed == int(last["frames in memory"])

        asks = [r for r in results if r[0] == "ask"]
        describes = [r for r in results if r[0] == "describe"]
        assert len(asks) >= N_CLIENTS and len(describes) >= N_CLIENTS
        failed = [r for r in results if not r[2]]
        assert not failed, failed[:3]
        # The node's books of the service calls, from a /diagnostics message made after the last call.
        asked = time.time()
        deadline, books = time.monotonic() + 10.0, None
        while books is None and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
            fresh = [m for m in diagnostics if m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 > asked]
            books = _values(fresh[-1]) if fresh else None
        assert books is not None, "no /diagnostics after the last call"
        sent = sum(sum(c.sent.values()) for c in made)
        calls = {k: books[k] for k in ("service calls received", "service calls answered", "service answers not sent",
                                       "service calls by service (received/answered)")}
        lost = [r for r in results if r[0] == "lost"]
        # Every request reached the node and was answered: the node dropped nothing.
        assert int(books["service calls received"]) == int(books["service calls answered"]) == sent, (calls, sent, lost)
        assert int(books["service answers not sent"]) == 0, calls
        # And every answer reached its client (KEEP_ALL replies: stream_io.service_qos()).
        assert not lost, (lost, calls)
        published = {round(st, 6) for st in stamps}
        for kind, _, _, header, _ in results:  # each answer is stamped with the newest frame in its snapshot
            if kind == "lost":
                continue
            t = header.sec + header.nanosec * 1e-9
            assert t == 0.0 or round(t, 6) in published, t
        print(f"{len(results)} answers; ask p50 {sorted(r[1] for r in asks)[len(asks) // 2] * 1e3:.1f} ms; "
              f"describe p50 {sorted(r[1] for r in describes)[len(describes) // 2] * 1e3:.1f} ms; {len(lost)} lost; "
              f"ledger {by}; node's service calls {calls}; sent {sent}")
    finally:
        stop.set()
        for c in clients:
            c.join(10.0)
        node.destroy_node()
        rclpy.shutdown()
        code = proc.stop()
        print(proc.log()[-3000:])
        assert code == 0
