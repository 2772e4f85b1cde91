"""spatial_ttt_ros: a streaming 3D spatial memory for robots, built by test-time training.

Data flows one way: perception -> memory -> reasoning. Only ``spatial_ttt_ros.ros``
imports rclpy; everything else is plain Python / NumPy / PyTorch.
"""

__version__ = "0.1.0"

# The generated ROS interfaces (spatial_ttt_ros.msg / .srv) are installed by CMake
# under this same package name in the install space (site-packages). When this
# source tree is imported directly (tests, `python -m`), let the package span both
# places so `from spatial_ttt_ros.msg import Answer` still resolves.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
