"""Hostile input on the compressed colour topic (``use_compressed: true``), over DDS.

Its own module so its node (subscribed to ``.../compressed``) runs after test_ros_hostile's
has stopped. The issue's case: a PNG of about 1 MB whose header says 20000 x 20000 (it
decodes to 1.2 GB; at 0458483 the worker stalled for 20 s and the node took 1.3 GB, and the
frame was not counted). It must be refused from the PNG header, before decoding: counted as
``image_too_large``, the memory unchanged, and the node's peak RSS (VmHWM) not raised by
the decode.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

from test_ros_hostile import start_hostile  # noqa: E402


@pytest.fixture(scope="module")
def hc(tmp_path_factory):
    yield from start_hostile(tmp_path_factory.mktemp("ros_hostile_compressed"), compressed=True)


def zero_png(width: int, height: int) -> bytes:
    """An RGB8 PNG of zeros, compressed row by row (the pixels are never held)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter byte 0 and the row
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024.0


def test_a_compressed_image_too_large_is_refused_before_decoding(hc):
    hc.send_good(6)
    before = hc.wait_frames(6)
    assert before >= 6, hc.values()
    n = hc.count("image_too_large")
    peak = peak_rss_mib(hc.proc.proc.pid)
    msgs = hc.pub.messages(hc.frames[0], hc.t)
    msgs["color"].data = zero_png(20000, 20000)  # about 1.2 MB on the wire, 1.2 GB decoded
    for name in ("camera_info", "pose", "labels", "color", "depth"):
        hc.pub.pubs[name].publish(msgs[name])
    hc.t += 0.1
    hc.wait_count("image_too_large", n + 1)
    assert "20000x20000" in hc.values()["last error"], hc.values()
    assert hc.frames_seen() == before
    assert peak_rss_mib(hc.proc.proc.pid) < peak + 300.0, "the node decoded the image"
    hc.assert_healthy()
