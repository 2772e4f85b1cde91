"""Where every benchmark's JSON goes: one writer, so the files look alike."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: str | Path, doc: dict) -> Path:
    """Write ``doc`` to ``path`` (parents created), say so on the terminal, return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}")
    return path
