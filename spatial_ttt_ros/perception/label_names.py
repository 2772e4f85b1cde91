"""Class names of a label image's ids, for bags and simulators with their own numbering.

The core numbers classes as ``classes.py`` does (id = CLASSES index + 1, 0 = no object).
Another simulator or segmentation node numbers its own way; a *label-name table* says
which class each of its ids is, and ``LabelTable.remap`` turns its label images into
the core's ids before detection (as the node does with its ``class_names`` parameter).

A table is given as
- a list of names: id i is ``names[i - 1]`` (0 = no object), the node's ``class_names``
  convention; an empty name or ``-`` leaves that id unused;
- a text file, one name a line, the first line naming id 1 (same rule; lines starting
  with ``#`` are comments and do not count);
- a JSON file: an object ``{"id": "name", ...}`` (any ids, gaps allowed) or a list (as
  above).

Names are matched to the vocabulary by ``classes.canonical_class`` (COCO/VOC spellings
and plurals accepted); ids whose name matches nothing are ignored, like ids not in the
table. ``LabelTable`` remembers which ids it saw, so a run can warn when the label
images hold ids the table does not name (a wrong or shifted table reads as "the robot
saw nothing").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from spatial_ttt_ros.classes import CLASS_TO_ID, CLASSES, canonical_class

_UNUSED = ("", "-")
MAX_LABEL_ID = 65535  # label images are uint16 at most


def _from_list(names: Sequence[str]) -> dict[int, str]:
    return {i: str(n).strip() for i, n in enumerate(names, start=1) if str(n).strip() not in _UNUSED}


def load_label_names(spec: Sequence[str] | Mapping | str | os.PathLike | None) -> dict[int, str]:
    """{label id: name} from a list, an {id: name} mapping, or a .txt/.json file (module doc).
    None gives the core's own table (classes.py)."""
    if spec is None:
        return _from_list(CLASSES)
    if isinstance(spec, Mapping):
        data = spec
    elif isinstance(spec, (str, os.PathLike)):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"class-name file {path} not found")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(data, (dict, list)):
                raise ValueError(f"{path}: expected a JSON object {{id: name}} or a list of names")
        else:
            data = [ln.strip() for ln in text.splitlines() if not ln.lstrip().startswith("#")]
            while data and not data[-1]:
                data.pop()  # a trailing newline is not an unused id
    else:
        data = list(spec)
    if isinstance(data, Mapping):
        out: dict[int, str] = {}
        for k, v in data.items():
            try:
                cid = int(k)
            except (TypeError, ValueError):
                raise ValueError(f"class-name table: key {k!r} is not an integer label id") from None
            if not 0 <= cid <= MAX_LABEL_ID:
                raise ValueError(f"class-name table: label id {cid} outside 0..{MAX_LABEL_ID}")
            if str(v).strip() not in _UNUSED:
                out[cid] = str(v).strip()
    else:
        out = _from_list(data)
    if not out:
        raise ValueError("class-name table is empty: give at least one label id with a name")
    return out


class LabelTable:
    """Label ids of one numbering -> the core's class ids, with a record of ids seen."""

    def __init__(self, names: Mapping[int, str] | None = None) -> None:
        self.names: dict[int, str] = dict(load_label_names(None) if names is None else names)
        self.lut = np.zeros(max(self.names) + 1, dtype=np.uint16)
        self.unmatched: dict[int, str] = {}  # ids whose name is no class of the vocabulary
        for cid, name in self.names.items():
            canonical = canonical_class(name)
            if canonical is None:
                self.unmatched[cid] = name
            else:
                self.lut[cid] = CLASS_TO_ID[canonical]
        self.lut[0] = 0  # id 0 is "no object" whatever a table says (see warnings())
        self._seen: set[int] = set()

    @classmethod
    def load(cls, spec) -> "LabelTable":
        return cls(load_label_names(spec))

    @property
    def is_identity(self) -> bool:
        """True when this table is the core's own numbering (remapping changes nothing)."""
        ident = np.arange(len(CLASSES) + 1, dtype=np.uint16)
        return self.lut.shape == ident.shape and bool(np.array_equal(self.lut, ident))

    def remap(self, labels: np.ndarray) -> np.ndarray:
        """The label image in the core's ids (unknown ids -> 0); records the ids seen."""
        ids = np.asarray(labels)
        present = np.unique(ids)
        self._seen.update(int(v) for v in present)
        if self.is_identity and present.size and int(present.max()) <= len(CLASSES):
            return ids
        clipped = np.clip(ids, 0, len(self.lut) - 1).astype(np.int64)
        return np.where(ids < len(self.lut), self.lut[clipped], 0).astype(np.uint16)

    @property
    def seen(self) -> list[int]:
        return sorted(self._seen)

    def unnamed_seen(self) -> list[int]:
        """Non-zero ids seen in label images that the table gives no name."""
        return [i for i in self.seen if i != 0 and i not in self.names]

    def warnings(self) -> list[str]:
        """What a person should know about this table and the ids seen so far."""
        out = []
        unnamed = self.unnamed_seen()
        if unnamed:
            shown = ", ".join(map(str, unnamed[:20])) + (" ..." if len(unnamed) > 20 else "")
            out.append(
                f"label ids seen in the label images but not named by the class-name table: {shown} "
                f"(their pixels are ignored; give a table with --class-names, one name a line from id 1, "
                f"or a JSON {{id: name}})"
            )
        used = [i for i in self.seen if i in self.unmatched]
        if used:
            out.append(
                "label ids named by classes outside the vocabulary, ignored: "
                + ", ".join(f"{i} ({self.unmatched[i]!r})" for i in used[:20])
            )
        if 0 in self.names and canonical_class(self.names[0]) is not None:
            out.append(f"the table names id 0 {self.names[0]!r}, but id 0 is always 'no object'; "
                       "in a one-name-a-line file the first line is id 1")
        return out

    def as_node_list(self) -> list[str]:
        """The table as the node's ``class_names`` parameter (id i = list[i - 1], "" unused)."""
        return [self.names.get(i, "") for i in range(1, max(self.names) + 1)]
