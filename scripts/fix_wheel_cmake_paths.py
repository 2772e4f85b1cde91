"""Point the ROS 2 wheels' exported CMake targets at this interpreter's headers.

The PyPI ROS 2 wheels export CMake targets that name the wheel builder's paths
(/opt/python/cp311-cp311/include/python3.11 and its numpy include directory).
Building our interfaces against them fails at CMake's generate step unless those
paths exist, so we rewrite them to the real ones inside the venv. Idempotent.
Usage: python scripts/fix_wheel_cmake_paths.py <prefix>   (the venv)
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy


def main() -> int:
    prefix = Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    py_include = sysconfig.get_paths()["include"]
    np_include = numpy.get_include()
    # Any builder interpreter: /opt/python/cpXY-cpXY/...
    numpy_pattern = re.compile(r"/opt/python/cp\d+-cp\d+/lib/python3\.\d+/site-packages/numpy/_core/include")
    python_pattern = re.compile(r"/opt/python/cp\d+-cp\d+/include/python3\.\d+")
    changed = 0
    for path in (prefix / "share").glob("*/cmake/*.cmake"):
        text = path.read_text()
        if "/opt/python/" not in text:
            continue
        new = numpy_pattern.sub(np_include, text)
        new = python_pattern.sub(py_include, new)
        if new != text:
            path.write_text(new)
            changed += 1
    print(f"fix_wheel_cmake_paths: {changed} CMake files now point at {py_include} and {np_include}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
