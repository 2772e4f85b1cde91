"""Counters, rates and latencies the node reports on /diagnostics (thread-safe, pure Python)."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque


class RateMeter:
    """Events per second over a sliding window of wall-clock time."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.total = 0
        self._created = time.monotonic()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self.total += 1
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            n = len(self._times)
        # Over the full window once the meter is older than it; decays to 0 when events stop.
        span = min(self.window_s, now - self._created)
        return n / span if span > 1e-3 else 0.0


class LatencyStats:
    """Recent durations of one stage: mean, p50, p95, max, in milliseconds."""

    def __init__(self, keep: int = 500) -> None:
        self._values: deque[float] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self.count = 0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(seconds)
            self.count += 1

    def summary(self) -> dict[str, float]:
        with self._lock:
            values = sorted(self._values)
        if not values:
            return {}

        def pct(p: float) -> float:
            return values[min(len(values) - 1, int(round(p * (len(values) - 1))))] * 1e3

        return {
            "mean_ms": sum(values) / len(values) * 1e3,
            "p50_ms": pct(0.5),
            "p95_ms": pct(0.95),
            "max_ms": values[-1] * 1e3,
        }


class ServiceCalls:
    """The node's side of every service call: requests its handlers took, answers they returned
    (rclpy's executor sends each one on return), and answers the middleware refused to send
    (rclpy warns "failed to send response": the client's reply reader was not matched).

    ``received == answered`` once no call is running, and ``not_sent == 0``, say the node
    answered every request it got; a client still missing an answer lost it in transport."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.not_sent = 0

    def receive(self, service: str) -> None:
        with self._lock:
            self.received[service] += 1

    def answer(self, service: str) -> None:
        with self._lock:
            self.answered[service] += 1

    def unsent(self) -> None:
        with self._lock:
            self.not_sent += 1

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "received": sum(self.received.values()),
                "answered": sum(self.answered.values()),
                "not_sent": self.not_sent,
                "by_service": {k: (self.received[k], self.answered[k]) for k in sorted(self.received)},
            }


class NodeStats:
    """Everything the node counts: rates, per-stage latency, problems by kind, the last error."""

    STAGES = ("decode", "detect", "tokenize", "memory", "read_out", "answer")

    def __init__(self) -> None:
        self.input_rate = RateMeter()  # synced frames offered to the worker
        self.processed_rate = RateMeter()  # frames written into the memory
        self.latency = {stage: LatencyStats() for stage in self.STAGES}
        self.end_to_end = LatencyStats()  # frame stamp (arrival) to processed
        self.services = ServiceCalls()
        self.problems: Counter[str] = Counter()  # kind -> count
        self._lock = threading.Lock()
        self.last_error = ""
        self.last_error_time = 0.0

    def problem(self, kind: str, message: str) -> None:
        with self._lock:
            self.problems[kind] += 1
            self.last_error = f"{kind}: {message}"
            self.last_error_time = time.monotonic()

    def problems_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.problems)


def safe_text(text: object, limit: int = 200) -> str:
    """A string from a message or a request, safe for a log line or /diagnostics: control
    characters escaped (no forged log lines, no terminal escapes) and cut to ``limit``."""
    s = str(text)
    cut = len(s) > limit
    s = s[:limit]
    s = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in s)
    if len(s) > limit:  # escapes made it longer
        s = s[:limit]
    return s + (f"... ({len(str(text))} chars)" if cut else "")


class FrameLedger:
    """Where every frame is, from the subscription to the memory: one count per place, moved
    under one lock, so ``processed + dropped + in flight == received`` holds in every
    snapshot (not only once the node is idle), and a frame lost anywhere has a reason.

    A *frame* is one anchor (depth) message. Places in flight: ``sync`` (waiting for its
    colour/labels/pose partners), ``checks`` (paired, header and stamp checks), ``queue``
    (the worker's bounded queue), ``worker`` (being decoded and written).
    """

    STAGES = ("sync", "checks", "queue", "worker")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.processed = 0
        self.in_flight = {stage: 0 for stage in self.STAGES}
        self.dropped: Counter[str] = Counter()  # reason -> frames

    def receive(self) -> None:
        with self._lock:
            self.received += 1
            self.in_flight["sync"] += 1

    def move(self, src: str, dst: str, n: int = 1) -> None:
        with self._lock:
            self.in_flight[src] -= n
            self.in_flight[dst] += n

    def drop(self, stage: str, reason: str, n: int = 1) -> None:
        if n <= 0:
            return
        with self._lock:
            self.in_flight[stage] -= n
            self.dropped[reason] += n

    def done(self, stage: str = "worker") -> None:
        """A frame written into the memory."""
        with self._lock:
            self.in_flight[stage] -= 1
            self.processed += 1

    def snapshot(self) -> dict:
        """Consistent counts: received, processed, dropped (total), dropped_by (reason), in_flight (stage)."""
        with self._lock:
            return {
                "received": self.received,
                "processed": self.processed,
                "dropped": sum(self.dropped.values()),
                "dropped_by": dict(self.dropped),
                "in_flight": dict(self.in_flight),
            }
