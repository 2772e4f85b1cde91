"""The worker thread: takes synced frames from a bounded queue and feeds the model.

Subscription callbacks only ``offer()`` and return; when the queue is full the oldest
frame is dropped and counted (a robot wants the newest view, not a growing lag).
Each item carries the memory *generation* it belongs to: ``~/reset`` and a time jump
bump the generation, so frames queued before them are discarded, and the first frame
of a new generation resets the memory before it is written (in the worker, in order).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class WorkItem:
    generation: int
    payload: Any
    enqueued: float  # time.monotonic() at offer


class FrameWorker:
    def __init__(
        self,
        capacity: int,
        process: Callable[[Any], None],
        on_new_generation: Callable[[int], None],
        on_error: Callable[[BaseException, Any], None],
        name: str = "spatial_ttt_worker",
    ) -> None:
        self.capacity = max(1, int(capacity))
        self._process = process
        self._on_new_generation = on_new_generation
        self._on_error = on_error
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
        """Queue a frame; never blocks. Returns False when an older frame had to be dropped."""
        with self._cond:
            dropped = False
            while len(self._queue) >= self.capacity:
                self._queue.popleft()
                self.dropped += 1
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
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait(0.5)
                if self._stop:
                    return
                item = self._queue.popleft()
                self._busy = True
                need_reset = item.generation > self.worker_generation
                stale = item.generation < self.generation
            try:
                if stale:
                    with self._cond:
                        self.discarded += 1
                    continue
                if need_reset:
                    self._on_new_generation(item.generation)
                    with self._cond:
                        self.worker_generation = item.generation
                self._process(item)
                with self._cond:
                    self.processed += 1
            except Exception as exc:  # one bad frame must not stop the worker
                self._on_error(exc, item)
            finally:
                with self._cond:
                    self._busy = False
