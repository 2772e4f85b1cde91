"""The explicit object map: the baseline memory a team would otherwise build.

``ObjectMapMemory`` is the explicit object map a team would otherwise build (what
ConceptGraphs- or Hydra-style mappers do): world-frame detections are clustered into
object instances, and the room extent is a 2D occupancy grid of floor space seen.
It reads only ``tokens.observations`` (world detections), the ego position and the
geometry-token grid, so it sees exactly what the learned memory sees. Its state grows
with the number of objects and with the floor area covered.

The full-context and sliding-window baselines are variants of the learned model
(``memory.model.TTTMemory`` with backbone flags), built by ``memory.factory.make_memory``.

Clustering, per frame:

1. Each observation is compared with the instances whose votes include its class
   (3D centre distance against a class-size-aware gate, or 3D box overlap).
2. Greedy nearest-first assignment, at most one observation per instance per frame,
   except fragments (a second observation whose box overlaps the one already
   assigned: a chair split in two by a table edge) which merge too. Two chairs side
   by side in one frame therefore stay two instances.
3. An observation with no same-class match may still be a class confusion of a
   well-established instance of another class at the same place and with a similar
   size: it then only adds a class vote there (the instance's label is its vote
   argmax) instead of creating a spurious object.
4. Anything else starts a new instance. Instances observed fewer than ``min_count``
   times are left out of the inventory (one-off false positives) and forgotten after
   ``prune_after`` seconds.
5. Every ``merge_every`` frames (and, on a copy, before decoding) instances of one
   label whose boxes overlap or whose centres are close are merged; a weak instance
   inside a much stronger one of another label and of the same shape is folded into
   it (class confusion).

Odometry drift (a robot's pose estimate wanders by a metre over a long run) is
handled the way a mapper without full loop closure can: a drift offset follows the
median residual between observations and well-established instances (slowly, with
a deadband, x/y only), and a new instance born near a same-class object unseen for a
while, never seen in the same frame as it and much weaker, is folded into it as a
drifted re-sighting.

Instance geometry: a running (score-weighted) mean of the observed centres drives
association; the reported box is the robust union of the last ``box_history``
observed boxes (low percentile of the lower corners, high of the upper), because a
single view only shows the visible surface and under-estimates depth extent.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np

from spatial_ttt_ros.classes import CLASS_TO_ID, CLASSES, TYPICAL_FOOTPRINT
from spatial_ttt_ros.inventory import Inventory, InventoryObject
from spatial_ttt_ros.memory.floor_grid import FloorGrid
from spatial_ttt_ros.memory.object_instances import N_CLASSES, ObjectInstance, containment, pieces_of_one

FORMAT = "spatial_ttt_ros.memory.object_map"
FORMAT_VERSION = 1

class ObjectMapMemory:
    """Explicit object map: world detections clustered into instances (``SpatialMemory``).

    Args:
        min_count: instances observed fewer times are treated as false positives.
        gate_scale: merge gate = ``gate_scale`` x the class's typical size (clipped to
            ``gate_min``..``gate_max`` m).
        box_history: observed boxes kept per instance for its robust extent.
        box_quantiles: percentiles of the lower / upper corners of the observed boxes
            forming the extent used for association and merging (wide: a union of views,
            so partial views of a big object fall inside it).
        size_quantiles: the same for the reported centre and size (narrow: per-view
            size noise would otherwise inflate the union; tuned on simulator streams).
        merge_every: frames between instance-merging passes.
        floor_resolution: room occupancy cell size (m).
        min_score: observations scored lower are ignored.
        min_cell_valid: geometry cells with less valid depth do not mark free space.
        contain_threshold: box containment above which two boxes are one object.
        prune_after: seconds after which an instance still seen fewer than
            ``min_count`` times is forgotten (0: never), so false positives do not
            pile up over a long run.
        confusion_ratio: an instance inside another of a different label seen at
            least this many times more often is taken for a class confusion of it.
        track_rate: fraction of the median residual (observation minus its
            well-established instance, x/y) added to the drift offset each frame
            (0: no drift tracking).
        track_deadband: residuals shorter than this (m) are ignored by the tracking.
        dup_radius, dup_ratio: a new instance born within ``dup_radius`` m of a
            same-class instance unseen for ``revisit_after`` s, never seen in the same
            frame as it, and seen ``dup_ratio`` times less, is a drifted re-sighting
            of it and is folded into it.
        anchor_min_count: sightings an instance needs to steer the drift tracking
            (twice this) or to absorb drifted duplicates.
    """

    name = "object_map"

    def __init__(
        self,
        min_count: int = 3,
        gate_scale: float = 0.6,
        gate_min: float = 0.25,
        gate_max: float = 1.0,
        box_history: int = 32,
        box_quantiles: tuple[float, float] = (15.0, 85.0),
        size_quantiles: tuple[float, float] = (40.0, 60.0),
        merge_every: int = 20,
        floor_resolution: float = 0.25,
        min_score: float = 0.0,
        min_cell_valid: float = 0.2,
        contain_threshold: float = 0.6,
        prune_after: float = 20.0,
        confusion_ratio: float = 4.0,
        track_rate: float = 0.05,
        track_deadband: float = 0.3,
        dup_radius: float = 1.5,
        dup_ratio: float = 2.0,
        anchor_min_count: int = 5,
        revisit_after: float = 5.0,
        name: str | None = None,
    ) -> None:
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if box_history < 1:
            raise ValueError(f"box_history must be >= 1, got {box_history}")
        self.min_count = int(min_count)
        self.gate_scale = float(gate_scale)
        self.gate_min = float(gate_min)
        self.gate_max = float(gate_max)
        self.box_history = int(box_history)
        self.box_quantiles = (float(box_quantiles[0]), float(box_quantiles[1]))
        self.size_quantiles = (float(size_quantiles[0]), float(size_quantiles[1]))
        self.merge_every = int(merge_every)
        self.floor_resolution = float(floor_resolution)
        self.min_score = float(min_score)
        self.min_cell_valid = float(min_cell_valid)
        self.contain_threshold = float(contain_threshold)
        self.prune_after = float(prune_after)
        self.confusion_ratio = float(confusion_ratio)
        self.track_rate = float(track_rate)
        self.track_deadband = float(track_deadband)
        self.dup_radius = float(dup_radius)
        self.dup_ratio = float(dup_ratio)
        self.anchor_min_count = int(anchor_min_count)
        self.revisit_after = float(revisit_after)
        if name:
            self.name = name
        self.reset()

    # -- protocol ------------------------------------------------------------------
    def config(self) -> dict:
        return {
            "min_count": self.min_count,
            "gate_scale": self.gate_scale,
            "gate_min": self.gate_min,
            "gate_max": self.gate_max,
            "box_history": self.box_history,
            "box_quantiles": list(self.box_quantiles),
            "size_quantiles": list(self.size_quantiles),
            "merge_every": self.merge_every,
            "floor_resolution": self.floor_resolution,
            "min_score": self.min_score,
            "min_cell_valid": self.min_cell_valid,
            "contain_threshold": self.contain_threshold,
            "prune_after": self.prune_after,
            "confusion_ratio": self.confusion_ratio,
            "track_rate": self.track_rate,
            "track_deadband": self.track_deadband,
            "dup_radius": self.dup_radius,
            "dup_ratio": self.dup_ratio,
            "anchor_min_count": self.anchor_min_count,
            "revisit_after": self.revisit_after,
        }

    def reset(self) -> None:
        self.instances: list[ObjectInstance] = []
        self.floor = FloorGrid(self.floor_resolution)
        self.offset = np.zeros(3)  # estimated pose drift (x, y): map = observed - offset
        self._next_uid = 1
        self._covis: set[tuple[int, int]] = set()  # (uid, uid) of duplicate candidates seen together
        self.start_stamp: float | None = None
        self.last_stamp = 0.0
        self.n_frames = 0
        # Read-out: on a snapshot, the ids of the live map's instances it shares (None on the map
        # itself); on the map, the inventory objects of the last read-out by instance uid.
        self._shared: set[int] | None = None
        self._read_out_cache: dict[int, tuple] = {}

    def gate(self, label: str) -> float:
        return float(np.clip(self.gate_scale * TYPICAL_FOOTPRINT.get(label, 0.5), self.gate_min, self.gate_max))

    def observe(self, tokens) -> None:
        if self.start_stamp is None:
            # tokens.time is seconds since the stream's first frame (tokenizer t0).
            self.start_stamp = float(tokens.stamp) - float(getattr(tokens, "time", 0.0))
        self.last_stamp = float(tokens.stamp)
        # Objects first: drift tracking may move the offset that the geometry then uses.
        self._observe_objects(list(getattr(tokens, "observations", []) or []))
        self._observe_geometry(tokens)
        self.n_frames += 1
        if self.merge_every > 0 and self.n_frames % self.merge_every == 0:
            self._prune()
            self._merge_pass()
            self._fold_duplicates()

    def inventory(self) -> Inventory:
        if self.start_stamp is None:
            return Inventory(objects=[], room=None, stamp=0.0, start_stamp=0.0)
        # Decode from a merged *copy*: asking questions must not change what later frames do
        # to the map (a live robot and a replay then give the same answers). The copy shares
        # the map's instances and copies one only before the merge changes it (``_own``), so a
        # read-out costs the merge, not a deep copy of the map.
        snap = copy.copy(self)
        snap.instances = list(self.instances)
        snap._covis = set(self._covis)
        snap._shared = {id(i) for i in self.instances}
        snap._merge_pass()
        snap._fold_duplicates()
        objects = []
        q_lo, q_hi = self.size_quantiles
        # An instance unchanged since the last read-out gives the same object: reuse it (the
        # inventory's objects are never changed once made). Unchanged = the same cached robust
        # box arrays (dropped by any new box or merge) and the same count, votes and first sighting.
        previous, made = self._read_out_cache, {}
        for inst in snap.instances:
            if inst.count < self.min_count:
                continue
            lo, hi = inst.robust_box(q_lo, q_hi)
            key = (inst.first_seen, inst.count, inst.votes.tobytes())
            old = previous.get(inst.uid)
            if old is not None and old[0] is lo and old[1] is hi and old[2] == key:
                obj = old[3]
            else:
                size = np.clip(hi - lo, 0.01, None)
                obj = InventoryObject(
                    label=inst.label,
                    center=0.5 * (lo + hi),
                    size=size,
                    first_seen=inst.first_seen,
                    # More sightings and a clearer class vote -> more confident.
                    confidence=float((1.0 - math.exp(-inst.count / 5.0)) * inst.votes.max() / max(inst.votes.sum(), 1e-9)),
                )
            made.setdefault(inst.uid, (lo, hi, key, obj))
            objects.append(obj)
        self._read_out_cache = made
        objects.sort(key=lambda o: (o.first_seen, o.label))
        return Inventory(objects=objects, room=self.floor.room(), stamp=self.last_stamp, start_stamp=self.start_stamp)

    def state_bytes(self) -> int:
        return sum(i.nbytes() for i in self.instances) + int(self.floor.grid.nbytes) + 64

    def save(self, path: str | Path) -> None:
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "config": self.config(),
            "start_stamp": self.start_stamp,
            "last_stamp": self.last_stamp,
            "n_frames": self.n_frames,
            "offset": self.offset.tolist(),
            "next_uid": self._next_uid,
            "covisible": sorted([list(p) for p in self._covis]),
            "instances": [i.to_json() for i in self.instances],
            "floor": self.floor.to_json(),
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)  # atomic: a crash mid-save never leaves a half-written state

    def load(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"object-map state {path} does not exist")
        try:
            doc = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not an object-map memory state (not JSON: {exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(f"{path} is not an object-map memory state (format={found!r}, expected {FORMAT!r})")
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path} has object-map format version {doc.get('format_version')}, this code reads {FORMAT_VERSION}"
            )
        try:
            cfg = doc["config"]
            history = int(cfg["box_history"])
            instances = [ObjectInstance.from_json(d, history) for d in doc["instances"]]
            floor = FloorGrid.from_json(doc["floor"])
            start = doc["start_stamp"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: object-map state is damaged ({type(exc).__name__}: {exc})") from exc
        # The state was built with its own settings; keep them so it continues consistently.
        self.__init__(**{k: (tuple(v) if k.endswith("_quantiles") else v) for k, v in cfg.items()}, name=doc.get("name"))
        self.instances = instances
        self.floor = floor
        self.start_stamp = None if start is None else float(start)
        self.last_stamp = float(doc["last_stamp"])
        self.n_frames = int(doc["n_frames"])
        self.offset = np.asarray(doc.get("offset", [0.0, 0.0, 0.0]), dtype=np.float64).reshape(3)
        self._next_uid = int(doc.get("next_uid", 1 + max([i.uid for i in instances], default=0)))
        self._covis = {(int(a), int(b)) for a, b in doc.get("covisible", [])}

    # -- objects -------------------------------------------------------------------
    def _new_instance(self, cid: int, obs_w: float, centre, lo, hi, t: float) -> ObjectInstance:
        inst = ObjectInstance(
            votes=np.zeros(N_CLASSES),
            centre_sum=obs_w * centre,
            weight=obs_w,
            count=1,
            first_seen=t,
            last_seen=t,
            lo=np.zeros((self.box_history, 3)),
            hi=np.zeros((self.box_history, 3)),
            last_frame=self.n_frames,
            uid=self._next_uid,
        )
        self._next_uid += 1
        inst.votes[cid] = obs_w
        inst.add_box(lo, hi)
        # Born near a same-class object not seen for a while: perhaps that object again,
        # displaced by odometry drift since (decided in the merge pass).
        for other in self.instances:
            if (
                other.votes[cid] > 0
                and other.count >= self.anchor_min_count
                and t - other.last_seen > self.revisit_after
                and float(np.hypot(*(other.centre[:2] - centre[:2]))) < self.dup_radius
            ):
                inst.dup_of.append(other.uid)
        return inst

    def _observe_objects(self, observations: list) -> None:
        obs = []
        for o in observations:
            cid = CLASS_TO_ID.get(o.label)
            c = np.asarray(o.center, dtype=np.float64).reshape(3)
            s = np.abs(np.asarray(o.size, dtype=np.float64).reshape(3))
            if cid is None or not (np.all(np.isfinite(c)) and np.all(np.isfinite(s)) and np.isfinite(o.score)):
                continue
            if o.score < self.min_score:
                continue
            c = c - self.offset  # into the map's frame (drift corrected so far)
            obs.append((cid - 1, max(float(o.score), 1e-3), c, c - s / 2, c + s / 2, float(o.stamp)))
        if not obs:
            return
        obs = self._join_fragments(obs)
        frame = self.n_frames
        n_inst = len(self.instances)
        # Candidate (distance, obs, instance) pairs for same-class association.
        pairs = []
        boxes: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def box_of(k: int) -> tuple[np.ndarray, np.ndarray]:
            if k not in boxes:
                boxes[k] = self.instances[k].robust_box(*self.box_quantiles)
            return boxes[k]

        if n_inst:
            centres = np.stack([i.centre for i in self.instances])
            for j, (cid, _, c, lo, hi, _) in enumerate(obs):
                g = self.gate(CLASSES[cid])
                dist = np.linalg.norm(centres - c, axis=1)
                for k in np.nonzero(dist < 2.0 * g)[0]:
                    inst = self.instances[k]
                    if inst.votes[cid] <= 0.0:
                        continue
                    ok = dist[k] < g
                    if not ok:  # far centres but one box inside the other: a partial view of a big object
                        ok = containment(lo, hi, *box_of(k)) > self.contain_threshold
                    if ok:
                        pairs.append((float(dist[k]), j, int(k)))
        pairs.sort()
        assigned_obs: dict[int, int] = {}  # obs -> instance
        taken: dict[int, int] = {}  # instance -> first obs this frame
        for d, j, k in pairs:
            if j in assigned_obs:
                continue
            if k in taken:
                # A second observation this frame joins only as a fragment (inside the
                # instance's box), else it is a neighbouring object of the same class.
                if containment(obs[j][3], obs[j][4], *box_of(k)) <= self.contain_threshold:
                    continue
            assigned_obs[j] = k
            taken.setdefault(k, j)
        if self.track_rate > 0:
            # Follow slow drift: nudge the offset by the median residual of the
            # observations matched to well-established instances.
            res = [obs[j][2][:2] - self.instances[k].centre[:2] for j, k in assigned_obs.items()
                   if self.instances[k].count >= 2 * self.anchor_min_count]
            if res:
                med = np.median(np.stack(res), axis=0)
                norm = float(np.hypot(*med))
                if norm > self.track_deadband:
                    self.offset[:2] += self.track_rate * med * (1.0 - self.track_deadband / norm)
        seen_now: list[ObjectInstance] = []
        for j, (cid, w, c, lo, hi, stamp) in enumerate(obs):
            t = stamp - self.start_stamp
            k = assigned_obs.get(j)
            if k is None:
                k = self._confusion_match(cid, c, lo, hi)
                if k is not None:
                    # A class confusion of an established object: vote only.
                    self.instances[k].votes[cid] += w
                    continue
                self.instances.append(self._new_instance(cid, w, c, lo, hi, t))
                seen_now.append(self.instances[-1])
                continue
            inst = self.instances[k]
            seen_now.append(inst)
            inst.votes[cid] += w
            inst.centre_sum += w * c
            inst.weight += w
            if inst.last_frame != frame:  # fragments of one object in one frame count once
                inst.count += 1
            inst.last_frame = frame
            inst.first_seen = min(inst.first_seen, t)
            inst.last_seen = max(inst.last_seen, t)
            inst.add_box(lo, hi)
        # Two duplicate candidates seen in one frame are two objects, not one seen twice.
        uids = {i.uid for i in seen_now}
        for i in seen_now:
            for u in i.dup_of:
                if u in uids:
                    self._covis.add((i.uid, u))

    def _join_fragments(self, obs: list) -> list:
        """Join same-class observations of one frame that are pieces of one object.

        A label image splits an object occluded by a thinner one in front (a chair
        behind a table leg) into several components. Pieces whose boxes nearly touch
        (within 20 cm) and whose joint box is no wider than the class allows become one
        observation; two real chairs side by side make a joint box too wide to join.
        """
        out = list(obs)
        joined = True
        while joined:
            joined = False
            for a in range(len(out)):
                for b in range(a + 1, len(out)):
                    ca, wa, _, la, ha, ta = out[a]
                    cb, wb, _, lb, hb, _ = out[b]
                    if ca != cb or not pieces_of_one(la, ha, lb, hb, TYPICAL_FOOTPRINT.get(CLASSES[ca], 0.5)):
                        continue
                    lo, hi = np.minimum(la, lb), np.maximum(ha, hb)
                    out[a] = (ca, max(wa, wb), 0.5 * (lo + hi), lo, hi, ta)
                    del out[b]
                    joined = True
                    break
                if joined:
                    break
        return out

    def _confusion_match(self, cid: int, c, lo, hi) -> int | None:
        size = hi - lo
        best, best_d = None, np.inf
        for k, inst in enumerate(self.instances):
            if inst.votes[cid] > 0.0 or inst.count < max(self.min_count, 3):
                continue
            g = 0.5 * max(self.gate(CLASSES[cid]), self.gate(inst.label))
            d = float(np.linalg.norm(inst.centre - c))
            if d >= g or d >= best_d:
                continue
            ilo, ihi = inst.robust_box(*self.box_quantiles)
            isize = ihi - ilo
            ratio = max(np.max(size[:2]), 0.05) / max(np.max(isize[:2]), 0.05)
            if 1 / 1.6 < ratio < 1.6 and abs(size[2] - isize[2]) < 0.4 * max(isize[2], 0.2):
                best, best_d = k, d
        return best

    def _merge_pass(self) -> None:
        """Merge instances of one label that are the same object (split by drift or early views)."""
        while len(self.instances) > 1:
            n = len(self.instances)
            labels = np.array([i.label_id for i in self.instances])
            centres = np.stack([i.centre for i in self.instances])
            boxes = [i.robust_box(*self.box_quantiles) for i in self.instances]
            lo = np.stack([b[0] for b in boxes])
            hi = np.stack([b[1] for b in boxes])
            parent = list(range(n))

            def find(x: int) -> int:
                while parent[x] != x:
                    parent[x] = parent[parent[x]]
                    x = parent[x]
                return x

            merged = False
            for lab in np.unique(labels):
                idx = np.nonzero(labels == lab)[0]
                if idx.size < 2:
                    continue
                g = self.gate(CLASSES[lab])
                d = np.linalg.norm(centres[idx, None] - centres[None, idx], axis=-1)
                cont = containment(lo[idx, None], hi[idx, None], lo[None, idx], hi[None, idx])
                # Pieces of one object seen at different times (a chair whose seat and
                # back were only ever seen apart) join like the fragments of one frame.
                pieces = pieces_of_one(lo[idx, None], hi[idx, None], lo[None, idx], hi[None, idx],
                                        TYPICAL_FOOTPRINT.get(CLASSES[lab], 0.5))
                close = np.triu((d < 0.5 * g) | (cont > self.contain_threshold) | pieces, k=1)
                for p, q in zip(*np.nonzero(close)):
                    ra, rb = find(int(idx[p])), find(int(idx[q]))
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)  # the older instance absorbs the newer
                        merged = True
            # Class confusion: a weak instance sitting inside a much stronger one of
            # another label is that object seen under the wrong name; it gives its votes.
            counts = np.array([i.count for i in self.instances])
            cont_all = containment(lo[:, None], hi[:, None], lo[None, :], hi[None, :])
            strong = counts[None, :] >= self.confusion_ratio * counts[:, None]  # [weak, strong]
            # Same object, so same shape: a vase on a cabinet or a laptop on a table is
            # inside the bigger box too, but much smaller than it.
            ext = np.log(np.maximum(hi - lo, 0.05))
            similar = np.max(np.abs(ext[:, None] - ext[None, :]), axis=-1) < np.log(1.8)
            cand = (cont_all > self.contain_threshold) & strong & similar & (labels[:, None] != labels[None, :])
            for w in np.nonzero(cand.any(axis=1))[0]:
                st = int(np.argmax(np.where(cand[w], counts, -1)))
                rw, rs = find(int(w)), find(st)
                if rw != rs and rw == int(w):
                    parent[rw] = rs
                    merged = True
            if not merged:
                return
            groups: dict[int, list[int]] = {}
            for k in range(n):
                groups.setdefault(find(k), []).append(k)
            keep = []
            for root, members in groups.items():
                for k in members:
                    if k != root:
                        self._absorb(self._own(root), self.instances[k])
                keep.append(root)
            self.instances = [self.instances[k] for k in sorted(keep)]

    def _fold_duplicates(self) -> None:
        """Fold drifted re-sightings into the object they re-sight (see ``dup_radius``).

        Only counts, votes and first sighting move over: the original's geometry,
        from before the drift grew, stays the map's.
        """
        by_uid = {i.uid: i for i in self.instances}
        index = {i.uid: k for k, i in enumerate(self.instances)}
        gone: set[int] = set()
        for inst in self.instances:
            if not inst.dup_of or inst.uid in gone:
                continue
            for u in inst.dup_of:
                orig = by_uid.get(u)
                if (
                    orig is None
                    or u in gone
                    or orig.label_id != inst.label_id
                    or (inst.uid, u) in self._covis
                    or orig.count < self.dup_ratio * inst.count
                ):
                    continue
                orig = by_uid[u] = self._own(index[u])
                orig.votes += inst.votes
                orig.count += inst.count
                orig.first_seen = min(orig.first_seen, inst.first_seen)
                gone.add(inst.uid)
                break
        if gone:
            self.instances = [i for i in self.instances if i.uid not in gone]
            self._covis = {p for p in self._covis if p[0] not in gone and p[1] not in gone}

    def _own(self, k: int) -> ObjectInstance:
        """The instance at index ``k``, ready to be changed: on a read-out snapshot an instance
        still shared with the live map is replaced by a private copy first."""
        inst = self.instances[k]
        if self._shared is not None and id(inst) in self._shared:
            inst = copy.deepcopy(inst)
            self.instances[k] = inst
        return inst

    def _prune(self) -> None:
        """Forget one-off sightings that were never confirmed (false positives) after a while."""
        if self.prune_after <= 0 or self.start_stamp is None:
            return
        now = self.last_stamp - self.start_stamp
        self.instances = [
            i for i in self.instances if i.count >= self.min_count or now - i.last_seen <= self.prune_after
        ]

    def _absorb(self, ia: ObjectInstance, ib: ObjectInstance) -> None:
        """Fold instance ``ib`` into ``ia`` (votes, weights, counts, boxes, times)."""
        ia.votes += ib.votes
        ia.centre_sum += ib.centre_sum
        ia.weight += ib.weight
        ia.count += ib.count
        ia.first_seen = min(ia.first_seen, ib.first_seen)
        ia.last_seen = max(ia.last_seen, ib.last_seen)
        lo_a, hi_a = ia.boxes()
        lo_b, hi_b = ib.boxes()
        lo = np.concatenate([lo_a, lo_b])[-self.box_history :]
        hi = np.concatenate([hi_a, hi_b])[-self.box_history :]
        ia.lo[:] = 0.0
        ia.hi[:] = 0.0
        ia.n_boxes = 0
        for x, y in zip(lo, hi):
            ia.add_box(x, y)
        ia.last_frame = max(ia.last_frame, ib.last_frame)
        ia._box = None
        ia.dup_of = sorted((set(ia.dup_of) | set(ib.dup_of)) - {ia.uid})
        if any(ib.uid in p for p in self._covis):
            self._covis = {(ia.uid if a == ib.uid else a, ia.uid if b == ib.uid else b) for a, b in self._covis}

    # -- room ----------------------------------------------------------------------
    def _observe_geometry(self, tokens) -> None:
        from spatial_ttt_ros.perception.tokens import EGO_FIELDS, GEO_FIELDS

        cam = np.asarray(tokens.ego[EGO_FIELDS["position"]], dtype=np.float64)[:2]
        geo = np.asarray(tokens.geometry)
        vf = geo[..., GEO_FIELDS["valid_fraction"]][..., 0]
        pts = geo[..., GEO_FIELDS["mean_xyz"]][vf >= self.min_cell_valid][:, :2].astype(np.float64)
        cam = cam - self.offset[:2]
        pts = pts - self.offset[:2]
        if not np.all(np.isfinite(cam)):
            return
        self.floor.mark_rays(cam, pts[np.all(np.isfinite(pts), axis=1)])
