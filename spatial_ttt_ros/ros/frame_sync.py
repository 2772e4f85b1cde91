"""Approximate-time pairing of the node's inputs (colour, depth, labels, pose).

message_filters is not installable here, so this is a small pure-Python
synchroniser. One stream is the *anchor* (depth: every frame needs it); each anchor
message is paired with the nearest message of every other stream within
``tolerance`` seconds. Streams marked *interpolated* (the pose) may instead be
interpolated between the two messages around the anchor's stamp when those are at
most ``max_gap`` apart: a 100 Hz odometry or a 10 Hz SLAM pose pairs with a 30 Hz
camera, and one lost pose message does not cost a frame. Sets come out in stamp order.

An anchor is dropped, with the names of the streams that failed it, when
- a partner stream has moved past it (a message newer than stamp + tolerance
  arrived and none lies within tolerance: it will never get one), or
- the bounded anchor buffer overflows while it still waits.

A message more than ``jump_threshold`` seconds older than the newest one of its
stream means time went back (a replayed bag restarting): every buffer is cleared and
``jumps`` counts it, so stale messages cannot pair with the new epoch.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Callable

MATCH, WAIT, NEVER = "match", "wait", "never"


@dataclass
class SyncedSet:
    stamp: float  # the anchor's stamp
    items: dict[str, Any]  # stream -> message (or the interpolated value)
    offsets: dict[str, float] = field(default_factory=dict)  # stream -> partner stamp - anchor stamp


@dataclass
class DroppedAnchor:
    stamp: float
    missing: list[str]  # streams with no partner
    overflow: bool  # dropped because the buffer was full (still waiting) rather than proven unmatched


@dataclass
class SyncResult:
    sets: list[SyncedSet] = field(default_factory=list)
    dropped: list[DroppedAnchor] = field(default_factory=list)
    time_jump: bool = False  # this message started a new epoch (buffers cleared)
    discarded_on_jump: int = 0  # anchors thrown away by the clear


class _Buffer:
    """Messages of one stream, sorted by stamp, bounded."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.stamps: list[float] = []
        self.items: list[Any] = []

    def add(self, stamp: float, item: Any) -> tuple[float, Any] | None:
        i = bisect.bisect_right(self.stamps, stamp)
        self.stamps.insert(i, stamp)
        self.items.insert(i, item)
        if len(self.stamps) > self.size:
            return self.pop(0)
        return None

    def pop(self, i: int) -> tuple[float, Any]:
        return self.stamps.pop(i), self.items.pop(i)

    def prune_before(self, t: float) -> None:
        i = bisect.bisect_left(self.stamps, t)
        del self.stamps[:i]
        del self.items[:i]

    def clear(self) -> None:
        self.stamps.clear()
        self.items.clear()

    def __len__(self) -> int:
        return len(self.stamps)


class ApproximateTimeSync:
    def __init__(
        self,
        anchor: str,
        partners: list[str],
        tolerance: float,
        buffer_size: int,
        jump_threshold: float = 1.0,
        interpolators: dict[str, Callable[[Any, Any, float], Any]] | None = None,
        max_gap: dict[str, float] | None = None,
    ) -> None:
        if anchor in partners:
            raise ValueError(f"anchor stream {anchor!r} is also listed as a partner")
        self.anchor = anchor
        self.partners = list(partners)
        self.tolerance = float(tolerance)
        self.jump_threshold = float(jump_threshold)
        self.interpolators = dict(interpolators or {})
        self.max_gap = dict(max_gap or {})  # stream -> widest pair of messages to interpolate across [s]
        self.buffers = {name: _Buffer(buffer_size) for name in [anchor, *partners]}
        self.jumps = 0

    def streams(self) -> list[str]:
        return [self.anchor, *self.partners]

    def clear(self) -> int:
        """Empty every buffer; returns how many anchors were waiting."""
        n = len(self.buffers[self.anchor])
        for b in self.buffers.values():
            b.clear()
        return n

    def add(self, stream: str, stamp: float, item: Any) -> SyncResult:
        result = SyncResult()
        buf = self.buffers[stream]
        if len(buf) and stamp < buf.stamps[-1] - self.jump_threshold:
            result.time_jump = True
            result.discarded_on_jump = self.clear()
            self.jumps += 1
        evicted = buf.add(stamp, item)
        if evicted is not None and stream == self.anchor:
            result.dropped.append(DroppedAnchor(evicted[0], self._waiting_for(evicted[0]), overflow=True))
        self._emit(result)
        return result

    # -- matching

    def _match(self, stream: str, t: float) -> tuple[str, Any, float]:
        buf = self.buffers[stream]
        tol = self.tolerance
        if not len(buf):
            return WAIT, None, 0.0
        stamps = buf.stamps
        i = bisect.bisect_left(stamps, t)  # stamps[i-1] < t <= stamps[i]
        after = i if i < len(stamps) else None
        before = i - 1 if i > 0 else None
        latest = stamps[-1]
        if after is not None and stamps[after] == t:
            return MATCH, buf.items[after], 0.0
        interp = self.interpolators.get(stream)
        gap = max(self.max_gap.get(stream, 0.0), 2 * tol)
        if interp is not None and before is not None and after is not None and stamps[after] - stamps[before] <= gap:
            t0, t1 = stamps[before], stamps[after]
            return MATCH, interp(buf.items[before], buf.items[after], (t - t0) / (t1 - t0)), 0.0
        best = None
        for j in (before, after):
            if j is not None and abs(stamps[j] - t) <= tol and (best is None or abs(stamps[j] - t) < abs(stamps[best] - t)):
                best = j
        if latest < t:
            return WAIT, None, 0.0  # the stream has not reached t: a closer or bracketing message may come
        if best is not None:
            return MATCH, buf.items[best], stamps[best] - t
        if latest > t + tol:
            return NEVER, None, 0.0
        return WAIT, None, 0.0

    def _waiting_for(self, t: float) -> list[str]:
        return [s for s in self.partners if self._match(s, t)[0] != MATCH]

    def _emit(self, result: SyncResult) -> None:
        anchors = self.buffers[self.anchor]
        while len(anchors):
            t = anchors.stamps[0]
            items = {self.anchor: anchors.items[0]}
            offsets: dict[str, float] = {}
            waiting, missing = False, []
            for s in self.partners:
                verdict, item, offset = self._match(s, t)
                if verdict == MATCH:
                    items[s], offsets[s] = item, offset
                elif verdict == NEVER:
                    missing.append(s)
                else:
                    waiting = True
            if missing:
                anchors.pop(0)
                result.dropped.append(DroppedAnchor(t, missing, overflow=False))
                continue
            if waiting:
                return  # in stamp order: later anchors wait behind this one
            anchors.pop(0)
            result.sets.append(SyncedSet(t, items, offsets))
            # Later anchors are newer, so partners older than t - tolerance can never pair again.
            for s in self.partners:
                keep_from = t - self.tolerance
                if s in self.interpolators:  # keep one message before, for interpolation
                    b = self.buffers[s]
                    i = bisect.bisect_left(b.stamps, keep_from)
                    if i > 0:
                        keep_from = b.stamps[i - 1]
                self.buffers[s].prune_before(keep_from)


# ----------------------------------------------------------------------------- the frames' time line

ACCEPT, OUT_OF_ORDER, HELD, DROP_BACK, NEW_LINE_BACK, NEW_LINE_FORWARD = (
    "accept", "out_of_order", "held", "drop_back", "new_line_back", "new_line_forward",
)


class TimeLine:
    """Decides whether a frame's stamp continues the stream, so one wild stamp cannot reset the memory.

    A frame continues the line when it is newer than the last accepted one by at most a
    gap (``threshold``, at least 1 s, or five frame intervals for slow cameras, at most
    10 s). A small step back is out of order (dropped). A frame far from the line, in
    either direction (a bag restarting, a clock jump, a forged stamp), is *held*: dropped
    and remembered as the start of a candidate line. Only when ``confirm`` consecutive
    far frames continue that candidate does the line switch (``NEW_LINE_BACK`` asks the
    node to reset the memory; forward, the stream just goes on). A single frame at -5 s,
    +1e6 s or the int32 maximum is held and forgotten as soon as a frame continues the
    real line.
    """

    def __init__(self, threshold: float, confirm: int = 3) -> None:
        self.threshold = float(threshold)
        self.confirm = max(1, int(confirm))
        self.last: float | None = None
        self.interval = 0.0  # last accepted step [s]
        self._candidate: list[float] = []

    def reset(self) -> None:
        self.last, self.interval, self._candidate = None, 0.0, []

    def gap(self) -> float:
        return max(self.threshold, min(max(1.0, 5.0 * self.interval), 10.0))

    def check(self, t: float, follow_back: bool = True) -> str:
        """The verdict for a frame at ``t``; ``follow_back=False`` (on_time_jump: drop) never
        switches to an older line: such frames are dropped until time passes the last stamp."""
        if self.last is None:
            self.last = t
            return ACCEPT
        d = t - self.last
        if 0 < d <= self.gap():
            self.interval, self.last, self._candidate = d, t, []
            return ACCEPT
        if -self.threshold <= d <= 0:
            return OUT_OF_ORDER
        if d < 0 and not follow_back:
            return DROP_BACK
        c = self._candidate
        if c and 0 < t - c[-1] <= self.gap():
            c.append(t)
        else:
            self._candidate = c = [t]
        if len(c) < self.confirm:
            return HELD
        self._candidate, self.last = [], t
        self.interval = (c[-1] - c[0]) / (len(c) - 1) if len(c) > 1 else 0.0
        return NEW_LINE_BACK if d < 0 else NEW_LINE_FORWARD
