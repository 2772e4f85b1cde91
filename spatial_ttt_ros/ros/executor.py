"""The node's executor: rclpy's MultiThreadedExecutor without re-queuing work that waits.

rclpy 7.1 (Jazzy) yields every task that has not started executing each time the executor
wakes up (a callback starting or finishing, a message or request arriving). A
MultiThreadedExecutor only *queues* a yielded task in its thread pool, so a task waiting there
for a free thread is queued again at every wake-up, and appended again to the list of futures
that every spin scans (ros2/rclpy#1452; later rclpy yields a ready task once). Under load the
spin thread spends its time re-queuing and scanning, holding the GIL that the workers need:
sampled with py-spy in the node at 30 Hz with 8 service clients, that was most of the
process's CPU time (test/test_ros_executor.py: about 2,000 hand-offs to the pool for 12
callbacks in 1.2 s).

Here a task already waiting in the pool is not queued again; the spin thread pauses for a
moment instead, which lets a worker take the GIL and start it. Everything else is rclpy's.
"""

from __future__ import annotations

import threading
import time

from rclpy.executors import (
    ConditionReachedException,
    ExternalShutdownException,
    MultiThreadedExecutor,
    ShutdownException,
    TimeoutException,
)

QUEUED_BACKOFF_S = 0.0005  # the spin thread's pause when the work it found is already queued


class NodeExecutor(MultiThreadedExecutor):
    def __init__(self, num_threads: int, context=None) -> None:
        super().__init__(num_threads=num_threads, context=context)
        self._queued: set = set()  # tasks in the thread pool's queue, not started yet
        self._queued_lock = threading.Lock()

    def _spin_once_impl(self, timeout_sec=None, wait_condition=lambda: False) -> None:
        try:
            handler, _entity, _node = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (ExternalShutdownException, ShutdownException, TimeoutException, ConditionReachedException):
            return
        with self._queued_lock:
            queued = handler in self._queued
            if not queued:
                self._queued.add(handler)
        if queued:
            time.sleep(QUEUED_BACKOFF_S)
            return

        def run() -> None:
            with self._queued_lock:
                self._queued.discard(handler)
            handler()

        self._executor.submit(run)
        self._futures.append(handler)
        for future in self._futures[:]:
            if future.done():
                self._futures.remove(future)
                future.result()  # raise any exception of a callback, as rclpy does
