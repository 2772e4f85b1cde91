"""The node as a robot engineer meets it: the upstream ``ros2`` command-line tools over DDS.

``ros2 launch`` of launch/spatial_ttt.launch.py with a namespace and remapped inputs and
``autostart: false``; ``ros2 lifecycle`` drives it through configure, activate,
deactivate, cleanup and shutdown; ``ros2 param`` lists, gets and sets (refusals
included); ``ros2 service call`` calls each service; /diagnostics publishes once per
period in every state; Ctrl-C (SIGINT to the launch's process group, as a terminal
sends it) ends everything with exit code 0 and no traceback.

These talk to the node's standard services (``~/get_state``, ``~/change_state``,
``~/list_parameters``, ...), which in-process calls never exercise. The CLI is not on
PyPI: the fixture installs it into this venv from ../shared/tools/ros2cli and the module
skips, with the reason, where ../shared is absent. One launch serves the module; the
tests run in file order (pytest's default), each leaving the node in a known state.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402

from spatial_ttt_ros.ros.stream_io import isolate_ros_domain, write_params  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
INSTALL_SH = REPO.parent / "shared" / "tools" / "ros2cli" / "install.sh"
VENV = Path(sys.executable).parents[1]
NODE = "/robot1/spatial_ttt"
CLI_TIMEOUT = 90.0  # two shared cores, several agents: DDS discovery can take a while


class Ros2:
    """Runs ``ros2`` verbs in this test's ROS domain, with the venv as the ament prefix."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.exe = str(VENV / "bin" / "ros2")

    def run(self, *args: str, timeout: float = CLI_TIMEOUT, check: bool = True) -> str:
        for _ in range(6):  # --no-daemon discovers the graph afresh each time: on a busy machine it can miss
            r = subprocess.run([self.exe, *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd="/")
            out = r.stdout + r.stderr
            if not (r.returncode != 0 and "Node not found" in out):
                break
            time.sleep(1.0)
        if check:
            assert r.returncode == 0, f"ros2 {' '.join(args)} -> {r.returncode}\n{out}"
        return out

    def state(self) -> str:
        out = self.run("lifecycle", "get", NODE, "--no-daemon", "--spin-time", "5")
        return out.split()[0]

    def transition(self, name: str) -> str:
        out = self.run("lifecycle", "set", NODE, name, "--no-daemon", "--spin-time", "5")
        assert "Transitioning successful" in out, out
        return self.state()


@pytest.fixture(scope="module")
def ros2(tmp_path_factory):
    if not INSTALL_SH.is_file():
        pytest.skip(f"{INSTALL_SH} not present: the upstream ros2 CLI is not on PyPI (../shared provides it)")
    if not (VENV / "share" / "spatial_ttt_ros" / "package.xml").is_file():
        pytest.skip(f"spatial_ttt_ros is not installed in {VENV} (make setup)")
    r = subprocess.run(["bash", str(INSTALL_SH), str(VENV)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"installing the ros2 CLI failed:\n{r.stdout}\n{r.stderr}"
    isolate_ros_domain()
    tmp = tmp_path_factory.mktemp("ros_cli")
    env = {
        **os.environ,
        "AMENT_PREFIX_PATH": str(VENV),
        "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
        "ROS_HOME": str(tmp / "ros_home"),
        "ROS_LOG_DIR": str(tmp / "log"),
        "PYTHONUNBUFFERED": "1",
        "RCUTILS_COLORIZED_OUTPUT": "0",
    }
    return Ros2(env)


class Launch:
    def __init__(self, ros2: Ros2, tmp: Path) -> None:
        self.memory_dir = tmp / "memories"
        params = write_params(tmp / "params.yaml", {
            "autostart": False,  # a lifecycle manager (here: ros2 lifecycle) configures it
            "method": "object_map",
            "memory_dir": str(self.memory_dir),
            "diagnostics_period_s": 1.0,
            "description_period_s": 1.0,
        })
        self.log = open(tmp / "launch.log", "w+")
        # Own process group with SIGINT restored (a non-interactive parent may ignore it):
        # os.killpg(SIGINT) then reaches launch and the node together, as a terminal's Ctrl-C does.
        self.proc = subprocess.Popen(
            [ros2.exe, "launch", "spatial_ttt_ros", "spatial_ttt.launch.py", "namespace:=robot1",
             f"params_file:={params}", "color_topic:=cam/rgb", "depth_topic:=cam/depth",
             "camera_info_topic:=cam/info", "labels_topic:=cam/labels", "pose_topic:=/world/camera_pose"],
            env=ros2.env, stdout=self.log, stderr=subprocess.STDOUT, cwd="/",
            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture(scope="module")
def launch(ros2, tmp_path_factory):
    la = Launch(ros2, tmp_path_factory.mktemp("launch"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert la.proc.poll() is None, la.output()
        if "unconfigured" in ros2.run("lifecycle", "get", NODE, "--no-daemon", "--spin-time", "5", check=False):
            break
        time.sleep(1.0)
    else:
        pytest.fail(f"the launched node never answered ros2 lifecycle get\n{la.output()}")
    yield la
    la.stop()
    ros2.run("daemon", "stop", check=False)
    print(la.output()[-4000:])


@pytest.fixture(scope="module")
def listener(launch):
    rclpy.init()
    node = rclpy.create_node("ros_cli_test_listener")
    got: list[tuple[float, DiagnosticArray]] = []
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: got.append((time.monotonic(), m)), 50)
    yield node, got
    node.destroy_node()
    rclpy.shutdown()


def diagnostics_for(listener, seconds: float) -> list[tuple[float, DiagnosticArray]]:
    node, got = listener
    end = time.monotonic() + 0.5
    while time.monotonic() < end:  # drain what waited in the reader's queue since the last call
        rclpy.spin_once(node, timeout_sec=0.05)
    got.clear()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    return [(t, m) for t, m in got if m.status and m.status[0].name.startswith(NODE + ":")]


def call(ros2: Ros2, service: str, srv_type: str, request: str = "{}") -> str:
    return ros2.run("service", "call", f"{NODE}/{service}", srv_type, request)


# ----------------------------------------------------------------------------- tests, in order


def test_unconfigured_node_says_why_on_diagnostics_once_per_period(ros2, launch, listener):
    assert ros2.state() == "unconfigured"
    msgs = diagnostics_for(listener, 6.5)
    # One message per period (1 s), not two: the node's timers are registered once.
    assert 4 <= len(msgs) <= 8, [round(t, 2) for t, _ in msgs]
    gaps = [b - a for (a, _), (b, _) in zip(msgs, msgs[1:])]
    assert min(gaps) > 0.5, gaps
    status = msgs[-1][1].status[0]
    assert status.level == status.ERROR and status.message.startswith("not configured: "), status.message


def test_param_list_get_dump_and_refused_sets(ros2, launch):
    names = ros2.run("param", "list", NODE, "--no-daemon", "--spin-time", "5")
    for name in ("method", "memory_dir", "queue_size", "detector", "pose_source", "max_image_pixels"):
        assert re.search(rf"^\s+{name}$", names, re.M), names
    assert "String value is: object_map" in ros2.run("param", "get", NODE, "method", "--no-daemon", "--spin-time", "5")
    assert "method: object_map" in ros2.run("param", "dump", NODE)
    # Choice parameters are checked when set, not at the next configure.
    for name, bad in (("method", "bogus"), ("detector", "yolo"), ("pose_source", "gps"), ("on_time_jump", "later")):
        out = ros2.run("param", "set", NODE, name, bad, "--no-daemon", "--spin-time", "5", check=False)
        assert "Setting parameter failed" in out and "must be one of" in out or "unknown memory method" in out, out
    out = ros2.run("param", "set", NODE, "queue_size", "0", "--no-daemon", "--spin-time", "5", check=False)
    assert "Setting parameter failed" in out, out  # the declared range
    assert "Set parameter successful" in ros2.run("param", "set", NODE, "queue_size", "20", "--no-daemon", "--spin-time", "5")
    assert "Integer value is: 20" in ros2.run("param", "get", NODE, "queue_size", "--no-daemon", "--spin-time", "5")
    assert "String value is: object_map" in ros2.run("param", "get", NODE, "method", "--no-daemon", "--spin-time", "5")


def test_configure_by_lifecycle_call_then_services_wait_for_activate(ros2, launch, listener):
    assert ros2.transition("configure") == "inactive"
    out = ros2.run("param", "set", NODE, "queue_size", "30", "--no-daemon", "--spin-time", "5", check=False)
    assert "Setting parameter failed" in out and "read at configure" in out, out
    # Inactive: ~/ask refuses with the state; describe answers (it only reads the memory).
    out = call(ros2, "ask", "spatial_ttt_ros/srv/Ask", "{question: 'How many chairs are in the room?'}")
    assert "success=False" in out and "inactive" in out, out
    assert "success=True" in call(ros2, "describe", "spatial_ttt_ros/srv/Describe")
    status = diagnostics_for(listener, 2.5)[-1][1].status[0]
    assert status.message.startswith("inactive"), status.message
    assert ros2.transition("activate") == "active"


def test_inputs_follow_the_namespace_and_the_remappings(ros2, launch):
    info = ros2.run("node", "info", NODE, "--no-daemon", "--spin-time", "5")
    subs = info.split("Subscribers:")[1].split("Publishers:")[0]
    for topic in ("/robot1/cam/rgb", "/robot1/cam/depth", "/robot1/cam/info", "/robot1/cam/labels",
                  "/world/camera_pose", "/robot1/odom"):
        assert f"{topic}:" in subs, subs
    assert "/camera/" not in subs, subs
    for service in ("ask", "query", "describe", "reset", "save_memory", "load_memory", "get_state", "change_state",
                    "list_parameters", "set_parameters"):
        assert f"{NODE}/{service}:" in info, info
    # The log names the resolved topics, not the defaults.
    out = launch.output()
    assert "depth /robot1/cam/depth" in out and "/world/camera_pose" in out, out[-3000:]


def test_each_service_over_the_wire(ros2, launch, listener):
    out = call(ros2, "ask", "spatial_ttt_ros/srv/Ask", "{question: 'How many chairs are in the room?'}")
    assert "success=True" in out and "task_type='object_counting'" in out, out
    out = call(ros2, "query", "spatial_ttt_ros/srv/Query", "{task_type: 'object_counting', object_names: ['chair']}")
    assert "success=True" in out, out
    assert "success=True" in call(ros2, "describe", "spatial_ttt_ros/srv/Describe")
    assert "success=True" in call(ros2, "reset", "std_srvs/srv/Trigger")
    out = call(ros2, "save_memory", "spatial_ttt_ros/srv/SaveMemory", "{path: 'from_cli'}")
    assert "success=True" in out, out
    assert (launch.memory_dir / "from_cli").is_file()
    out = call(ros2, "load_memory", "spatial_ttt_ros/srv/LoadMemory", "{path: 'from_cli'}")
    assert "success=True" in out, out
    out = call(ros2, "load_memory", "spatial_ttt_ros/srv/LoadMemory", "{path: '../outside'}")
    assert "success=False" in out and "outside memory_dir" in out, out
    msgs = diagnostics_for(listener, 5.5)
    assert 3 <= len(msgs) <= 7, [round(t, 2) for t, _ in msgs]  # one a second while active too
    assert min(b - a for (a, _), (b, _) in zip(msgs, msgs[1:])) > 0.5


def test_lifecycle_round_trip_and_shutdown(ros2, launch):
    assert ros2.transition("deactivate") == "inactive"
    assert ros2.transition("activate") == "active"
    assert ros2.transition("deactivate") == "inactive"
    assert ros2.transition("cleanup") == "unconfigured"
    assert "Set parameter successful" in ros2.run("param", "set", NODE, "queue_size", "12", "--no-daemon", "--spin-time", "5")
    assert ros2.transition("configure") == "inactive"
    assert ros2.transition("activate") == "active"
    assert "success=True" in call(ros2, "ask", "spatial_ttt_ros/srv/Ask", "{question: 'How many tables are in the room?'}")
    transitions = ros2.run("lifecycle", "list", NODE, "--no-daemon", "--spin-time", "5")
    assert "deactivate" in transitions and "shutdown" in transitions, transitions
    assert ros2.transition("shutdown") == "finalized"
    assert launch.proc.poll() is None, launch.output()  # finalized, still answering lifecycle calls


def test_ctrl_c_ends_launch_and_node_cleanly(ros2, launch):
    code = launch.stop()
    out = launch.output()
    assert code == 0, out[-3000:]
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]
    assert re.search(r"process has finished cleanly|process has died.*exit code 0", out), out[-3000:]
    assert "exit code -2" not in out and "exit code 1" not in out, out[-3000:]
