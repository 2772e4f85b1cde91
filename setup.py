"""pip path for the ROS-free core (simulator, model, training, benchmarks, offline eval).

A robot builds this package with colcon (CMakeLists.txt: generated interfaces plus
these modules, installed together). On a machine without ROS 2 -- a training box,
a laptop replaying bags offline -- `pip install .` gives the same Python package and
the `spatial-ttt` command; `spatial-ttt node` and `--live` evaluation then need the
ROS 2 set-up of the README (`make setup` does both: it builds the interfaces with
CMake into the venv and installs this package there).
"""

from setuptools import find_packages, setup

setup(
    name="spatial_ttt_ros",
    version="0.1.0",
    description="Streaming 3D spatial memory for robots built by test-time training",
    license="Apache-2.0",
    python_requires="==3.11.*",
    packages=find_packages(include=["spatial_ttt_ros", "spatial_ttt_ros.*"]),
    package_data={"spatial_ttt_ros": ["memory/weights/*", "evaluation/data/*"]},
    install_requires=[
        "numpy>=1.26",
        "torch==2.13.0",
        "onnxruntime>=1.18",
        "opencv-python-headless>=4.8",
        "rosbags>=0.10",
        "rosbags-image>=0.9",
        "safetensors>=0.4",
        "scipy>=1.11",
        "PyYAML>=6",
        "matplotlib>=3.8",
        "tqdm>=4.60",
    ],
    # Spatial-TTT-nano (Qwen3-VL-2B + LaCT) on a GPU: pip install '.[vlm]' (flash-attn optional)
    extras_require={"vlm": ["transformers>=4.57.1,<5", "accelerate>=1.0"]},
    entry_points={"console_scripts": ["spatial-ttt = spatial_ttt_ros.cli:main"]},
)
