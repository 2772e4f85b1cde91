"""Every parameter of the node: name, default, description and range, in one table.

The node declares them from ``PARAMETERS`` (each with a ``ParameterDescriptor``),
config/spatial_ttt.yaml lists them with comments, and a test checks that the two
agree, so the documentation cannot drift from the code. ``NodeParams`` is the typed,
validated view the node works from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from spatial_ttt_ros.classes import CLASSES
from spatial_ttt_ros.memory.methods import DEFAULT_METHOD, METHODS

# Pose of the camera optical frame in the Odometry child frame (base_link), as
# x y z qx qy qz qw. Identity: the odometry already reports the optical frame
# (what the simulator's bags publish). For a REP-103 base_link with the camera at
# its origin looking forward, use [0, 0, 0, -0.5, 0.5, -0.5, 0.5].
IDENTITY_POSE7 = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]

DEFAULT_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: object
    description: str
    low: float | int | None = None  # numeric range (inclusive), where it has one
    high: float | int | None = None
    choices: tuple[str, ...] = ()  # allowed values of a string parameter
    step: int = 0  # IntegerRange step (0 = any)


PARAMETERS: tuple[ParamSpec, ...] = (
    # --- life cycle
    ParamSpec("autostart", True, "Configure and activate at start-up (no lifecycle manager needed)."),
    # --- frames and pose
    ParamSpec("world_frame", "map", "World frame of poses, answers, markers and descriptions (REP-103, z up)."),
    ParamSpec(
        "pose_source",
        "auto",
        "Camera pose: tf (lookup world_frame <- image frame), pose (PoseStamped topic), "
        "odom (Odometry topic), or auto (tf where tf2_ros is installed, else whichever of "
        "pose/odom publishes first).",
        choices=("auto", "tf", "pose", "odom"),
    ),
    ParamSpec(
        "camera_in_base",
        list(IDENTITY_POSE7),
        "Odometry only: the camera optical frame in the Odometry child frame, x y z qx qy qz qw "
        "(identity: odometry reports the optical frame).",
    ),
    ParamSpec("tf_timeout_s", 0.05, "TF only: how long a frame waits for its transform [s].", 0.0, 1.0),
    # --- inputs
    ParamSpec("use_compressed", False, "Subscribe to the colour image's compressed topic (jpeg/png) instead of the raw image."),
    ParamSpec(
        "max_image_pixels",
        4_000_000,
        "Largest image (width x height) the node takes; larger frames are refused from their header "
        "(compressed ones before decoding) and counted.",
        1,
        100_000_000,
        step=1,
    ),
    ParamSpec("qos_reliability", "best_effort", "Input QoS reliability (sensor-data default).", choices=("best_effort", "reliable")),
    ParamSpec("qos_depth", 10, "Input QoS history depth (messages kept per topic).", 1, 1000, step=1),
    ParamSpec("sync_tolerance_s", 0.05, "Colour, depth, labels and pose stamps pair up when within this [s].", 0.0, 1.0),
    ParamSpec(
        "pose_max_gap_s",
        0.5,
        "A frame's pose is interpolated between the poses before and after it when those are at most this far apart [s] "
        "(slower pose sources, a lost pose message); else the nearest pose within sync_tolerance_s.",
        0.0,
        10.0,
    ),
    ParamSpec("sync_buffer_size", 30, "Messages kept per input while waiting for their partners.", 2, 1000, step=1),
    ParamSpec("queue_size", 10, "Synced frames waiting for the worker; when full the oldest is dropped (counted).", 1, 1000, step=1),
    ParamSpec(
        "on_time_jump",
        "reset",
        "When frame stamps jump back by more than time_jump_threshold_s (a replayed bag restarting): "
        "reset the memory and go on, or drop those frames until time passes the last stamp.",
        choices=("reset", "drop"),
    ),
    ParamSpec("time_jump_threshold_s", 1.0, "A backward step larger than this is a time jump; smaller ones drop the frame as out of order [s].", 0.0, 3600.0),
    # --- front-end
    ParamSpec("detector", "labels", "Object source: labels (label image topic of class ids) or onnx (YOLOX detector on the colour image).", choices=("labels", "onnx")),
    ParamSpec("class_names", list(CLASSES), "Label image only: class name of id i is class_names[i-1] (0 = no object)."),
    ParamSpec("model_path", "", "ONNX only: path of the detector model (.onnx)."),
    ParamSpec("class_names_file", "", "ONNX only: class names, one a line in output order (empty: coco_classes.txt beside the model)."),
    ParamSpec("providers", list(DEFAULT_PROVIDERS), "ONNX only: onnxruntime execution providers in order of preference; unavailable ones are skipped."),
    ParamSpec("score_threshold", 0.35, "ONNX only: minimum detection score.", 0.0, 1.0),
    ParamSpec(
        "detector_threads",
        1,
        "ONNX only: onnxruntime CPU threads (0 = one per core). One keeps the detector from fighting the "
        "node's other threads and the robot's other processes for the cores.",
        0,
        64,
        step=1,
    ),
    # --- memory
    ParamSpec("method", DEFAULT_METHOD, "Memory (memory/methods.py): object_map (explicit map, the default until the TTT checkpoint matches it), ttt (the TTT model) or a variant.", choices=METHODS),
    ParamSpec("checkpoint", "", "Model weights (.safetensors); empty: the shipped default."),
    ParamSpec("device", "auto", "Where the memory model runs: auto (cuda when available), cpu or cuda.", choices=("auto", "cpu", "cuda")),
    ParamSpec("fp16", True, "Run the memory model in half precision on a GPU (ignored on the CPU)."),
    ParamSpec(
        "model_threads",
        0,
        "CPU threads for the memory model's torch ops (0 = half the cores, at least one). On a small "
        "CPU shared with the detector and the robot's other processes, fewer can mean fewer dropped frames.",
        0,
        64,
        step=1,
    ),
    ParamSpec(
        "memory_dir",
        "",
        "save_memory/load_memory read and write only under this directory; empty: $ROS_HOME/spatial_ttt "
        "(ROS_HOME defaults to ~/.ros).",
    ),
    # --- question answering (qa_backend: vlm/qa_backend.py)
    ParamSpec(
        "qa_backend",
        "geometry",
        "Who answers ~/ask: geometry (the memory's parser and solvers), vlm (Spatial-TTT-nano from the colour "
        "stream; needs the vlm extra and vlm_checkpoint) or hybrid (questions the parser understands to geometry, "
        "free-form ones to the VLM). Positions, markers and ~/query always come from the geometry.",
        choices=("geometry", "vlm", "hybrid"),
    ),
    ParamSpec("vlm_checkpoint", "", "vlm/hybrid only: local directory of the Spatial-TTT-nano weights and tokenizer (never downloaded)."),
    ParamSpec(
        "vlm_dtype",
        "auto",
        "vlm/hybrid only: precision of the VLM: auto (bfloat16 on a GPU, float32 on the CPU), float32, float16 or bfloat16. "
        "It runs on `device`.",
        choices=("auto", "float32", "float16", "bfloat16"),
    ),
    ParamSpec(
        "vlm_keyframe_interval_s",
        1.0,
        "vlm/hybrid only: a colour frame becomes a VLM keyframe when at least this long after the last one [s]; "
        "0 = every processed frame.",
        0.0,
        3600.0,
    ),
    ParamSpec("vlm_max_new_tokens", 24, "vlm/hybrid only: most tokens the VLM generates per answer.", 1, 1024, step=1),
    # --- outputs
    ParamSpec("description_period_s", 1.0, "Period of ~/scene_description and ~/markers [s]; 0 = off.", 0.0, 3600.0),
    ParamSpec("diagnostics_period_s", 1.0, "Period of /diagnostics [s]; 0 = off.", 0.0, 3600.0),
    ParamSpec("log_throttle_s", 5.0, "Repeated bad-input warnings of one kind are logged at most once per this [s].", 0.0, 3600.0),
)

PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)


def descriptor(spec: ParamSpec):
    """The rcl ParameterDescriptor of one parameter (description, range, choices)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    text = spec.description
    if spec.choices:
        text += " One of: " + ", ".join(spec.choices) + "."
    d = ParameterDescriptor(name=spec.name, description=text)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.low is not None and isinstance(spec.default, bool) is False:
        if isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=spec.step)]
        elif isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)]
    return d


@dataclass
class NodeParams:
    autostart: bool
    world_frame: str
    pose_source: str
    camera_in_base: list[float]
    tf_timeout_s: float
    use_compressed: bool
    max_image_pixels: int
    qos_reliability: str
    qos_depth: int
    sync_tolerance_s: float
    pose_max_gap_s: float
    sync_buffer_size: int
    queue_size: int
    on_time_jump: str
    time_jump_threshold_s: float
    detector: str
    class_names: list[str]
    model_path: str
    class_names_file: str
    providers: list[str]
    score_threshold: float
    detector_threads: int
    method: str
    checkpoint: str
    device: str
    fp16: bool
    model_threads: int
    memory_dir: str
    qa_backend: str
    vlm_checkpoint: str
    vlm_dtype: str
    vlm_keyframe_interval_s: float
    vlm_max_new_tokens: int
    description_period_s: float
    diagnostics_period_s: float
    log_throttle_s: float

    def validate(self) -> None:
        """Raise ValueError naming the parameter for values a range cannot express."""
        for spec in PARAMETERS:
            value = getattr(self, spec.name)
            if spec.choices and value not in spec.choices:
                raise ValueError(f"parameter {spec.name}={value!r}: must be one of {', '.join(spec.choices)}")
        if len(self.camera_in_base) != 7:
            raise ValueError(f"parameter camera_in_base needs 7 numbers (x y z qx qy qz qw), got {len(self.camera_in_base)}")
        q = self.camera_in_base[3:]
        if sum(v * v for v in q) < 1e-12:
            raise ValueError("parameter camera_in_base: the quaternion qx qy qz qw is zero")
        if self.detector == "labels" and not self.class_names:
            raise ValueError("parameter class_names is empty: the label image needs a name per class id")
        if self.detector == "onnx" and not self.model_path:
            raise ValueError("parameter model_path is empty: detector 'onnx' needs the .onnx model")
        for spec in PARAMETERS:
            problem = check_parameter(spec.name, getattr(self, spec.name))
            if problem:
                raise ValueError(problem)

    @property
    def memory_root(self) -> Path:
        if not self.memory_dir.strip():
            return ros_home() / "spatial_ttt"
        return Path(os.path.expandvars(os.path.expanduser(self.memory_dir)))


def ros_home() -> Path:
    """$ROS_HOME, else ~/.ros (where ROS 2 keeps a user's logs and data)."""
    return Path(os.path.expanduser(os.environ.get("ROS_HOME") or "~/.ros"))


SPECS = {spec.name: spec for spec in PARAMETERS}


def check_parameter(name: str, value) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name`` (None when it is): the checks a
    descriptor's range cannot express. The node runs it when a parameter is set (so
    ``ros2 param set ... method bogus`` is refused at once) and again at configure."""
    spec = SPECS.get(name)
    if spec is None:
        return None
    if spec.choices and value not in spec.choices:
        return f"parameter {name}={value!r}: must be one of {', '.join(spec.choices)}"
    if name == "method":
        try:
            from spatial_ttt_ros.memory.methods import parse_method  # plain Python, no torch
        except ImportError:  # pragma: no cover - older layout: configure checks it
            return None
        try:
            parse_method(value)
        except ValueError as exc:
            return f"parameter method: {exc}"
    if name == "camera_in_base":
        if len(value) != 7:
            return f"parameter camera_in_base needs 7 numbers (x y z qx qy qz qw), got {len(value)}"
        if sum(float(v) * float(v) for v in value[3:]) < 1e-12:
            return "parameter camera_in_base: the quaternion qx qy qz qw is zero"
    if name in ("world_frame",) and not str(value).strip():
        return f"parameter {name} is empty"
    return None


def declare_parameters(node) -> None:
    for spec in PARAMETERS:
        node.declare_parameter(spec.name, spec.default, descriptor(spec))


def read_parameters(node) -> NodeParams:
    values = {}
    for spec in PARAMETERS:
        value = node.get_parameter(spec.name).value
        if isinstance(spec.default, list):
            value = list(value) if value is not None else []
        values[spec.name] = value
    params = NodeParams(**values)
    params.validate()
    return params


def markdown_table() -> str:
    """The README's parameter table (same source as the node's declarations)."""
    rows = ["| parameter | default | range / values | description |", "| --- | --- | --- | --- |"]
    for spec in PARAMETERS:
        default = spec.default
        if isinstance(default, bool):
            shown = str(default).lower()
        elif isinstance(default, list):
            shown = "[" + ", ".join(str(v) for v in default) + "]"
            if len(shown) > 40:
                shown = f"{len(default)} entries (see config)"
        else:
            shown = (default or '""') if isinstance(default, str) else str(default)
        if spec.choices:
            rng = " \\| ".join(spec.choices)
        elif spec.low is not None:
            rng = f"{spec.low} .. {spec.high}"
        else:
            rng = ""
        rows.append(f"| `{spec.name}` | `{shown}` | {rng} | {spec.description} |")
    return "\n".join(rows)
