"""sensor_msgs images (raw and compressed) -> numpy: colour, depth in metres, label ids.

ROS-free and shared by ros/conversions.py (rclpy messages) and evaluation/bag_reader.py
(messages read with rosbags): both have ``encoding``, ``height``, ``width``, ``step``,
``is_bigendian`` and ``data`` (or ``format`` and ``data``). rosbags-image supplies the
encoding table, colour-space conversion and compressed decoding; it reads raw rows
without their ``step`` padding and checks no sizes, so the unpacking of rows is kept
here.

One rule for missing depth: a 0 reading (the 16UC1 "no reading"; some drivers write it
in 32FC1 too) becomes NaN, as NaN, inf and <= 0 already mean "no reading" for the
front-end (``perception.lifting.valid_depth_mask``).
"""

from __future__ import annotations

import numpy as np
from rosbags.image import ImageError, compressed_image_to_cvimage
from rosbags.image.image import convert_color, to_cvtype


class UnsupportedEncoding(ValueError):
    """An image encoding that cannot be read for that input (colour, depth or labels)."""


# What each input accepts (lower case: ROS spells 16UC1, some drivers 16uc1).
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16uc1", "mono16", "32fc1")
LABEL_ENCODINGS = ("16uc1", "mono16", "mono8", "8uc1")
ENCODINGS = tuple(dict.fromkeys(COLOR_ENCODINGS + DEPTH_ENCODINGS + LABEL_ENCODINGS + ("8uc3",)))

MM_TO_M = np.float32(0.001)


def pixel_type(encoding: str) -> tuple[np.dtype, int]:
    """(numpy dtype, channels) of an encoding in ``ENCODINGS`` (any case)."""
    enc = encoding.lower()
    if enc not in ENCODINGS:
        raise UnsupportedEncoding(f"unsupported image encoding '{encoding}'")
    # rosbags-image's table spells the generic encodings (those starting with a digit) in upper case
    _, _, typestr, channels = to_cvtype(enc.upper() if enc[0].isdigit() else enc)
    return np.dtype(typestr), channels


def image_to_array(msg) -> np.ndarray:
    """(H, W) or (H, W, C) array of a sensor_msgs/Image in native byte order, honouring ``step``
    (row padding) and ``is_bigendian``; a copy, not a view of the message."""
    dtype, channels = pixel_type(msg.encoding)
    dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    h, w = int(msg.height), int(msg.width)
    row_bytes = w * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ValueError(f"image step {msg.step} is shorter than a row ({w} px x {channels} x {dtype.itemsize} B)")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size < msg.step * h:
        raise ValueError(f"image data has {buf.size} bytes, expected {msg.step * h} ({h} rows of {msg.step})")
    rows = buf[: msg.step * h].reshape(h, msg.step)[:, :row_bytes]
    arr = np.ascontiguousarray(rows).view(dtype).reshape((h, w, channels) if channels > 1 else (h, w))
    return arr.astype(dtype.newbyteorder("="), copy=False)


def color_to_rgb(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a raw image (rgb8, bgr8, rgba8, bgra8, mono8) or a CompressedImage."""
    if hasattr(msg, "format"):  # sensor_msgs/CompressedImage
        return compressed_to_rgb(msg)
    enc = msg.encoding.lower()
    if enc not in COLOR_ENCODINGS:
        raise UnsupportedEncoding(
            f"colour image encoding '{msg.encoding}' is not supported (use one of {', '.join(COLOR_ENCODINGS)})"
        )
    return np.ascontiguousarray(convert_color(image_to_array(msg), enc, "rgb8"))


def compressed_to_rgb(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a jpeg/png CompressedImage (image_transport's format strings)."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    try:
        # decoded as OpenCV does, BGR (or grey): image_transport writes "rgb8; jpeg compressed bgr8"
        img = compressed_image_to_cvimage(msg) if data.size else None
    except (AssertionError, ImageError):  # rosbags-image asserts on undecodable bytes
        img = None
    if img is None:
        raise UnsupportedEncoding(f"compressed image (format '{msg.format}') could not be decoded as jpeg or png")
    decoded_as = "mono8" if img.ndim == 2 else {3: "bgr8", 4: "bgra8"}[img.shape[2]]
    return np.ascontiguousarray(convert_color(img, decoded_as, "rgb8"))


def depth_to_metres(msg) -> np.ndarray:
    """(H, W) float32 metres of 16UC1/mono16 millimetres or 32FC1 metres; 0 -> NaN (no reading)."""
    enc = msg.encoding.lower()
    if enc not in DEPTH_ENCODINGS:
        raise UnsupportedEncoding(
            f"depth image encoding '{msg.encoding}' is not supported (use 16UC1 millimetres or 32FC1 metres)"
        )
    arr = image_to_array(msg)
    depth = arr.astype(np.float32) if enc == "32fc1" else arr.astype(np.float32) * MM_TO_M
    depth[arr == 0] = np.nan
    return depth


def labels_to_ids(msg) -> np.ndarray:
    """(H, W) int32 class ids of a 16UC1/mono16 or mono8/8UC1 label image."""
    enc = msg.encoding.lower()
    if enc not in LABEL_ENCODINGS:
        raise UnsupportedEncoding(f"label image encoding '{msg.encoding}' is not supported (use 16UC1 or mono8)")
    return image_to_array(msg).astype(np.int32)
