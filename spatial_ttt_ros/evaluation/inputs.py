"""What a bag offers the evaluation, said before anything is scored.

``check_inputs(bag, topics, detector)`` lists the bag's topics (types and counts, no
message is read) and decides, for each input the replay needs, which topic it will use:
colour, depth, camera_info, a camera pose (PoseStamped, Odometry or /tf) and, with the
label front-end, the label image. The result prints as a few lines for the terminal
and for report.md.

A missing required input (colour, depth, camera_info, pose) is an error that names the
``--*-topic`` option to set and the bag's topics of the right type, so the fix is one
flag away. Missing label images are not an error (the replay still runs, the memory sees
no objects), but they are said out loud, and ``spatial-ttt eval`` ends non-zero when a
run saw no detections at all (``--allow-empty`` accepts that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from spatial_ttt_ros.evaluation.bag_reader import (
    CAMERA_INFO, COMPRESSED, IMAGE, ODOMETRY, POSE_STAMPED, TF_MESSAGE, BagTopics,
)

# input -> (the eval option that sets its topic, what it is for)
OPTIONS = {
    "color": ("--color-topic", "colour images (sensor_msgs/Image or CompressedImage)"),
    "depth": ("--depth-topic", "depth images (sensor_msgs/Image, 16UC1 mm or 32FC1 m)"),
    "camera_info": ("--camera-info-topic", "intrinsics (sensor_msgs/CameraInfo)"),
    "pose": ("--pose-topic, --odom-topic or --tf-topic", "camera pose (PoseStamped, Odometry or /tf)"),
    "labels": ("--labels-topic", "label images (sensor_msgs/Image, a class id per pixel)"),
}
# Words that hint which Image topic is which, for suggestions.
_HINTS = {"depth": ("depth",), "labels": ("label", "seg", "class", "semantic"), "color": ("color", "colour", "rgb", "image")}


def list_topics(bag: str | Path) -> dict[str, tuple[str, int]]:
    """Every topic of a rosbag2 (mcap or sqlite3): {name: (message type, count)}; reads no message."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    try:
        reader = AnyReader([Path(bag)], default_typestore=get_typestore(Stores.ROS2_JAZZY))
        reader.open()
    except Exception as exc:  # rosbags raises several types for a damaged bag
        raise ValueError(f"cannot open bag {bag} (corrupt or not a rosbag2): {exc}") from None
    try:
        return {name: (info.msgtype or "?", int(info.msgcount)) for name, info in reader.topics.items()}
    finally:
        reader.close()


@dataclass
class InputCheck:
    present: dict[str, tuple[str, int]]  # every topic: (type, count)
    used: dict[str, str] = field(default_factory=dict)  # input -> topic (pose: "kind topic")
    missing: dict[str, str] = field(default_factory=dict)  # input -> what was looked for
    suggestions: dict[str, list[str]] = field(default_factory=dict)  # input -> candidate topics

    @property
    def missing_required(self) -> list[str]:
        return [k for k in ("color", "depth", "camera_info", "pose") if k in self.missing]

    def lines(self) -> list[str]:
        """One line per input: the topic used, or MISSING with the option that fixes it."""
        out = []
        for name in ("color", "depth", "camera_info", "pose", "labels"):
            if name in self.used:
                topic = self.used[name]
                kind, _, t = topic.partition(" ") if name == "pose" else ("", "", topic)
                count = self.present.get(t, ("", 0))[1]
                out.append(f"{name}: {topic} ({count} messages)")
            elif name in self.missing:
                opt, what = OPTIONS[name]
                hint = self.suggestions.get(name)
                more = f"; candidates in this bag: {', '.join(hint)}" if hint else ""
                out.append(f"{name}: MISSING, looked for {self.missing[name]} ({what}); set it with {opt}{more}")
        return out

    def error(self, bag) -> str:
        """The one-line error for missing required inputs."""
        parts = []
        for name in self.missing_required:
            opt, what = OPTIONS[name]
            hint = self.suggestions.get(name)
            parts.append(f"{what}: not at {self.missing[name]}, set {opt}"
                         + (f" (candidates: {', '.join(hint)})" if hint else ""))
        listing = ", ".join(f"{n} ({t})" for n, (t, _) in sorted(self.present.items())) or "none"
        return f"bag {bag} lacks the topics needed: {'; '.join(parts)}. Topics present: {listing}"


def _candidates(present: dict, types: tuple[str, ...], hints: tuple[str, ...] = (), exclude=()) -> list[str]:
    """Topics of the given types, those whose name carries a hint first."""
    names = [n for n, (t, _) in sorted(present.items()) if t in types and n not in exclude]
    hinted = [n for n in names if any(h in n.lower() for h in hints)]
    return hinted + [n for n in names if n not in hinted]


def check_inputs(bag: str | Path, topics: BagTopics, detector: str = "labels",
                 present: dict[str, tuple[str, int]] | None = None) -> InputCheck:
    """Which topic each input comes from (see module doc)."""
    present = list_topics(bag) if present is None else present
    chk = InputCheck(present=present)

    def has(topic, *types) -> bool:
        return topic is not None and topic in present and present[topic][0] in types

    if has(topics.color, IMAGE):
        chk.used["color"] = topics.color
    elif has(topics.color_compressed, COMPRESSED):
        chk.used["color"] = topics.color_compressed
    else:
        chk.missing["color"] = f"{topics.color} or {topics.color_compressed}"
    if has(topics.depth, IMAGE):
        chk.used["depth"] = topics.depth
    else:
        chk.missing["depth"] = topics.depth
    if has(topics.camera_info, CAMERA_INFO):
        chk.used["camera_info"] = topics.camera_info
    else:
        chk.missing["camera_info"] = topics.camera_info
    if has(topics.pose, POSE_STAMPED):
        chk.used["pose"] = f"PoseStamped {topics.pose}"
    elif has(topics.odom, ODOMETRY):
        chk.used["pose"] = f"Odometry {topics.odom}"
    elif has(topics.tf, TF_MESSAGE):
        chk.used["pose"] = f"tf {topics.tf} ({topics.world_frame} -> {topics.camera_frame})"
    else:
        chk.missing["pose"] = f"{topics.pose}, {topics.odom} or {topics.tf}"
    if detector == "labels":
        if has(topics.labels, IMAGE):
            chk.used["labels"] = topics.labels
        else:
            chk.missing["labels"] = str(topics.labels)
    taken = {v for k, v in chk.used.items() if k != "pose"}  # not suggested for another input
    for name in chk.missing:
        if name in ("color", "depth", "labels"):
            types = (IMAGE, COMPRESSED) if name == "color" else (IMAGE,)
            cands = _candidates(present, types, _HINTS[name], exclude=taken)
            if name != "color":  # depth/labels: only name-hinted ones are worth suggesting
                cands = [c for c in cands if any(h in c.lower() for h in _HINTS[name])]
        elif name == "camera_info":
            cands = _candidates(present, (CAMERA_INFO,))
        else:
            cands = _candidates(present, (POSE_STAMPED, ODOMETRY, TF_MESSAGE))
        if cands:
            chk.suggestions[name] = cands[:4]
    return chk
