"""Issue 2: the package installs the robot way (colcon) and the set-up fails clearly.

These run the real tools: colcon from PyPI building CMakeLists.txt against the
venv's ROS 2 wheels, and scripts/setup.sh with a broken environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
SETUP = REPO / "scripts" / "setup.sh"


def _clean_env(**extra: str) -> dict[str, str]:
    """A shell with nothing ROS-related sourced."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> Path:
    colcon = VENV / "bin" / "colcon"
    if not colcon.exists():
        pytest.skip("colcon is not installed in this venv (run make setup)")
    work = tmp_path_factory.mktemp("colcon")
    # A robot's workspace: the package's files under src/ (not this checkout, whose
    # .venv lies inside the source tree, which CMake refuses for exported include paths).
    src = work / "src" / "spatial_ttt_ros"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    env = _clean_env(
        AMENT_PREFIX_PATH=str(VENV),
        CMAKE_PREFIX_PATH=str(VENV),
        PATH=f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    )
    cmd = [
        str(colcon), "build",
        "--base-paths", str(work / "src"),
        "--build-base", str(work / "build"),
        "--install-base", str(work / "install"),
        "--event-handlers", "console_direct-",
        "--cmake-args", f"-DPython3_EXECUTABLE={VENV / 'bin' / 'python'}", "-DBUILD_TESTING=OFF",
    ]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"colcon build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return work / "install" / "spatial_ttt_ros"


@pytest.mark.slow  # a colcon build: half a minute
def test_colcon_install_space_has_executables_launch_config_and_interfaces(colcon_install: Path):
    prefix = colcon_install
    assert os.access(prefix / "lib" / "spatial_ttt_ros" / "spatial_ttt_node", os.X_OK)
    assert os.access(prefix / "bin" / "spatial-ttt", os.X_OK)
    assert (prefix / "share" / "spatial_ttt_ros" / "launch" / "spatial_ttt.launch.py").is_file()
    assert (prefix / "share" / "spatial_ttt_ros" / "config" / "spatial_ttt.yaml").is_file()
    assert (prefix / "share" / "spatial_ttt_ros" / "package.xml").is_file()
    # rosidl really generated the interfaces: IDL, C typesupport and Python.
    for name in ("Answer", "SceneDescription", "InventoryObject", "RoomExtent"):
        assert (prefix / "share" / "spatial_ttt_ros" / "msg" / f"{name}.idl").is_file()
    for name in ("Ask", "Query", "Describe", "SaveMemory", "LoadMemory"):
        assert (prefix / "share" / "spatial_ttt_ros" / "srv" / f"{name}.idl").is_file()
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert (site / "spatial_ttt_ros" / "msg" / "_answer.py").is_file()
    assert (site / "spatial_ttt_ros" / "cli.py").is_file()
    assert list((prefix / "lib").glob("libspatial_ttt_ros__rosidl_typesupport_c.so"))
    resource = prefix / "share" / "ament_index" / "resource_index" / "packages" / "spatial_ttt_ros"
    assert resource.is_file()


def test_colcon_built_interfaces_import_and_serialise(colcon_install: Path):
    """The install space works on its own, as after `source install/setup.bash`."""
    site = colcon_install / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    code = (
        "import math, spatial_ttt_ros\n"
        f"assert spatial_ttt_ros.__file__.startswith({str(site)!r}), spatial_ttt_ros.__file__\n"
        "from rclpy.serialization import serialize_message, deserialize_message\n"
        "from spatial_ttt_ros.msg import Answer\n"
        "from spatial_ttt_ros.srv import Ask\n"
        "a = Answer(task_type='object_counting', value=3.0, unit='count', text='3 chairs')\n"
        "b = deserialize_message(serialize_message(a), Answer)\n"
        "assert b.value == 3.0 and b.text == '3 chairs'\n"
        "assert Ask.Request(question='how many chairs').question == 'how many chairs'\n"
        "print('ok')\n"
    )
    env = _clean_env(
        PYTHONPATH=str(site),
        LD_LIBRARY_PATH=str(colcon_install / "lib"),
        AMENT_PREFIX_PATH=f"{colcon_install}:{VENV}",
    )
    proc = subprocess.run([str(VENV / "bin" / "python"), "-c", code], cwd="/", env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_console_script_runs_in_a_fresh_shell():
    exe = VENV / "bin" / "spatial-ttt"
    if not exe.exists():
        pytest.skip("spatial-ttt not installed (run make setup)")
    proc = subprocess.run([str(exe), "--help"], cwd="/", env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for sub in ("node", "sim", "convert", "eval", "bench", "train"):
        assert sub in proc.stdout


def _run_setup(tmp_path: Path, **env_over: str) -> subprocess.CompletedProcess:
    env = _clean_env(VENV=str(tmp_path / "venv"), BUILD_DIR=str(tmp_path / "build"))
    env.update(env_over)
    return subprocess.run(["bash", str(SETUP)], env=env, capture_output=True, text=True, timeout=300)


def test_setup_refuses_a_python_the_wheels_are_not_built_for(tmp_path: Path):
    fake = tmp_path / "python3.12"
    fake.write_text("#!/bin/sh\necho 3.12\n")
    fake.chmod(0o755)
    proc = _run_setup(tmp_path, PYTHON=str(fake))
    assert proc.returncode != 0
    assert "Python 3.12" in proc.stderr and "3.11" in proc.stderr
    assert not (tmp_path / "venv").exists()


def test_setup_names_a_missing_compiler(tmp_path: Path):
    proc = _run_setup(tmp_path, CC=str(tmp_path / "no-such-cc"))
    assert proc.returncode != 0
    assert "no C compiler" in proc.stderr and "build-essential" in proc.stderr


def test_setup_says_when_the_package_index_is_unreachable(tmp_path: Path):
    proc = _run_setup(
        tmp_path,
        PIP_CONFIG_FILE="/dev/null",  # ignore this machine's local wheel mirrors
        PIP_INDEX_URL="http://127.0.0.1:9/simple",
        PIP_RETRIES="0",
        PIP_TIMEOUT="2",
    )
    assert proc.returncode != 0
    assert "could not download packages from the package index" in proc.stderr
