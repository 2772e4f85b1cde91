"""The ROS 2 node: camera topics in, spatial answers out (a lifecycle node).

Thin glue over ``pipeline.SpatialMemoryPipeline``:

- configure: read and check the parameters, build the front-end (label image or
  ONNX detector) and the memory model, create publishers and services;
- activate: subscribe to the inputs, start the worker thread and the timers;
- deactivate / cleanup undo those steps. With ``autostart`` (default) the node
  configures and activates itself at start-up, so no lifecycle manager is needed.

Callbacks never wait on the model: inputs are paired by stamp (``frame_sync``),
checked (camera_info present, encodings, sizes, stamp order) and offered to a
bounded drop-oldest queue (``worker``). Only the worker writes and decodes the memory:
after each write it publishes, when due, an immutable ``pipeline.ReadOut`` (inventory,
room, description; every frame for the object map, once per chunk for the learned
memory, and once a stream pauses), and ``~/ask``, ``~/query``, ``~/describe`` and the
periodic outputs answer from the latest one without taking any lock (read-only services
share a reentrant callback group, so they run side by side). The pipeline lock is left
to the worker and the services that change the memory (reset, save, load). Every depth
frame is followed from its subscription to the memory (``stats.FrameLedger``): received =
processed + dropped (by reason) + in flight, on /diagnostics.

Stamps going backwards by more than ``time_jump_threshold_s`` (a replayed bag
restarting) reset the memory with a warning (``on_time_jump: reset``, default) or
drop frames until time passes the last stamp (``drop``); smaller backward steps drop
the frame as out of order. Every problem is logged (throttled per kind) and counted
on /diagnostics; the node stays up.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import traceback
import warnings

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, DurabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from spatial_ttt_ros import topics
from spatial_ttt_ros.frames import CameraFrame
from spatial_ttt_ros.pipeline import ReadOut
from spatial_ttt_ros.msg import Answer as AnswerMsg
from spatial_ttt_ros.msg import SceneDescription
from spatial_ttt_ros.ros import conversions as conv
from spatial_ttt_ros.ros.executor import NodeExecutor
from spatial_ttt_ros.ros.frame_sync import (
    ApproximateTimeSync,
    TimeLine,
)
from spatial_ttt_ros.ros.node_inputs import FramePayload, InputHandling
from spatial_ttt_ros.ros.node_setup import (  # noqa: F401  (build_pipeline, label_id_table: used by the tests)
    available_providers,
    build_pipeline,
    label_id_table,
    pipeline_config,
    resolve_device,
    set_model_threads,
)
from spatial_ttt_ros.ros.node_services import ServiceHandlers
from spatial_ttt_ros.ros.node_status import StatusPublishing
from spatial_ttt_ros.ros.memory_files import (
    remove_orphan_temp_files,
)
from spatial_ttt_ros.ros.params import NodeParams, check_parameter, declare_parameters, read_parameters
from spatial_ttt_ros.ros.stats import FrameLedger, NodeStats, safe_text
from spatial_ttt_ros.ros.worker import FrameWorker, WorkItem
from spatial_ttt_ros.srv import Ask, Describe, LoadMemory, Query, SaveMemory

try:  # optional: not installable from PyPI; present on a robot with ROS from apt
    import tf2_ros
except ImportError:  # pragma: no cover - depends on the machine
    tf2_ros = None

NODE_NAME = "spatial_ttt"
JUMP_CONFIRM_FRAMES = 3  # consecutive frames that must agree before the stream's time line switches
# Executor threads: one for the inputs (a mutually exclusive group), the rest for read-only services
# side by side and the timers; more only adds GIL contention on a small CPU.
EXECUTOR_THREADS = 6

# Input name -> the topic the node subscribes to: relative names (ROS convention), so a
# namespace moves them with the node (/robot1/camera/...) and remapping works as usual.
INPUT_TOPICS = {
    "color": topics.COLOR.lstrip("/"),
    "compressed": topics.COLOR_COMPRESSED.lstrip("/"),
    "depth": topics.DEPTH.lstrip("/"),
    "camera_info": topics.CAMERA_INFO.lstrip("/"),
    "labels": topics.LABELS.lstrip("/"),
    "pose": topics.POSE.lstrip("/"),
    "odom": topics.ODOM.lstrip("/"),
}


# ----------------------------------------------------------------------------- the node


SERVICE_QUEUE_DEPTH = 100


def node_service_qos() -> QoSProfile:
    """QoS of the node's own services (~/ask, ~/query, ~/describe, ~/reset, ~/save_memory,
    ~/load_memory): reliable, volatile, KEEP_LAST 100 instead of ROS's default KEEP_LAST 10.

    The depth bounds the requests the middleware holds for a service until the executor takes
    them: with 10, an eleventh waiting request (many planners, or calls queued behind a slow
    ``~/save_memory``) would push out the oldest unseen one and its client would never get an
    answer. 100 is far above what planners keep in flight (the bench's 8 clients: at most 8).
    Not KEEP_ALL as on the clients (``stream_io.service_qos()``): the profile also sets the
    reply writer, and a reliable KEEP_ALL writer holds every answer until each matched client
    acknowledged it (a stalled client keeps them all) and, once full, makes the answering
    thread wait (Fast DDS: up to max_blocking_time); KEEP_LAST stays bounded and never waits.
    Reliability and durability match the default service QoS, so ``ros2 service call`` and
    other default clients still connect.
    """
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=SERVICE_QUEUE_DEPTH,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


class SpatialTTTNode(InputHandling, ServiceHandlers, StatusPublishing, LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self)
        self.stats = NodeStats()
        self.params: NodeParams | None = None
        self.device = "cpu"
        self.pipeline = None
        self._qa = None  # vlm/qa_backend.QARouter: who answers ~/ask (the VLM stream when qa_backend needs it)
        # The worker's writes and decodes against reset/save/load; never taken by a question.
        self._pipeline_lock = threading.RLock()
        self._read_out: ReadOut | None = None  # replaced whole by the worker, read without a lock
        self.ledger = FrameLedger()  # every depth frame from the subscription to the memory
        self._sync_lock = threading.Lock()
        self._log_times: dict[str, float] = {}
        self._answers_given = 0
        # Our own entity lists under names rclpy's Node does not use: assigning ``self._timers`` or
        # ``self._services`` would replace rclpy's lists, so the parameter and lifecycle services
        # would be garbage-collected or never served and every timer registered twice (issue 11).
        self._input_subs: dict = {}  # input name -> subscription (its topic_name is the resolved name)
        self._periodic_timers: list = []
        self._node_services: list = []
        self._pubs: dict = {}
        self._worker: FrameWorker | None = None
        self._sync: ApproximateTimeSync | None = None
        self._camera_info: CameraInfo | None = None
        self._K: np.ndarray | None = None
        self._pose_topic_in_use: str | None = None  # auto without TF: the first of pose/odom to publish
        self._timeline: TimeLine | None = None  # stamp order of offered frames (set at activate)
        self._label_table: np.ndarray | None = None
        self._camera_in_base = np.eye(4)
        self._tf_buffer = None
        self._tf_listener = None
        self._last_problem_total = 0
        self._last_drops = 0
        self.configure_error = "waiting for configure (autostart: false, or not yet)"
        self._stopping = False  # set by main() on Ctrl-C: callbacks racing the shutdown stay quiet
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # /diagnostics lives as long as the node, so an unconfigured or inactive node still says
        # why ("not configured: <reason>"); its period is re-read at each configure.
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = None
        self._diag_period = 0.0
        self._start_diagnostics(float(self.get_parameter("diagnostics_period_s").value))

    # ------------------------------------------------------------------ lifecycle

    def _on_set_parameters(self, parameters):
        """Parameters are read at configure: refuse changes while configured instead of ignoring them."""
        from rcl_interfaces.msg import SetParametersResult

        if self.pipeline is not None and any(p.name != "use_sim_time" for p in parameters):
            return SetParametersResult(
                successful=False,
                reason="parameters are read at configure: deactivate and clean up the node, set them, configure again",
            )
        for param in parameters:  # choices and shapes that a descriptor's range cannot express
            problem = check_parameter(param.name, param.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def _on_stage(self, stage: str, seconds: float) -> None:
        """Per-stage latency of each frame (pipeline.STAGES: detect, tokenize, memory) for /diagnostics."""
        self.stats.latency[stage].add(seconds)

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            p = read_parameters(self)
            if p.pose_source == "tf" and tf2_ros is None:
                raise ValueError("parameter pose_source=tf but tf2_ros is not installed (use pose, odom or auto)")
            self.device = resolve_device(p.device)
            t0 = time.perf_counter()
            pipeline = build_pipeline(p, self.device, on_stage=self._on_stage)
            if "torch" in sys.modules:  # a memory that runs torch (the object map does not)
                set_model_threads(p.model_threads)
            from spatial_ttt_ros.vlm.qa_backend import build_router  # loads transformers only for vlm/hybrid

            qa = build_router(p.qa_backend, p.vlm_checkpoint, p.vlm_dtype, self.device,
                              p.vlm_keyframe_interval_s, p.vlm_max_new_tokens)
            p.memory_root.mkdir(parents=True, exist_ok=True)
        except Exception as exc:  # a clear one-line reason; the node stays unconfigured
            self.configure_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"configure failed: {self.configure_error}")
            return TransitionCallbackReturn.FAILURE
        self.params = p
        self.pipeline = pipeline
        self._read_out = pipeline.read_out()  # the empty memory: services answer from the start
        self._qa = qa
        self.configure_error = ""
        self._label_table = label_id_table(p.class_names)
        self._camera_in_base = conv.pose7_to_matrix(p.camera_in_base)
        self._fp16 = p.fp16 and self.device == "cuda"

        removed = remove_orphan_temp_files(p.memory_root)
        if removed:
            self.get_logger().warning(f"removed {len(removed)} unfinished save(s) from memory_dir: {', '.join(removed[:5])}")
        # Lifecycle publishers: they publish only while the node is active (rclpy activates them
        # with the node), so an inactive node sends no answers, descriptions or markers.
        self._pubs = {
            "description": self.create_lifecycle_publisher(SceneDescription, "~/scene_description", 10),
            "answers": self.create_lifecycle_publisher(AnswerMsg, "~/answers", 10),
            "markers": self.create_lifecycle_publisher(
                MarkerArray, "~/markers", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            ),
        }
        # Questions read an immutable snapshot, so any number run at once (reentrant group); the
        # services that change the memory queue behind each other (they take the pipeline lock).
        readers, writers = ReentrantCallbackGroup(), MutuallyExclusiveCallbackGroup()

        def service(t, name, cb, group):
            return self.create_service(t, name, self._guarded(cb, t, name.removeprefix("~/")),
                                       qos_profile=node_service_qos(), callback_group=group)

        self._node_services = [
            service(Ask, "~/ask", self._on_ask, readers),
            service(Query, "~/query", self._on_query, readers),
            service(Describe, "~/describe", self._on_describe, readers),
            service(Trigger, "~/reset", self._on_reset, writers),
            service(SaveMemory, "~/save_memory", self._on_save, writers),
            service(LoadMemory, "~/load_memory", self._on_load, writers),
        ]
        self._start_diagnostics(p.diagnostics_period_s)
        self.get_logger().info(
            f"configured in {time.perf_counter() - t0:.1f} s: memory {p.method} on {self.device}"
            f"{' (fp16)' if self._fp16 else ''}, detector {p.detector}"
            + (f" ({', '.join(pipeline.front_end.detector.providers_in_use)})" if p.detector == "onnx" else "")
            + f", memory_dir {p.memory_root}, qa_backend {p.qa_backend}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        p = self.params
        pose_mode = self._pose_mode()
        partners = ["color"] + (["labels"] if p.detector == "labels" else []) + (["pose"] if pose_mode != "tf" else [])
        self._sync = ApproximateTimeSync(
            anchor="depth",
            partners=partners,
            tolerance=p.sync_tolerance_s,
            buffer_size=p.sync_buffer_size,
            jump_threshold=p.time_jump_threshold_s,
            interpolators={"pose": conv.interpolate_pose},
            max_gap={"pose": p.pose_max_gap_s},
        )
        self._timeline = TimeLine(p.time_jump_threshold_s, JUMP_CONFIRM_FRAMES)
        self._pose_topic_in_use = None
        self._worker = FrameWorker(p.queue_size, self._process_frame, self._on_new_generation, self._on_worker_error,
                                   ledger=self.ledger, on_idle=self._catch_up_read_out)
        self._worker.start()

        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=p.qos_depth,
            reliability=ReliabilityPolicy.BEST_EFFORT if p.qos_reliability == "best_effort" else ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        group = MutuallyExclusiveCallbackGroup()  # the sync is fed by one callback at a time

        def sub(name: str, msg_type, cb) -> None:
            # Relative names (ROS convention): a namespace moves the inputs with the node, and
            # remapping works on them as on any node's.
            self._input_subs[name] = self.create_subscription(
                msg_type, INPUT_TOPICS[name], self._guarded(cb), qos, callback_group=group
            )

        # camera_info is latched by many drivers; reliable + transient-local would miss best-effort
        # publishers, so it uses the input QoS like the images. Subscribed first: rclpy's executor looks at
        # ready subscriptions in creation order, so the first frame's camera_info usually precedes its depth.
        sub("camera_info", CameraInfo, self._on_camera_info)
        if p.use_compressed:
            sub("compressed", CompressedImage, self._on_color)
        else:
            sub("color", Image, self._on_color)
        sub("depth", Image, self._on_depth)
        if p.detector == "labels":
            sub("labels", Image, self._on_labels)
        if pose_mode == "tf":
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self, spin_thread=False)
        if pose_mode in ("pose", "any"):
            sub("pose", PoseStamped, self._on_pose)
        if pose_mode in ("odom", "any"):
            sub("odom", Odometry, self._on_odom)

        timer_group = MutuallyExclusiveCallbackGroup()
        if p.description_period_s > 0:
            self._periodic_timers.append(
                self.create_timer(p.description_period_s, self._guarded(self._publish_description), callback_group=timer_group)
            )
        pose_from = {"tf": "tf", "pose": self._topic("pose"), "odom": self._topic("odom"),
                     "any": f"the first of {self._topic('pose')} / {self._topic('odom')}"}[pose_mode]
        self.get_logger().info(
            f"active: colour {self._topic('compressed' if p.use_compressed else 'color')}, depth {self._topic('depth')}, "
            f"camera_info {self._topic('camera_info')}"
            + (f", labels {self._topic('labels')}" if p.detector == "labels" else "")
            + f", pose from {pose_from}; sync tolerance {p.sync_tolerance_s} s, "
            f"queue {p.queue_size} (drop-oldest), QoS {p.qos_reliability}/{p.qos_depth}"
        )
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_inputs()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._destroy_outputs()
        with self._pipeline_lock:
            self.pipeline = None
        self._qa = None  # releases the VLM (GPU memory)
        self.configure_error = "cleaned up"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop_inputs()
        self._destroy_outputs()
        with self._pipeline_lock:
            self.pipeline = None
        self._qa = None
        self.configure_error = "shut down"
        return TransitionCallbackReturn.SUCCESS

    def _pose_mode(self) -> str:
        src = self.params.pose_source
        if src == "auto":
            return "tf" if tf2_ros is not None else "any"
        return src

    def _topic(self, name: str) -> str:
        """The resolved name of an input (namespace and remapping applied), for log lines."""
        sub = self._input_subs.get(name)
        return sub.topic_name if sub is not None else INPUT_TOPICS.get(name, name)

    def _stop_inputs(self) -> None:
        for s in self._input_subs.values():
            self.destroy_subscription(s)
        for t in self._periodic_timers:
            self.destroy_timer(t)
        self._input_subs, self._periodic_timers = {}, []
        worker, self._worker = self._worker, None  # callbacks in flight see None and return
        if worker is not None:
            worker.stop()  # frames still queued are counted as dropped ("stopped")
        with self._sync_lock:
            if self._sync is not None:  # frames waiting for partners never will now
                self.ledger.drop("sync", "stopped", self._sync.clear())
            self._sync = None
        self._tf_listener = None
        self._tf_buffer = None

    def _destroy_outputs(self) -> None:
        for s in self._node_services:
            self.destroy_service(s)
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._node_services, self._pubs = [], {}

    def _start_diagnostics(self, period_s: float) -> None:
        """(Re)start the /diagnostics timer; it runs in every lifecycle state."""
        if self._diag_timer is not None and period_s == self._diag_period:
            return
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        self._diag_period = period_s
        if period_s > 0:
            self._diag_timer = self.create_timer(period_s, self._guarded(self._publish_diagnostics))

    def _state_label(self) -> str:
        return self._state_machine.current_state[1] if hasattr(self, "_state_machine") else "?"

    def _guarded(self, callback, srv_type=None, service: str = ""):
        """A last-resort handler around a callback: no exception ever reaches the executor
        (in main() that would end the node). Counted and logged like any other problem; a
        service still answers, with success false. A service's requests taken and answers
        returned are counted (``stats.services``)."""

        def run(*args):
            if not service:
                return handle(*args)
            self.stats.services.receive(service)
            try:
                return handle(*args)
            finally:
                self.stats.services.answer(service)

        def handle(*args):
            try:
                return callback(*args)
            except Exception as exc:  # noqa: BLE001 - the point of this wrapper
                if self._stopping:
                    return args[-1] if srv_type is not None else None
                self._problem("callback_error", f"{getattr(callback, '__name__', 'callback')}: {type(exc).__name__}: {exc}")
                if self.stats.problems_snapshot().get("callback_error", 0) == 1:  # the first one in full
                    self.get_logger().error(safe_text("".join(traceback.format_exception(exc)), 4000))
                if srv_type is None:
                    return None
                response = args[-1] if len(args) == 2 else srv_type.Response()
                if hasattr(response, "success"):
                    response.success = False
                for field in ("error", "message"):
                    if hasattr(response, field):
                        setattr(response, field, f"internal error: {safe_text(f'{type(exc).__name__}: {exc}')}")
                return response

        run.__name__ = getattr(callback, "__name__", "callback")
        return run

    def _on_python_warning(self, message, category, *rest) -> bool:
        """rclpy warns (does not raise) when the middleware would not send an answer because
        the client's reply reader is not matched yet: counted and logged as a problem. Returns
        whether the warning was that one."""
        text = str(message)
        if not (issubclass(category, RuntimeWarning) and text.startswith("failed to send response")):
            return False
        self.stats.services.unsent()
        self._problem("answer_not_sent", safe_text(text, 300))
        return True

    # ------------------------------------------------------------------ problems

    def _problem(self, kind: str, message: str) -> None:
        """Count a problem and log it, at most once per log_throttle_s per kind."""
        message = safe_text(message, 500)  # may carry strings from messages: no forged lines
        self.stats.problem(kind, message)
        now = time.monotonic()
        throttle = self.params.log_throttle_s if self.params else 5.0
        if now - self._log_times.get(kind, -1e9) >= throttle:
            self._log_times[kind] = now
            n = self.stats.problems_snapshot().get(kind, 0)
            self.get_logger().warning(f"{kind}: {message} ({n} so far)")

    # ------------------------------------------------------------------ inputs

    def _autocast(self):
        if not self._fp16:
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cuda", dtype=torch.float16)

    def _on_new_generation(self, generation: int) -> None:
        with self._pipeline_lock:
            self.pipeline.reset()
            self._publish_read_out()
        if self._qa is not None:
            self._qa.reset()
        self.get_logger().warning(f"memory reset: a new stream started (generation {generation})")

    def _lookup_tf(self, frame_id: str, stamp: float) -> np.ndarray:
        from rclpy.duration import Duration
        from rclpy.time import Time

        t = self._tf_buffer.lookup_transform(
            self.params.world_frame,
            frame_id or topics.CAMERA_FRAME,
            Time(seconds=stamp),
            timeout=Duration(seconds=self.params.tf_timeout_s),
        )
        return conv.transform_to_matrix(t.transform)

    def _publish_read_out(self) -> None:
        """Decode the memory into a fresh immutable snapshot and swap it in (one reference
        assignment: readers see the old or the new one, never half of either). Called with
        the pipeline lock held, on the worker or in a service that changed the memory."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        t0 = time.perf_counter()
        with self._autocast():
            self._read_out = pipeline.read_out()
        self.stats.latency["read_out"].add(time.perf_counter() - t0)

    def _catch_up_read_out(self) -> None:
        """The worker is idle (the stream paused): include the frames written since the last
        snapshot, so a robot that stopped gets answers about everything it saw."""
        with self._pipeline_lock:
            pipeline = self.pipeline
            if pipeline is not None and (self._read_out is None or self._read_out.version != pipeline.version):
                self._publish_read_out()

    def _process_frame(self, item: WorkItem) -> str | None:
        """Decode the images and write the frame; then publish a snapshot when one is due.
        Returns None when the frame went into the memory, else why it did not."""
        payload: FramePayload = item.payload
        s = payload.synced
        t0 = time.perf_counter()
        depth = conv.depth_to_metres(s.items["depth"])
        color = s.items["color"]
        rgb = conv.compressed_to_rgb(color) if isinstance(color, CompressedImage) else conv.color_to_rgb(color)
        if rgb.shape[:2] != depth.shape:
            raise conv.UnsupportedEncoding(f"decoded colour is {rgb.shape[1]}x{rgb.shape[0]}, depth {depth.shape[1]}x{depth.shape[0]}")
        labels = None
        if "labels" in s.items:
            ids = conv.labels_to_ids(s.items["labels"])
            table = self._label_table
            labels = table[np.clip(ids, 0, len(table) - 1)] * (ids < len(table))  # unknown ids -> 0
        if "pose" in s.items:
            T = s.items["pose"]
        else:
            try:
                T = self._lookup_tf(payload.frame_id, s.stamp)
            except Exception as exc:  # tf2 raises several exception types
                self._problem("no_pose", f"frame at {s.stamp:.3f} s dropped: no transform {self.params.world_frame} <- {payload.frame_id} ({exc})")
                return "no_pose"
        frame = CameraFrame(stamp=s.stamp, depth=depth, K=payload.K, T_world_cam=T, rgb=rgb, labels=labels)
        self.stats.latency["decode"].add(time.perf_counter() - t0)
        with self._pipeline_lock:
            pipeline = self.pipeline
            if pipeline is None or (self._worker is not None and item.generation < self._worker.generation):
                return "reset"  # the memory was reset or reloaded while this frame waited
            with self._autocast():
                pipeline.process(frame)
            # Here, on the worker: a question never decodes the memory. Every frame while no frame
            # waits; when frames queue up, only every few frames (the pipeline's bound).
            if pipeline.read_out_due(idle=self._worker is None or self._worker.depth() == 0):
                self._publish_read_out()
        qa = self._qa
        if qa is not None and qa.uses_vlm:  # colour to the VLM (keyframes only), outside the pipeline lock
            qa.offer_frame(rgb, s.stamp)
        self.stats.processed_rate.tick()
        self.stats.end_to_end.add(time.monotonic() - item.enqueued)
        return None

    def _on_worker_error(self, exc: BaseException, item: WorkItem | None) -> None:
        stamp = getattr(getattr(getattr(item, "payload", None), "synced", None), "stamp", float("nan"))
        if isinstance(exc, conv.UnsupportedEncoding):
            self._problem("unsupported_encoding", f"frame at {stamp:.3f} s: {exc}")
        elif isinstance(exc, ValueError):
            self._problem("bad_frame", f"frame at {stamp:.3f} s: {exc}")
        else:
            self._problem("worker_error", f"frame at {stamp:.3f} s: {type(exc).__name__}: {exc}")
            if self.stats.problems_snapshot().get("worker_error", 0) == 1:  # the first one in full
                self.get_logger().error("".join(traceback.format_exception(exc)))

    # ------------------------------------------------------------------ services


def main(argv: list[str] | None = None) -> int:
    """Start the node; ``argv`` may carry ``--ros-args --params-file ...``. Returns the exit code."""
    args = sys.argv if argv is None else [sys.argv[0], *argv]
    # Ctrl-C in a terminal under `ros2 launch` sends SIGINT twice (the terminal signals the
    # whole process group, then launch signals its child), and launch may follow with
    # SIGTERM. rclpy's own handlers raise KeyboardInterrupt into whatever runs, or let a
    # second signal kill the process (exit -2) during the cleanup. So the signals only set
    # an event here: the executor spins in a thread, the main thread waits for the event
    # and then stops everything in order, however many signals arrive.
    from rclpy.signals import SignalHandlerOptions

    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = SpatialTTTNode()
    # Every unsent answer is counted, not only the first (Python shows a warning once per place).
    warnings.filterwarnings("always", message="failed to send response", category=RuntimeWarning)
    show_warning = warnings.showwarning

    def on_warning(message, category, *rest) -> None:
        if not node._on_python_warning(message, category):
            show_warning(message, category, *rest)

    warnings.showwarning = on_warning
    executor = NodeExecutor(num_threads=EXECUTOR_THREADS)
    executor.add_node(node)

    def spin() -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
        finally:
            stop.set()

    code = 0
    spinner = None
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal(f"could not configure: {node.configure_error or 'see above'}")
                code = 1
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("could not activate")
                code = 1
        if code == 0 and not stop.is_set():
            spinner = threading.Thread(target=spin, name="spatial_ttt_executor", daemon=True)
            spinner.start()
            while not stop.wait(0.5):  # a timed wait lets the signal handler run promptly
                pass
    finally:
        # Python's finalisation resets handled signals to their default action (a late SIGINT
        # would then kill the process, exit -2); an ignored one stays ignored.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        node._stopping = True  # callbacks racing the shutdown stay quiet
        # The executor stops first (and its thread ends) so that no entity is destroyed while
        # the executor's wait set still uses it (rclpy aborts the process on that race).
        executor.shutdown(timeout_sec=5.0)
        if spinner is not None:
            spinner.join(5.0)
        node._stop_inputs()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
