"""spatial_ttt_ros: a streaming 3D spatial memory for robots, built by test-time training.

Data flows one way: perception -> memory -> reasoning. Only ``spatial_ttt_ros.ros``
imports rclpy; everything else is plain Python / NumPy / PyTorch.
"""

__version__ = "0.1.0"
