"""The node's inputs: subscription callbacks, stamp pairing, checks, and the offer to the worker.

A mixin of ``ros.node.SpatialTTTNode``. Callbacks never wait on the model: colour, depth,
labels and pose are paired by stamp (``frame_sync``), checked (camera_info present,
encodings, header sizes, the stream's time line) and offered to the bounded drop-oldest
queue (``worker``); every frame that leaves on the way is counted in the frame ledger."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from spatial_ttt_ros.ros import conversions as conv
from spatial_ttt_ros.ros.frame_sync import (
    DROP_BACK,
    HELD,
    NEW_LINE_BACK,
    NEW_LINE_FORWARD,
    OUT_OF_ORDER,
    SyncedSet,
    TimeLine,
)
from spatial_ttt_ros.ros.input_limits import compressed_image_size
from spatial_ttt_ros.ros.params import NodeParams
from spatial_ttt_ros.ros.stats import safe_text
from spatial_ttt_ros.ros.worker import FrameWorker

MAX_STAMP_S = 2.0**31  # builtin_interfaces/Time.sec is an int32


@dataclass
class FramePayload:
    synced: SyncedSet
    K: np.ndarray
    frame_id: str  # the depth image's frame (TF lookups)


class InputHandling:
    """Input callbacks of ``SpatialTTTNode`` (they use its state: sync, time line, worker, stats)."""

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            K = conv.camera_info_to_K(msg)
        except ValueError as exc:
            self._problem("bad_camera_info", str(exc))
            return
        self._camera_info, self._K = msg, K

    def _on_color(self, msg) -> None:
        self._add("color", msg)

    def _on_depth(self, msg: Image) -> None:
        self._add("depth", msg)

    def _on_labels(self, msg: Image) -> None:
        self._add("labels", msg)

    def _take_pose_topic(self, topic: str) -> bool:
        if self._pose_topic_in_use is None:
            self._pose_topic_in_use = topic
            self.get_logger().info(f"camera pose from {topic}")
        return self._pose_topic_in_use == topic

    def _on_pose(self, msg: PoseStamped) -> None:
        topic = self._topic("pose")
        if not self._take_pose_topic(topic):
            return
        try:
            T = conv.pose_to_matrix(msg.pose)
        except ValueError as exc:
            self._problem("bad_pose", f"{topic}: {exc}")
            return
        self._check_world_frame(msg.header.frame_id, topic)
        self._add("pose", msg, T)

    def _on_odom(self, msg: Odometry) -> None:
        topic = self._topic("odom")
        if not self._take_pose_topic(topic):
            return
        try:
            T = conv.pose_to_matrix(msg.pose.pose) @ self._camera_in_base
        except ValueError as exc:
            self._problem("bad_pose", f"{topic}: {exc}")
            return
        self._check_world_frame(msg.header.frame_id, topic)
        self._add("pose", msg, T)

    def _check_world_frame(self, frame_id: str, topic: str) -> None:
        params = self.params
        if params is not None and frame_id and frame_id.lstrip("/") != params.world_frame:
            self._problem(
                "pose_frame",
                f"{topic} is in frame '{safe_text(frame_id, 64)}', not world_frame '{params.world_frame}'; used as if it were",
            )

    def _add(self, stream: str, msg, item=None) -> None:
        # A frame is a depth message (the synchroniser's anchor): counted as received here, and
        # from now on every way out of the node is counted in the ledger.
        anchor = stream == "depth"
        if anchor:
            self.ledger.receive()
        stamp = conv.stamp_to_sec(msg.header.stamp)
        if not (0.0 <= stamp < MAX_STAMP_S):
            if anchor:
                self.ledger.drop("sync", "bad_stamp")
            self._problem("bad_stamp", f"{stream} message stamped {stamp:.3f} s: dropped (stamps are seconds since the epoch)")
            return
        with self._sync_lock:
            sync = self._sync
            if sync is None:
                if anchor:
                    self.ledger.drop("sync", "inactive")
                return
            result = sync.add(stream, stamp, msg if item is None else item)
            # Counted under the sync lock, so the ledger's "sync" count is the anchors buffered.
            self.ledger.drop("sync", "time_jump", result.discarded_on_jump)
            for d in result.dropped:  # evicted from a full buffer, or proven to have no partner
                self.ledger.drop("sync", "sync_overflow" if d.overflow else "sync_no_partner")
            self.ledger.move("sync", "checks", len(result.sets))
        if result.time_jump:
            self._problem(
                "input_buffers_cleared",
                f"time jumped back on {stream} (to {stamp:.3f} s): input buffers cleared"
                + (f", {result.discarded_on_jump} waiting frame(s) discarded" if result.discarded_on_jump else ""),
            )
        for d in result.dropped:
            for missing in d.missing:
                why = "in time (input buffer full)" if d.overflow else f"within {sync.tolerance} s of it"
                kind = {"pose": "no_pose", "color": "no_color", "labels": "no_labels"}.get(missing, f"no_{missing}")
                hint = ""
                if d.overflow and missing == "labels":
                    hint = f" (detector 'labels' needs {self._topic('labels')}; a plain camera wants detector 'onnx')"
                elif d.overflow and missing == "pose":
                    hint = f" (is anything publishing {self._topic('pose')} or {self._topic('odom')}? see pose_source)"
                self._problem(kind, f"frame at {d.stamp:.3f} s dropped: no {missing} message {why}{hint}")
                break  # one problem per dropped frame
        for s in result.sets:
            self._offer(s)

    def _offer(self, s: SyncedSet) -> None:
        """Cheap header checks, stamp order, then the worker's queue (never blocks)."""
        # Locals: a lifecycle transition may clear these while a callback is still running.
        worker, params, K, timeline = self._worker, self.params, self._K, self._timeline
        if worker is None or params is None or timeline is None:
            self.ledger.drop("checks", "inactive")
            return  # deactivated while this frame was being paired
        self.stats.input_rate.tick()
        reason = self._checked(s, worker, params, K, timeline)
        if reason is not None:
            self.ledger.drop("checks", reason)
            return
        if not worker.offer(FramePayload(s, K, s.items["depth"].header.frame_id)):
            self._problem("queue_full", f"worker busy: oldest queued frame dropped (queue_size {worker.capacity})")

    def _checked(self, s: SyncedSet, worker: FrameWorker, params: NodeParams, K, timeline: TimeLine) -> str | None:
        """None when the frame may go to the worker, else why it is dropped (logged and counted)."""
        depth, color = s.items["depth"], s.items["color"]
        if K is None:
            self._problem("no_camera_info", f"frame at {s.stamp:.3f} s dropped: no camera_info received yet on {self._topic('camera_info')}")
            return "no_camera_info"
        # The stamp first: it is the stream's clock even when the frame's content is refused
        # below, so refused frames do not make the next good ones look like a jump.
        with self._sync_lock:
            last = timeline.last
            verdict = timeline.check(s.stamp, follow_back=params.on_time_jump == "reset")
        if verdict == OUT_OF_ORDER:
            self._problem("out_of_order", f"frame at {s.stamp:.3f} s is not newer than the last ({last:.3f} s): dropped")
            return "out_of_order"
        if verdict == HELD:
            self._problem("time_outlier", f"frame at {s.stamp:.3f} s is far from the stream's time ({last:.3f} s): dropped "
                          f"unless {timeline.confirm} frames in a row agree on the new time")
            return "time_outlier"
        if verdict == DROP_BACK:
            self._problem("time_jump", f"stamp went back {last - s.stamp:.2f} s: frame at {s.stamp:.3f} s dropped (on_time_jump=drop)")
            return "time_jump"
        if verdict == NEW_LINE_BACK:
            self._problem("time_jump", f"stamp went back {last - s.stamp:.2f} s (to {s.stamp:.3f} s) for "
                          f"{timeline.confirm} frames: memory reset, new stream")
            worker.new_generation()
        elif verdict == NEW_LINE_FORWARD:
            self.get_logger().warning(f"stamps jumped forward {s.stamp - last:.2f} s (to {s.stamp:.3f} s): the stream goes on")
        reason = self._header_problem(depth, color, s.items.get("labels"), params.max_image_pixels)
        if reason is not None:
            self._problem(*reason)
            return reason[0]
        return None

    def _header_problem(self, depth: Image, color, labels, max_pixels: int) -> tuple[str, str] | None:
        # Size first, on the header alone: nothing big is decoded or copied before this.
        if depth.width * depth.height > max_pixels:
            return "image_too_large", f"depth is {depth.width}x{depth.height}, over max_image_pixels {max_pixels}"
        if isinstance(color, CompressedImage):
            size = compressed_image_size(color.data)
            if size is None:
                return "bad_compressed_image", f"compressed colour (format '{safe_text(color.format, 40)}') is not a PNG or JPEG"
            if size[0] * size[1] > max_pixels:
                return "image_too_large", f"compressed colour decodes to {size[0]}x{size[1]}, over max_image_pixels {max_pixels}"
        denc = depth.encoding.lower()
        if denc not in conv.DEPTH_ENCODINGS:
            return "unsupported_encoding", f"depth encoding '{safe_text(depth.encoding, 40)}' (use 16UC1 millimetres or 32FC1 metres)"
        if isinstance(color, Image):
            if color.encoding.lower() not in conv.COLOR_ENCODINGS:
                return "unsupported_encoding", f"colour encoding '{safe_text(color.encoding, 40)}' (use rgb8, bgr8 or mono8)"
            if (color.width, color.height) != (depth.width, depth.height):
                return (
                    "size_mismatch",
                    f"colour is {color.width}x{color.height} but depth is {depth.width}x{depth.height}; "
                    "publish depth registered to the colour image",
                )
        if labels is not None:
            if labels.encoding.lower() not in conv.LABEL_ENCODINGS:
                return "unsupported_encoding", f"label encoding '{safe_text(labels.encoding, 40)}' (use 16UC1 or mono8)"
            if (labels.width, labels.height) != (depth.width, depth.height):
                return "size_mismatch", f"labels are {labels.width}x{labels.height} but depth is {depth.width}x{depth.height}"
        info = self._camera_info
        if info.width and info.height and (info.width, info.height) != (depth.width, depth.height):
            return "size_mismatch", f"camera_info is {info.width}x{info.height} but depth is {depth.width}x{depth.height}"
        return None

    # ------------------------------------------------------------------ worker side
