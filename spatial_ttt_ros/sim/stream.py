"""A simulated camera stream in memory: scene + trajectory + renderer, no bag needed.

Used by training, benchmarks and offline evaluation. Frames are rendered on
demand (``frames()`` is a generator), so a 10,000-frame stream never sits in
memory. Stamps are seconds from the first frame (frame i at i / rate_hz).

An instance counts as *seen* in a frame when at least ``min_visible_pixels``
of its pixels are visible: 20 pixels at 160x120, scaled with the image area
(80 at 320x240), i.e. about 0.1 % of the image, never fewer than 4.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from spatial_ttt_ros.frames import CameraFrame
from spatial_ttt_ros.sim.render import Renderer
from spatial_ttt_ros.sim.scene import Scene, generate_scene
from spatial_ttt_ros.sim.trajectory import generate_trajectory

MIN_SIZE = 32  # pixels: smallest width or height a simulated camera may have


def min_visible_pixels(width: int, height: int) -> int:
    """Pixels an instance needs in one frame to count as seen (20 at 160x120, scaled by area)."""
    return max(4, int(round(20.0 * width * height / (160 * 120))))


@dataclass
class SimStream:
    """A simulated stream. ``trajectory`` is [(stamp s, T_world_cam (4, 4))]."""

    scene: Scene
    trajectory: list[tuple[float, np.ndarray]]
    rate_hz: float
    width: int
    height: int
    seed: int = 0
    renderer: Renderer = field(init=False, repr=False)
    _first_seen_frame: dict[int, int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.renderer = Renderer(self.scene, self.width, self.height)

    @property
    def K(self) -> np.ndarray:
        """(3, 3) intrinsics shared by colour, depth, labels and instances."""
        return self.renderer.K

    @property
    def n_frames(self) -> int:
        return len(self.trajectory)

    @property
    def min_pixels(self) -> int:
        return min_visible_pixels(self.width, self.height)

    def render(self, index: int) -> tuple[CameraFrame, np.ndarray]:
        """Frame ``index`` as (CameraFrame with rgb, depth, labels; instances (H, W) uint16)."""
        stamp, T = self.trajectory[index]
        rgb, depth, labels, instances = self.renderer.render(T)
        frame = CameraFrame(stamp=stamp, depth=depth, K=self.K, T_world_cam=T, rgb=rgb, labels=labels,
                            frame_index=index)
        return frame, instances

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[CameraFrame, np.ndarray]]:
        """Yield (CameraFrame, instances) for frames ``start`` .. ``stop`` - 1 in order.

        A complete pass from frame 0 also records first sightings, so ``first_seen``
        afterwards costs nothing.
        """
        stop = self.n_frames if stop is None else min(stop, self.n_frames)
        tracking = start == 0 and self._first_seen_frame is None
        seen: dict[int, int] = {}
        for i in range(start, stop):
            frame, instances = self.render(i)
            if tracking:
                self._note_visible(instances, i, seen)
            yield frame, instances
        if tracking and stop == self.n_frames:
            self._first_seen_frame = seen

    def _note_visible(self, instances: np.ndarray, index: int, seen: dict[int, int]) -> None:
        counts = np.bincount(instances.ravel(), minlength=1)
        for inst in np.nonzero(counts >= self.min_pixels)[0]:
            inst = int(inst)
            if inst != 0 and inst not in seen:
                seen[inst] = index

    @property
    def first_seen_frame(self) -> dict[int, int]:
        """instance_id -> index of the first frame it is seen in (only instances ever seen)."""
        if self._first_seen_frame is None:
            seen: dict[int, int] = {}
            for i, (_, T) in enumerate(self.trajectory):
                _, _, _, instances = self.renderer.render(T, shade=False)  # no colour needed
                self._note_visible(instances, i, seen)
            self._first_seen_frame = seen
        return dict(sorted(self._first_seen_frame.items()))

    @property
    def first_seen(self) -> dict[int, float]:
        """instance_id -> seconds since the first frame when it is first seen."""
        t0 = self.trajectory[0][0]
        return {k: self.trajectory[i][0] - t0 for k, i in self.first_seen_frame.items()}

    @property
    def visited_rooms(self) -> list[int]:
        """Indices of the rooms the camera stood in, sorted."""
        rooms = {self.scene.room_of(T[:2, 3]) for _, T in self.trajectory}
        return sorted(r for r in rooms if r >= 0)


def simulate_stream(seed: int, n_rooms: int, n_frames: int, rate_hz: float, width: int, height: int) -> SimStream:
    """Scene from ``seed`` with ``n_rooms`` rooms, a walk of ``n_frames`` at ``rate_hz``, rendered at width x height."""
    if int(width) < MIN_SIZE or int(height) < MIN_SIZE:
        raise ValueError(f"image size {width}x{height} is too small (at least {MIN_SIZE}x{MIN_SIZE})")
    scene = generate_scene(seed, n_rooms)
    trajectory = generate_trajectory(scene, n_frames, rate_hz, seed)
    return SimStream(scene, trajectory, float(rate_hz), int(width), int(height), int(seed))
