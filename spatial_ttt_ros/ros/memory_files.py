"""Where ~/save_memory and ~/load_memory may touch the disk: only under ``memory_dir``.

A request names a file relative to the directory (or an absolute path inside it).
The path is resolved with every symlink followed, and refused when the result lies
outside the directory: ``../x``, ``/etc/passwd`` and a symlink pointing out are all
the same escape. Files a memory writes beside its state (``<name>.json``,
``<name>.pipeline.json``) are checked the same way before a load reads them.
"""

from __future__ import annotations

from pathlib import Path


class MemoryPathError(ValueError):
    """A save/load path the node refuses (the message says why, for the caller)."""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def resolve_memory_path(root: Path, requested: str, must_exist: bool) -> Path:
    """The real path of ``requested`` under ``root``; raises MemoryPathError otherwise."""
    text = requested.strip()
    if not text:
        raise MemoryPathError("empty path: give a file name relative to memory_dir")
    if "\x00" in text:
        raise MemoryPathError("path contains a NUL byte")
    root_real = root.expanduser().resolve()
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        candidate = root_real / candidate
    real = candidate.resolve()  # follows symlinks, also in the last component
    if not _inside(real, root_real) or real == root_real:
        raise MemoryPathError(f"refused: '{requested}' resolves to {real}, which is outside memory_dir {root_real}")
    if must_exist:
        if not real.exists():
            raise MemoryPathError(f"no saved memory at {real}")
        if not real.is_file():
            raise MemoryPathError(f"{real} is not a file")
        for companion in real.parent.iterdir():
            if companion.name.startswith(real.name + ".") and not _inside(companion.resolve(), root_real):
                raise MemoryPathError(f"refused: {companion} links outside memory_dir {root_real}")
    elif real.exists() and not real.is_file():
        raise MemoryPathError(f"{real} exists and is not a file")
    return real
