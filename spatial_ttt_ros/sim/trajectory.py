"""Camera walks through a scene: every room, looking around, coming back.

The walker carries the camera at a fixed height of 1.2-1.6 m (a handheld camera
or a robot mast) at 0.3-0.8 m/s. A *tour* is a depth-first walk over the door
graph that starts and ends in room 0, so the camera passes back through rooms
it has already seen. In each room it stands at the room's hub (kept free of
furniture by the scene generator) and looks around (a full turn on the first
visit, a partial one on later visits, with the head tilted up and down); it goes
from hub to hub through the doorways' centres. Tours repeat (with new look-around
choices) until the stream is long enough; when a stream is too short for one
tour at leisurely pace, the walker hurries (up to 0.8 m/s, faster turns, no
pauses) and the stream ends where it is.

Yaw is smooth: turns in place use a smoothstep profile; while walking the
heading follows the path with a 0.35 m look-ahead, so corners are rounded.

Output poses are ``T_world_cam`` (4, 4): optical frame (x right, y down,
z forward) -> REP-103 world (z up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from spatial_ttt_ros.sim.scene_types import Scene

LOOKAHEAD = 0.35  # metres of path used to smooth the heading while walking
DOOR_APPROACH = 0.5  # metres before and after a doorway the walker lines up with it


def camera_pose(x: float, y: float, z: float, yaw: float, pitch: float) -> np.ndarray:
    """(4, 4) T_world_cam for a camera at (x, y, z) looking along heading ``yaw``, tilted up by ``pitch`` (rad)."""
    cp, sp, cy, sy = math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
    forward = np.array([cp * cy, cp * sy, sp])
    right = np.array([sy, -cy, 0.0])
    down = np.cross(forward, right)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2] = right, down, forward
    T[:3, 3] = (x, y, z)
    return T


def _smoothstep(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


@dataclass
class _Segment:
    """A piece of the walk: ``duration`` seconds, ``at(tau)`` -> (N, 4) rows x, y, yaw, pitch."""

    duration: float
    at: Callable[[np.ndarray], np.ndarray]


def _turn(x, y, yaw0, yaw1, pitch0, pitch1, duration) -> _Segment:
    def at(tau):
        s = _smoothstep(tau / max(duration, 1e-9))
        n = len(tau)
        return np.stack([np.full(n, x), np.full(n, y), yaw0 + (yaw1 - yaw0) * s, pitch0 + (pitch1 - pitch0) * s], 1)

    return _Segment(duration, at)


class _Polyline:
    def __init__(self, points: np.ndarray):
        self.points = np.asarray(points, dtype=np.float64)
        seg = np.diff(self.points, axis=0)
        self.lengths = np.linalg.norm(seg, axis=1)
        self.cum = np.concatenate([[0.0], np.cumsum(self.lengths)])
        self.length = float(self.cum[-1])

    def point(self, s: np.ndarray) -> np.ndarray:
        s = np.clip(s, 0.0, self.length)
        i = np.clip(np.searchsorted(self.cum, s, side="right") - 1, 0, len(self.lengths) - 1)
        frac = (s - self.cum[i]) / np.maximum(self.lengths[i], 1e-12)
        return self.points[i] + (self.points[i + 1] - self.points[i]) * frac[:, None]

    def heading(self, s: np.ndarray) -> np.ndarray:
        a = self.point(np.asarray(s) - LOOKAHEAD)
        b = self.point(np.asarray(s) + LOOKAHEAD)
        d = b - a
        return np.arctan2(d[:, 1], d[:, 0])


def _walk(path: _Polyline, speed: float, pitch: float, yaw_ref: float) -> _Segment:
    """Walk ``path`` with a trapezoidal speed profile (0.6 s ramps); heading unwrapped near ``yaw_ref``."""
    ramp = min(0.6, path.length / speed / 2)
    duration = path.length / speed + ramp

    def s_of(tau):
        # distance covered with accel a = speed / ramp for ``ramp`` s, cruise, decel for ``ramp`` s
        tau = np.clip(tau, 0.0, duration)
        a = speed / max(ramp, 1e-9)
        s = np.where(tau < ramp, 0.5 * a * tau**2, 0.5 * a * ramp**2 + speed * (tau - ramp))
        t_end = duration - tau
        s = np.where(tau > duration - ramp, path.length - 0.5 * a * t_end**2, s)
        return np.clip(s, 0.0, path.length)

    def at(tau):
        s = s_of(tau)
        p = path.point(s)
        yaw = np.unwrap(np.concatenate([[yaw_ref], path.heading(s)]))[1:]
        return np.stack([p[:, 0], p[:, 1], yaw, np.full(len(tau), pitch)], 1)

    return _Segment(duration, at)


def _nearest_angle(target: float, ref: float) -> float:
    return ref + (target - ref + math.pi) % (2 * math.pi) - math.pi


def _dfs_tour(scene: Scene, start: int, reverse: bool) -> list[int]:
    """Rooms in the order a depth-first walk over doors visits them, returning to ``start``."""
    tour = [start]
    seen = {start}

    def visit(r: int) -> None:
        nbrs = [b for b, _ in scene.neighbours(r)]
        if reverse:
            nbrs = nbrs[::-1]
        for b in nbrs:
            if b not in seen:
                seen.add(b)
                tour.append(b)
                visit(b)
                tour.append(r)

    visit(start)
    return tour


def _door_between(scene: Scene, a: int, b: int):
    for other, door in scene.neighbours(a):
        if other == b:
            return door
    raise ValueError(f"rooms {a} and {b} share no door")


class _Planner:
    def __init__(self, scene: Scene, rng: np.random.Generator, speed: float, turn_rate: float, pause: float, look: float):
        self.scene, self.rng = scene, rng
        self.speed, self.turn_rate, self.pause, self.look = speed, turn_rate, pause, look
        self.walk_pitch = math.radians(-8.0)
        self.segments: list[_Segment] = []
        self.duration = 0.0

    def _add(self, seg: _Segment) -> None:
        self.segments.append(seg)
        self.duration += seg.duration

    def turn_to(self, x, y, yaw0, yaw1, pitch0, pitch1) -> None:
        dur = max(abs(yaw1 - yaw0) / self.turn_rate, abs(pitch1 - pitch0) / (self.turn_rate * 0.5), 0.25)
        self._add(_turn(x, y, yaw0, yaw1, pitch0, pitch1, dur))

    def look_around(self, xy, yaw, pitch, first_visit: bool) -> tuple[float, float]:
        """Turn in place in steps (about 360 deg on a first visit), tilting the head; returns the final yaw, pitch."""
        total = (2 * math.pi if first_visit else self.rng.uniform(0.5, 1.0) * math.pi) * self.look
        direction = 1.0 if self.rng.random() < 0.5 else -1.0
        steps = max(1, int(round(total / math.radians(100))))
        for _ in range(steps):
            new_yaw = yaw + direction * total / steps
            new_pitch = math.radians(self.rng.uniform(-28.0, 2.0))
            self.turn_to(xy[0], xy[1], yaw, new_yaw, pitch, new_pitch)
            yaw, pitch = new_yaw, new_pitch
            if self.pause > 0:
                self._add(_turn(xy[0], xy[1], yaw, yaw, pitch, pitch, self.pause * self.rng.uniform(0.5, 1.5)))
        return yaw, pitch

    def walk(self, points: np.ndarray, yaw: float, pitch: float) -> float:
        path = _Polyline(points)
        if path.length < 1e-6:
            return yaw
        start_heading = _nearest_angle(float(path.heading(np.array([0.0]))[0]), yaw)
        self.turn_to(points[0][0], points[0][1], yaw, start_heading, pitch, self.walk_pitch)
        seg = _walk(path, self.speed, self.walk_pitch, start_heading)
        self._add(seg)
        return float(seg.at(np.array([seg.duration]))[0, 2])

    def tour(self, rooms: list[int], yaw: float, pitch: float, visited: set[int], look_first: bool = True) -> tuple[float, float]:
        """Walk hub to hub through ``rooms`` (rooms[0] is where the walker stands), looking around in each."""
        for i, r in enumerate(rooms):
            hub = self.scene.rooms[r].hub
            if i > 0:
                a = rooms[i - 1]
                door = _door_between(self.scene, a, r)
                normal = np.zeros(2)
                hub_a = self.scene.rooms[a].hub
                normal[1 - door.axis] = math.copysign(1.0, hub[1 - door.axis] - hub_a[1 - door.axis])
                pts = np.array([hub_a, door.center - normal * DOOR_APPROACH, door.center + normal * DOOR_APPROACH, hub])
                yaw = self.walk(pts, yaw, pitch)
                pitch = self.walk_pitch
            if i > 0 or look_first:
                yaw, pitch = self.look_around(hub, yaw, pitch, first_visit=r not in visited)
            visited.add(r)
        return yaw, pitch


def generate_trajectory(scene: Scene, n_frames: int, rate_hz: float, seed: int) -> list[tuple[float, np.ndarray]]:
    """``n_frames`` poses at ``rate_hz``: [(stamp seconds from 0, T_world_cam (4, 4))]."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")
    rng_root = np.random.SeedSequence([int(seed), 0x7EA1])
    base_rng = np.random.default_rng(rng_root)
    height = float(base_rng.uniform(1.2, 1.6))
    start_yaw = float(base_rng.uniform(-math.pi, math.pi))
    target = (n_frames - 1) / rate_hz

    # From leisurely to hurried: the first pace whose single tour fits the stream, else the fastest.
    paces = [
        (float(base_rng.uniform(0.4, 0.6)), math.radians(50), 0.8, 1.0),
        (0.65, math.radians(80), 0.3, 1.0),
        (0.8, math.radians(120), 0.0, 0.75),
    ]
    tour0 = _dfs_tour(scene, 0, reverse=False)
    planner = None
    for i, (speed, turn_rate, pause, look) in enumerate(paces):
        planner = _Planner(scene, np.random.default_rng(rng_root.spawn(1)[0]), speed, turn_rate, pause, look)
        yaw, pitch = planner.tour(tour0, start_yaw, 0.0, set())
        if planner.duration > target and i < len(paces) - 1:
            continue  # one tour does not fit: hurry
        # Repeat tours (alternating the order children are visited) until the stream is covered.
        visited = set(tour0)
        k = 1
        while planner.duration < target:
            if len(tour0) == 1:  # a single room: keep looking around
                yaw, pitch = planner.look_around(scene.rooms[0].hub, yaw, pitch, first_visit=False)
            else:
                yaw, pitch = planner.tour(_dfs_tour(scene, 0, reverse=k % 2 == 1), yaw, pitch, visited, look_first=False)
            k += 1
        break

    stamps = np.arange(n_frames, dtype=np.float64) / rate_hz
    starts = np.concatenate([[0.0], np.cumsum([s.duration for s in planner.segments])])
    which = np.clip(np.searchsorted(starts, stamps, side="right") - 1, 0, len(planner.segments) - 1)
    states = np.zeros((n_frames, 4))
    for k in np.unique(which):
        mask = which == k
        states[mask] = planner.segments[k].at(np.minimum(stamps[mask] - starts[k], planner.segments[k].duration))
    # A gentle 1.8 Hz bob of +-1 cm, as from a walking person or a swaying mast.
    z = height + 0.01 * np.sin(2 * math.pi * 1.8 * stamps)
    return [(float(t), camera_pose(s[0], s[1], zz, s[2], s[3])) for t, s, zz in zip(stamps, states, z)]
