"""The worker thread: takes synced frames from a bounded queue and feeds the model.

Subscription callbacks only ``offer()`` and return; when the queue is full the oldest
frame is dropped and counted (a robot wants the newest view, not a growing lag).
Each item carries the memory *generation* it belongs to: ``~/reset`` and a time jump
bump the generation, so frames queued before them are discarded, and the first frame
of a new generation resets the memory before it is written (in the worker, in order).

Every frame that enters ``offer`` leaves through exactly one door of the ``FrameLedger``
(written, dropped when the queue is full, discarded as stale, refused by ``process``,
failed, or left in the queue at stop), so the node's frame accounting stays exact.
``on_idle`` runs on this thread when no frame has come for ``idle_s``: the node uses it
to bring its read-out snapshot up to date once a stream pauses.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from spatial_ttt_ros.ros.stats import FrameLedger


@dataclass
class WorkItem:
    generation: int
    payload: Any
    enqueued: float  # time.monotonic() at offer


class FrameWorker:
    def __init__(
        self,
        capacity: int,
        process: Callable[[Any], str | None],
        on_new_generation: Callable[[int], None],
        on_error: Callable[[BaseException, Any], None],
        name: str = "spatial_ttt_worker",
        ledger: FrameLedger | None = None,
        on_idle: Callable[[], None] | None = None,
        idle_s: float = 0.2,
    ) -> None:
        """``process(item)`` returns None when the frame went into the memory, else the reason
        it did not (a drop, counted under that reason)."""
        self.capacity = max(1, int(capacity))
        self._process = process
        self._on_new_generation = on_new_generation
        self._on_error = on_error
        self._on_idle = on_idle
        self.idle_s = idle_s
        self.ledger = ledger if ledger is not None else FrameLedger()
        self._queue: deque[WorkItem] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self.generation = 0  # newest generation requested
        self.worker_generation = 0  # generation the memory currently holds
        self.dropped = 0  # frames dropped because the queue was full
        self.discarded = 0  # frames discarded because a reset/jump made them stale
        self.processed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            # Frames still queued never reach the memory: counted, so the ledger balances.
            self.ledger.drop("queue", "stopped", len(self._queue))
            self._queue.clear()
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def depth(self) -> int:
        with self._cond:
            return len(self._queue)

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def offer(self, payload: Any) -> bool:
        """Queue a frame (the ledger's ``checks`` -> ``queue``); never blocks. Returns False
        when an older frame had to be dropped."""
        with self._cond:
            if self._stop:
                self.ledger.drop("checks", "stopped")
                return True
            self.ledger.move("checks", "queue")
            dropped = False
            while len(self._queue) >= self.capacity:
                self._queue.popleft()
                self.dropped += 1
                self.ledger.drop("queue", "queue_full")
                dropped = True
            self._queue.append(WorkItem(self.generation, payload, time.monotonic()))
            self._cond.notify()
            return not dropped

    def new_generation(self) -> int:
        """Start a new memory generation: queued frames become stale."""
        with self._cond:
            self.generation += 1
            stale = len(self._queue)
            self._queue.clear()
            self.discarded += stale
            self.ledger.drop("queue", "reset", stale)
            return self.generation

    def mark_generation_applied(self) -> None:
        """The caller reset the memory itself (under the pipeline lock): no reset needed later."""
        with self._cond:
            self.worker_generation = self.generation

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.01)
        return self.idle()

    def _run(self) -> None:
        idle_done = True  # on_idle already ran since the last frame
        while True:
            with self._cond:
                if not self._queue and not self._stop:
                    self._cond.wait(self.idle_s if not idle_done else 0.5)
                if self._stop:
                    return
                if not self._queue:
                    run_idle, idle_done = not idle_done, True
                    item = None
                else:
                    run_idle = False
                    item = self._queue.popleft()
                    self.ledger.move("queue", "worker")
                    self._busy = True
                    need_reset = item.generation > self.worker_generation
                    stale = item.generation < self.generation
            if item is None:
                if run_idle and self._on_idle is not None:
                    try:
                        self._on_idle()
                    except Exception as exc:  # noqa: BLE001 - a read-out failure must not stop the worker
                        self._on_error(exc, None)
                continue
            idle_done = False
            try:
                if stale:
                    with self._cond:
                        self.discarded += 1
                    self.ledger.drop("worker", "reset")
                    continue
                if need_reset:
                    self._on_new_generation(item.generation)
                    with self._cond:
                        self.worker_generation = item.generation
                refused = self._process(item)
                if refused:
                    self.ledger.drop("worker", refused)
                else:
                    with self._cond:
                        self.processed += 1
                    self.ledger.done("worker")
            except Exception as exc:  # one bad frame must not stop the worker
                self.ledger.drop("worker", "frame_error")
                self._on_error(exc, item)
            finally:
                with self._cond:
                    self._busy = False
