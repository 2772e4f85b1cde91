"""Where ~/save_memory and ~/load_memory may touch the disk, and what a load may accept.

Paths: a request names a file relative to ``memory_dir`` (or an absolute path inside
it). It is resolved with every symlink followed and refused when the result lies
outside the directory: ``../x``, ``/etc/passwd`` and a symlink pointing out are all the
same escape. ``~`` is not expanded (a request is not a shell), and names that the
file system cannot hold (too long, a symlink loop) are refused with a reason instead
of raising into the node.

Saving: the memory writes its state and companion files (``NAME.json``,
``NAME.pipeline.json``, their ``.tmp`` steps) into a fresh private directory created
inside ``memory_dir`` (``mkdtemp``: exclusive, mode 0700); each finished file is then
renamed into place. A rename replaces a symlink that sits at the destination instead of
writing through it, so no name inside ``memory_dir`` can redirect a save outside.
A crash mid-save leaves only that directory, removed at the next configure.

Loading: before the memory reads anything, the files are checked against a fresh save
of the running memory (the node's rollback copy): the same companion files; JSON with
the same keys, finite numbers, stamps that fit a ROS time, counters that fit their
types, configuration equal to the running one; safetensors with a sane header and the
same tensor names, dtypes and shapes. A file that fails is refused like a foreign one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Callable

MAX_NAME_CHARS = 255  # one path component (ext4, xfs)
MAX_PATH_CHARS = 1024
MAX_STATE_FILE_BYTES = 256 * 1024 * 1024  # the TTT state is a few MB, an object map less
MAX_HEADER_BYTES = 16 * 1024 * 1024  # safetensors JSON header
MAX_STAMP_S = 2.0**31  # builtin_interfaces/Time.sec is an int32
MAX_COUNT = 2**53  # counters are exact in a float64 and fit a uint64 message field
SAVE_DIR_PREFIX = ".spatial_ttt_save_"
# Keys whose whole value must equal the running memory's: format and configuration.
SAME_AS_RUNNING = {"format", "format_version", "memory", "name", "variant", "config", "front_end", "signature", "n_layers"}
COUNT_KEYS = {"frames", "n_frames", "n_written", "frames_seen", "count", "next_uid", "last_frame"}


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
    if len(text) > MAX_PATH_CHARS or any(len(part.encode()) > MAX_NAME_CHARS for part in Path(text).parts):
        raise MemoryPathError(f"path too long (at most {MAX_NAME_CHARS} bytes a name, {MAX_PATH_CHARS} in all)")
    try:
        root_real = root.expanduser().resolve()
        candidate = Path(text)  # no ~ expansion: '~user/x' is a name under memory_dir
        if not candidate.is_absolute():
            candidate = root_real / candidate
        real = candidate.resolve()  # follows symlinks, also in the last component
        if not _inside(real, root_real) or real == root_real:
            raise MemoryPathError(f"refused: the path resolves to {real}, which is outside memory_dir {root_real}")
        if must_exist:
            if not real.exists():
                raise MemoryPathError(f"no saved memory at {real}")
            if not real.is_file():
                raise MemoryPathError(f"{real} is not a file")
            for companion in _companions(real):
                if not _inside(companion.resolve(), root_real):
                    raise MemoryPathError(f"refused: {companion} links outside memory_dir {root_real}")
        elif real.exists() and not real.is_file():
            raise MemoryPathError(f"{real} exists and is not a file")
    except MemoryPathError:
        raise
    except (OSError, RuntimeError) as exc:  # ENAMETOOLONG, ELOOP, EACCES, "Symlink loop" (3.11)
        raise MemoryPathError(f"refused: {type(exc).__name__}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}") from None
    return real


def _companions(path: Path) -> list[Path]:
    """Files a memory writes beside ``path``: ``path.name`` + "." + anything."""
    prefix = path.name + "."
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(prefix))


def save_atomically(root: Path, path: Path, save: Callable[[Path], object]) -> None:
    """``save(target)`` into a private directory inside ``root``, then rename each file into place."""
    root_real = root.expanduser().resolve()
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    if not _inside(parent.resolve(), root_real):
        raise MemoryPathError(f"refused: {parent} is outside memory_dir {root_real}")
    work = Path(tempfile.mkdtemp(prefix=SAVE_DIR_PREFIX, dir=parent))
    try:
        save(work / path.name)
        written = [p for p in work.iterdir() if p.is_file() and not p.is_symlink() and not p.name.endswith(".tmp")]
        if not any(p.name == path.name for p in written):
            raise RuntimeError("the memory wrote no state file")
        # Companions first, the state file last: a reader never sees a new state with old companions.
        for p in sorted(written, key=lambda p: p.name == path.name):
            os.replace(p, parent / p.name)  # replaces a symlink at the destination, never follows it
    finally:
        shutil.rmtree(work, ignore_errors=True)


def remove_orphan_temp_files(root: Path) -> list[str]:
    """Remove what an interrupted save left in ``root``: our private directories and ``*.tmp`` files."""
    removed: list[str] = []
    try:
        entries = list(Path(root).expanduser().iterdir())
    except OSError:
        return removed
    for p in entries:
        try:
            if p.name.startswith(SAVE_DIR_PREFIX) and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
            elif p.name.endswith(".tmp") and (p.is_symlink() or p.is_file()):
                p.unlink()  # a symlink is removed, not followed
                removed.append(p.name)
        except OSError:
            continue
    return removed


# ----------------------------------------------------------------------------- load checks


def _read_bounded(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_STATE_FILE_BYTES:
        raise ValueError(f"{path.name} is {size} bytes, more than a memory state can be ({MAX_STATE_FILE_BYTES})")
    return path.read_bytes()


def _safetensors_header(data: bytes, name: str) -> dict | None:
    """The header of a safetensors file, checked against its size; None when not safetensors."""
    if len(data) < 10 or data[8:9] != b"{":
        return None
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise ValueError(f"{name}: safetensors header of {n} bytes does not fit the file")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{name}: damaged safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{name}: damaged safetensors header")
    body = len(data) - 8 - n
    sizes = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
    for key, t in header.items():
        if key == "__metadata__":
            if not isinstance(t, dict) or not all(isinstance(v, str) for v in t.values()):
                raise ValueError(f"{name}: safetensors metadata must map names to strings")
            continue
        try:
            dtype, shape, (start, end) = t["dtype"], t["shape"], t["data_offsets"]
            count = math.prod(int(d) for d in shape)
            ok = dtype in sizes and all(isinstance(d, int) and d >= 0 for d in shape) and 0 <= start <= end <= body
            ok = ok and end - start == count * sizes[dtype]
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{name}: tensor {key[:60]!r} has an inconsistent dtype, shape or offsets")
    return header


def _check_number(key: str, value, where: str) -> None:
    if isinstance(value, bool):
        return
    if not math.isfinite(value):
        raise ValueError(f"{where}: {key} is {value}")
    k = key.lower()
    if k in COUNT_KEYS and not (value >= 0 and value <= MAX_COUNT and float(value).is_integer()):
        raise ValueError(f"{where}: {key} = {value} is not a count (0 .. 2^53)")
    if ("stamp" in k or k in ("t0", "first_seen", "last_seen", "next_due")) and abs(value) >= MAX_STAMP_S:
        raise ValueError(f"{where}: {key} = {value} is not a time a ROS stamp can hold")


def _check_json(value, ref, key: str, where: str, depth: int = 0) -> None:
    """``value`` against ``ref`` (the running memory's own save; None: no reference)."""
    if depth > 32:
        raise ValueError(f"{where}: nested too deeply")
    if key in SAME_AS_RUNNING and ref is not None:
        if value != ref:
            raise ValueError(f"{where}: {key} differs from the running memory's ({str(value)[:80]} vs {str(ref)[:80]})")
        return
    if value is None or ref is None and not isinstance(value, (dict, list, int, float, str)):
        return
    if isinstance(value, (int, float)):
        if ref is not None and not isinstance(ref, (int, float)):
            raise ValueError(f"{where}: {key} is a number, expected {type(ref).__name__}")
        _check_number(key, value, where)
    elif isinstance(value, str):
        if ref is not None and not isinstance(ref, str):
            raise ValueError(f"{where}: {key} is a string, expected {type(ref).__name__}")
        if len(value) > 4096:
            raise ValueError(f"{where}: {key} is a string of {len(value)} characters")
    elif isinstance(value, list):
        if ref is not None and not isinstance(ref, list):
            raise ValueError(f"{where}: {key} is a list, expected {type(ref).__name__}")
        item_ref = ref[0] if ref else None
        for item in value:
            _check_json(item, item_ref, key, where, depth + 1)
    elif isinstance(value, dict):
        if ref is not None:
            if not isinstance(ref, dict):
                raise ValueError(f"{where}: {key or 'the file'} is an object, expected {type(ref).__name__}")
            if set(value) != set(ref):
                diff = sorted(set(value) ^ set(ref))[:5]
                raise ValueError(f"{where}: {key or 'the file'} has other keys than the running memory's ({diff})")
        for k, v in value.items():
            _check_json(v, None if ref is None else ref.get(k), str(k), where, depth + 1)


def check_memory_files(path: Path, reference: Path | None) -> None:
    """Raise ValueError when the files at ``path`` are not a state the running memory could
    have written. ``reference``: a fresh save of the running memory (None when it is empty)."""
    files = {"": path, **{p.name[len(path.name):]: p for p in _companions(path)}}
    if reference is not None:
        ref_files = {"": reference, **{p.name[len(reference.name):]: p for p in _companions(reference)}}
        missing = sorted(s for s in ref_files if s not in files and not s.endswith(".tmp"))
        if missing:
            raise ValueError(f"{path.name}: companion file(s) {', '.join(path.name + s for s in missing)} missing")
    else:
        ref_files = {}
    for suffix, p in files.items():
        if suffix.endswith(".tmp") or (reference is not None and suffix not in ref_files):
            continue  # not read by a load
        where = p.name
        data = _read_bounded(p)
        ref_data = _read_bounded(ref_files[suffix]) if suffix in ref_files else None
        header = _safetensors_header(data, where)
        if header is not None:
            meta = header.get("__metadata__", {})
            for k, v in meta.items():
                try:
                    number = json.loads(v)
                except (json.JSONDecodeError, ValueError):
                    continue
                if isinstance(number, (int, float)):
                    _check_number(k, number, where)
            if ref_data is not None:
                ref_header = _safetensors_header(ref_data, ref_files[suffix].name) or {}
                ref_meta = ref_header.get("__metadata__", {})
                for k in SAME_AS_RUNNING & set(ref_meta):
                    if meta.get(k) != ref_meta[k]:
                        raise ValueError(f"{where}: {k} differs from the running memory's")
                shapes = {k: (t["dtype"], t["shape"]) for k, t in header.items() if k != "__metadata__"}
                ref_shapes = {k: (t["dtype"], t["shape"]) for k, t in ref_header.items() if k != "__metadata__"}
                if shapes != ref_shapes:
                    diff = sorted(k for k in set(shapes) | set(ref_shapes) if shapes.get(k) != ref_shapes.get(k))[:3]
                    raise ValueError(f"{where}: tensors differ from the running model's state ({', '.join(diff)})")
            elif len(meta.get("n_layers", "0")) > 4 or int(meta.get("n_layers", "0") or 0) > 1000:
                raise ValueError(f"{where}: n_layers {meta.get('n_layers')[:20]} is not a model's")
            continue
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            continue  # not JSON and not safetensors: the memory's own load refuses it
        ref_doc = None
        if ref_data is not None:
            try:
                ref_doc = json.loads(ref_data)
            except (UnicodeDecodeError, json.JSONDecodeError):
                ref_doc = None
        _check_json(doc, ref_doc, "", where)


def check_loaded_counters(pipeline) -> None:
    """After a load: the counters the node reports must fit their message fields."""
    frames = pipeline.frames_processed
    if not (0 <= frames <= MAX_COUNT):
        raise ValueError(f"frames {frames} out of range")
    last = getattr(pipeline, "last_stamp", None)
    if last is not None and not (math.isfinite(last) and abs(last) < MAX_STAMP_S):
        raise ValueError(f"last stamp {last} is not a time a ROS stamp can hold")
