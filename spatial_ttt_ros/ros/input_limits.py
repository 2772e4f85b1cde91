"""Bounds on what a message may make the node do, checked before any work (pure Python).

A compressed image says how big it is in its first bytes: the PNG IHDR chunk, or the
JPEG SOFn segment. Reading that header lets the node refuse an image that would decode
to 20000 x 20000 pixels (1.2 GB) before the decoder allocates anything.
"""

from __future__ import annotations

import struct

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...): not DHT (C4), JPG (C8), DAC (CC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_SCAN_LIMIT = 1 << 20  # a SOF segment lies near the start; don't walk megabytes of garbage


def compressed_image_size(data) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, or None when the bytes are neither."""
    head = bytes(data[: _JPEG_SCAN_LIMIT])
    if head.startswith(_PNG_MAGIC):
        if len(head) < 24 or head[12:16] != b"IHDR":
            return None
        w, h = struct.unpack(">II", head[16:24])
        return int(w), int(h)
    if head[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > len(head):
                return None
            h, w = struct.unpack(">HH", head[i + 5 : i + 9])
            return int(w), int(h)
        if marker == 0xDA or length < 2:  # start of scan before any frame header: not an image we read
            return None
        i += 2 + length
    return None


MAX_QUESTION_CHARS = 1000  # the longest VSI-Bench question is under 400 characters
