"""A fast exact ray caster for box scenes: colour, depth, class labels and instance ids.

Every surface in a scene is a box (object parts in their object's yawed frame,
walls in world axes) or one of two planes (floor z = 0, ceiling z = height).
For each frame the renderer

1. transforms the 8 corners of every box into the camera at once and keeps the
   boxes in front of the camera and within ``far`` metres (frustum culling);
2. projects each kept box to its pixel rectangle;
3. visits the kept boxes nearest first and skips any box whose nearest corner
   lies behind everything already drawn in its rectangle (cheap occlusion
   culling: rooms behind a wall cost almost nothing);
4. ray-casts the pixels of the rectangle against the box with the slab test in
   the box's own frame and keeps the nearest hit per pixel (a z-buffer).

Depth is the optical-axis z of the hit (what a depth camera reports), in metres.
Pixel (u, v) looks along ((u - cx)/fx, (v - cy)/fy, 1) in the optical frame.
Shading is the part's colour times a fixed directional light (Lambert) plus ambient,
with a tile pattern on floors so the floor has texture.
"""

from __future__ import annotations

import math

import numpy as np

from spatial_ttt_ros.classes import CLASS_TO_ID
from spatial_ttt_ros.sim.scene_types import Scene

DEFAULT_HFOV_DEG = 65.0
NEAR = 0.05  # metres: hits closer than this are ignored (camera near plane)
_LIGHT = np.array([0.35, 0.55, 0.76])
_LIGHT = _LIGHT / np.linalg.norm(_LIGHT)


def intrinsics(width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG) -> np.ndarray:
    """(3, 3) pinhole K with square pixels and the principal point at the image centre."""
    fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[fx, 0.0, (width - 1) / 2.0], [0.0, fx, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def _rotz(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class Renderer:
    """Renders ``scene`` at ``width`` x ``height`` pixels.

    ``render(T_world_cam)`` -> (rgb (H, W, 3) uint8, depth (H, W) float32 metres,
    labels (H, W) uint16 class id = CLASSES index + 1 (0 = wall/floor/ceiling),
    instances (H, W) uint16 instance_id (0 = wall/floor/ceiling)).
    """

    def __init__(self, scene: Scene, width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG, far: float = 40.0):
        if width < 8 or height < 8:
            raise ValueError(f"image size {width}x{height} is too small (at least 8x8)")
        self.scene = scene
        self.width, self.height = int(width), int(height)
        self.K = intrinsics(self.width, self.height, hfov_deg)
        self.far = float(far)
        u = (np.arange(self.width) - self.K[0, 2]) / self.K[0, 0]
        v = (np.arange(self.height) - self.K[1, 2]) / self.K[1, 1]
        uu, vv = np.meshgrid(u, v)
        # (H, W, 3) optical-frame ray directions with z = 1, so a ray parameter is a depth.
        self._dirs = np.stack([uu, vv, np.ones_like(uu)], axis=-1)
        self._u32 = u.astype(np.float32)  # (W,) x/z of each column
        self._v32 = v.astype(np.float32)[:, None].reshape(-1)  # (H,) y/z of each row

        centers, halves, rots, colors, labels, insts = [], [], [], [], [], []
        for w in scene.walls:
            centers.append(w.center)
            halves.append(w.size / 2)
            rots.append(np.eye(3))
            colors.append(w.color)
            labels.append(0)
            insts.append(0)
        for o in scene.objects:
            R = _rotz(o.yaw)
            for p in o.parts:
                centers.append(o.center + R @ p.center)
                halves.append(p.size / 2)
                rots.append(R)
                colors.append(p.color)
                labels.append(CLASS_TO_ID[o.label])
                insts.append(o.instance_id)
        n = len(centers)
        self._centers = np.array(centers, dtype=np.float64).reshape(n, 3)
        self._halves = np.array(halves, dtype=np.float64).reshape(n, 3)
        self._rots = np.array(rots, dtype=np.float64).reshape(n, 3, 3)  # world <- box
        self._colors = np.array(colors, dtype=np.float64).reshape(n, 3)
        self._labels = np.array(labels, dtype=np.uint16)
        self._insts = np.array(insts, dtype=np.uint16)
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
        # (n, 8, 3) world corners
        self._corners = self._centers[:, None, :] + np.einsum("nij,nkj->nki", self._rots, signs[None] * self._halves[:, None, :])
        # Shade of each of the 6 faces (axis * 2 + (0: -side, 1: +side)) of each box.
        face_normals = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=np.float64)
        world_normals = np.einsum("nij,fj->nfi", self._rots, face_normals)
        self._face_shade = 0.45 + 0.55 * np.clip(world_normals @ _LIGHT, 0.0, None) + 0.1 * world_normals[..., 0] ** 2
        # Floor and ceiling colour per room, found by the hit point's room cell.
        self._room_lo = np.array([r.min_xy for r in scene.rooms]).reshape(-1, 2)
        self._room_hi = np.array([r.max_xy for r in scene.rooms]).reshape(-1, 2)
        self._floor_colors = np.array([r.floor_color for r in scene.rooms]).reshape(-1, 3)
        self._ceiling_color = np.array([0.93, 0.93, 0.92])

    @property
    def n_boxes(self) -> int:
        return len(self._centers)

    def render(self, T_world_cam: np.ndarray, shade: bool = True):
        """Render one view. ``T_world_cam`` (4, 4) maps optical-frame points into the world.

        With ``shade=False`` the rgb output is None (faster, for visibility counting).
        """
        T = np.asarray(T_world_cam, dtype=np.float64)
        R_wc, t_wc = T[:3, :3], T[:3, 3]
        H, W = self.height, self.width
        dirs = self._dirs

        # ---- floor and ceiling planes
        dz = dirs @ R_wc[2]  # world z component of each ray (per unit depth)
        cam_z = t_wc[2]
        ceil_h = self.scene.height
        with np.errstate(divide="ignore", invalid="ignore"):
            t_floor = np.where(dz < -1e-9, -cam_z / dz, np.inf)
            t_ceil = np.where(dz > 1e-9, (ceil_h - cam_z) / dz, np.inf)
        depth = np.minimum(t_floor, t_ceil).astype(np.float32)
        is_floor = t_floor <= t_ceil
        box_id = np.full((H, W), -1, dtype=np.int32)  # -1 floor/ceiling
        face = np.zeros((H, W), dtype=np.int8)

        # ---- frustum culling of all boxes at once
        R_cw = R_wc.T
        cam_corners = (self._corners - t_wc) @ R_cw.T  # (n, 8, 3) optical frame
        z = cam_corners[..., 2]
        zmin = z.min(axis=1)
        zmax = z.max(axis=1)
        keep = (zmax > NEAR) & (zmin < self.far)
        idx = np.nonzero(keep)[0]
        if len(idx):
            cc = cam_corners[idx]
            zc = cc[..., 2]
            straddle = zc.min(axis=1) <= NEAR
            with np.errstate(divide="ignore", invalid="ignore"):
                u = cc[..., 0] / zc * self.K[0, 0] + self.K[0, 2]
                v = cc[..., 1] / zc * self.K[1, 1] + self.K[1, 2]
            u0 = np.where(straddle, 0, np.floor(np.nan_to_num(u.min(axis=1), nan=0.0, posinf=W, neginf=-1)))
            u1 = np.where(straddle, W, np.ceil(np.nan_to_num(u.max(axis=1), nan=W, posinf=W, neginf=-1)) + 1)
            v0 = np.where(straddle, 0, np.floor(np.nan_to_num(v.min(axis=1), nan=0.0, posinf=H, neginf=-1)))
            v1 = np.where(straddle, H, np.ceil(np.nan_to_num(v.max(axis=1), nan=H, posinf=H, neginf=-1)) + 1)
            u0 = np.clip(u0, 0, W).astype(np.int64)
            u1 = np.clip(u1, 0, W).astype(np.int64)
            v0 = np.clip(v0, 0, H).astype(np.int64)
            v1 = np.clip(v1, 0, H).astype(np.int64)
            on_screen = (u1 > u0) & (v1 > v0)
            order = np.argsort(zmin[idx], kind="stable")
            M_all = np.einsum("nji,jk->nik", self._rots[idx], R_wc)  # box <- camera rotation
            o_all = np.einsum("nji,nj->ni", self._rots[idx], t_wc - self._centers[idx])  # camera origin in box frame
            M_all = M_all.astype(np.float32)
            # Slab constants per box and axis: the ray enters/leaves slab i at (+-e_i - o_i) / d_i.
            e_all = self._halves[idx]
            lo_c = (-e_all - o_all).astype(np.float32)
            hi_c = (e_all - o_all).astype(np.float32)
            us, vs = self._u32, self._v32
            for k in order:
                if not on_screen[k]:
                    continue
                a0, a1, b0, b1 = v0[k], v1[k], u0[k], u1[k]
                dview = depth[a0:a1, b0:b1]
                zbox = max(float(zmin[idx[k]]), NEAR)
                if zbox >= dview.max():
                    continue  # everything in the rectangle is already nearer than the box
                M = M_all[k]
                uu, vv = us[b0:b1], vs[a0:a1, None]
                tnear = tfar = None
                comps = []
                with np.errstate(divide="ignore", invalid="ignore"):
                    for i in range(3):
                        # Box-frame ray direction component i, separable in u and v (dirs = (u, v, 1)).
                        d = vv * M[i, 1] + (uu * M[i, 0] + M[i, 2])
                        t1 = lo_c[k, i] / d
                        t2 = hi_c[k, i] / d
                        mn = np.minimum(t1, t2)
                        mx = np.maximum(t1, t2)
                        comps.append((d, mn))
                        if tnear is None:
                            tnear, tfar = mn, mx
                        else:
                            np.maximum(tnear, mn, out=tnear)
                            np.minimum(tfar, mx, out=tfar)
                # NaN (a ray in a slab's plane) compares False: a miss.
                hit = (tnear <= tfar) & (tnear > NEAR) & (tnear < dview)
                if not hit.any():
                    continue
                t_hit = tnear[hit]
                dview[hit] = t_hit
                box_id[a0:a1, b0:b1][hit] = idx[k]
                # Entry face: the axis whose slab was entered last; its side opposes the ray direction.
                fx = np.full(t_hit.shape, 2 * 2, dtype=np.int8)
                fx += (comps[2][0][hit] < 0)
                for i in (1, 0):
                    d_i, mn_i = comps[i]
                    on_i = mn_i[hit] == t_hit
                    fx = np.where(on_i, 2 * i + (d_i[hit] < 0), fx).astype(np.int8)
                face[a0:a1, b0:b1][hit] = fx

        hit_box = box_id >= 0
        safe_ids = np.where(hit_box, box_id, 0)
        labels = np.where(hit_box, self._labels[safe_ids], 0).astype(np.uint16)
        instances = np.where(hit_box, self._insts[safe_ids], 0).astype(np.uint16)
        depth = depth.astype(np.float32)
        if not shade:
            return None, depth, labels, instances

        rgb = np.empty((H, W, 3), dtype=np.float64)
        shade_v = self._face_shade[safe_ids, face]
        rgb[:] = self._colors[safe_ids] * shade_v[..., None]
        plane = ~hit_box
        if plane.any():
            d = depth[plane].astype(np.float64)
            world_dirs = dirs[plane] @ R_wc.T
            pts = t_wc + world_dirs * d[:, None]
            floor = is_floor[plane]
            inside = np.all((pts[:, None, :2] >= self._room_lo[None] - 0.06) & (pts[:, None, :2] <= self._room_hi[None] + 0.06), axis=-1)
            room = np.where(inside.any(axis=1), inside.argmax(axis=1), 0)
            # 0.6 m floor tiles, alternating brightness, so the floor has texture.
            tile = ((np.floor(pts[:, 0] / 0.6) + np.floor(pts[:, 1] / 0.6)) % 2) * 0.08 + 0.82
            floor_rgb = self._floor_colors[room] * tile[:, None]
            ceil_rgb = np.broadcast_to(self._ceiling_color * 0.9, floor_rgb.shape)
            rgb[plane] = np.where(floor[:, None], floor_rgb, ceil_rgb)
        return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), depth, labels, instances
