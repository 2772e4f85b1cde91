"""The node's periodic outputs: /diagnostics, ~/scene_description and ~/markers.

A mixin of ``ros.node.SpatialTTTNode``; everything here reads the latest read-out
snapshot and the frame ledger, never the memory itself."""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from spatial_ttt_ros.ros import conversions as conv


class StatusPublishing:
    """Periodic publishing of ``SpatialTTTNode``."""

    def _publish_description(self) -> None:
        desc_pub, marker_pub = self._pubs.get("description"), self._pubs.get("markers")
        want_desc = desc_pub is not None and desc_pub.get_subscription_count() > 0
        want_markers = marker_pub is not None and marker_pub.get_subscription_count() > 0
        read_out = self._read_out
        if not (want_desc or want_markers) or read_out is None:
            return  # building messages costs CPU: only for listeners
        try:
            msg = self._describe_msg(read_out)
        except Exception as exc:
            self._problem("describe_error", f"{type(exc).__name__}: {exc}")
            return
        if want_desc:
            desc_pub.publish(msg)
        if want_markers:
            marker_pub.publish(conv.inventory_to_markers(read_out.inventory, msg.header.stamp, self.params.world_frame))

    def diagnostics_status(self) -> DiagnosticStatus:
        st = self.stats
        worker = self._worker
        problems = st.problems_snapshot()
        # No lock: the counters of the latest snapshot, and the frame count (one int) read live.
        pipeline, read_out = self.pipeline, self._read_out
        counters = dict(read_out.counters) if read_out is not None and pipeline is not None else {}
        if pipeline is not None:
            counters["frames_processed"] = pipeline.frames_processed
        ledger = self.ledger.snapshot()
        calls = st.services.snapshot()
        in_flight = sum(ledger["in_flight"].values())
        values: list[tuple[str, str]] = [
            ("state", self._state_label()),
            ("device", self.device + (" fp16" if getattr(self, "_fp16", False) else "")),
            ("method", self.params.method if self.params else ""),
            ("qa_backend", self._qa.summary() if self._qa is not None else ""),
            ("detector", self.params.detector if self.params else ""),
            ("input rate [Hz]", f"{st.input_rate.rate():.2f}"),
            ("processed rate [Hz]", f"{st.processed_rate.rate():.2f}"),
            ("frames in", str(st.input_rate.total)),
            ("frames processed", str(ledger["processed"])),  # written into the memory (the ledger's count)
            ("frames in memory", str(counters.get("frames_processed", 0))),
            ("dropped (queue full)", str(worker.dropped if worker else 0)),
            ("discarded (reset)", str(worker.discarded if worker else 0)),
            ("queue depth", f"{worker.depth() if worker else 0}/{worker.capacity if worker else 0}"),
            ("state bytes", str(counters.get("state_bytes", 0))),
            ("answers given", str(self._answers_given)),
            # The node's side of the service calls: a request taken is answered (rclpy sends the
            # answer when the handler returns) unless the middleware refuses (not sent).
            ("service calls received", str(calls["received"])),
            ("service calls answered", str(calls["answered"])),
            ("service answers not sent", str(calls["not_sent"])),
            ("service calls by service (received/answered)",
             ", ".join(f"{k} {r}/{a}" for k, (r, a) in calls["by_service"].items())),
            # Every depth frame that reached the node, by where it is now (one consistent snapshot):
            # frames received = frames processed + frames dropped + frames in flight, always.
            ("frames received", str(ledger["received"])),
            ("frames dropped", str(ledger["dropped"])),
            ("frames in flight", str(in_flight)),
            ("frames in flight by stage", ", ".join(f"{k} {v}" for k, v in ledger["in_flight"].items())),
            ("read-out age [s]", f"{time.monotonic() - read_out.made_at:.3f}" if read_out is not None else ""),
            ("read-out frames behind", str(max(0, counters.get("frames_processed", 0) - read_out.frames)) if read_out is not None else ""),
        ]
        values += [(f"dropped {reason}", str(n)) for reason, n in sorted(ledger["dropped_by"].items())]
        for stage, lat in [*st.latency.items(), ("queue+process", st.end_to_end)]:
            s = lat.summary()
            if s:
                values.append((f"latency {stage} p50/p95/max [ms]", f"{s['p50_ms']:.1f}/{s['p95_ms']:.1f}/{s['max_ms']:.1f}"))
        if counters:
            values.append(("invalid depth fraction", f"{counters.get('invalid_depth_fraction', 0.0):.3f}"))
            values.append(("detections", str(counters.get("detections", 0))))
            values.append(("observations", str(counters.get("observations", 0))))
        for kind in sorted(problems):
            values.append((f"problem {kind}", str(problems[kind])))
        values.append(("last error", st.last_error))

        total = sum(problems.values())
        drops = worker.dropped if worker else 0
        level, message = DiagnosticStatus.OK, "ok"
        state = self._state_label()
        if self.pipeline is None:
            level, message = DiagnosticStatus.ERROR, "not configured" + (f": {self.configure_error}" if self.configure_error else "")
        elif state != "active":
            level, message = DiagnosticStatus.WARN, f"{state}: not taking frames (ros2 lifecycle set <node> activate)"
        elif total > self._last_problem_total or drops > self._last_drops:
            level = DiagnosticStatus.WARN
            message = st.last_error if total > self._last_problem_total else "dropping frames: worker slower than input"
        self._last_problem_total, self._last_drops = total, drops
        return DiagnosticStatus(
            level=level,
            name=f"{self.get_fully_qualified_name()}: spatial memory",
            message=message,
            hardware_id=self.device,
            values=[KeyValue(key=k, value=v) for k, v in values],
        )

    def _publish_diagnostics(self) -> None:
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [self.diagnostics_status()]
        self._diag_pub.publish(arr)


# ----------------------------------------------------------------------------- entry point
