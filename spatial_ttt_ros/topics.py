"""Default topic names, shared by the simulator's bags, the converter, the node and replay.

All are remappable on the node; bags written by ``spatial-ttt sim`` and
``spatial-ttt convert`` use exactly these.
"""

COLOR = "/camera/color/image_raw"  # sensor_msgs/Image rgb8
COLOR_COMPRESSED = "/camera/color/image_raw/compressed"  # sensor_msgs/CompressedImage
DEPTH = "/camera/depth/image_raw"  # sensor_msgs/Image 16UC1 millimetres
CAMERA_INFO = "/camera/color/camera_info"  # sensor_msgs/CameraInfo
POSE = "/camera/pose"  # geometry_msgs/PoseStamped, frame map, optical axes
ODOM = "/odom"  # nav_msgs/Odometry of the camera: frame map, child camera_color_optical_frame
TF = "/tf"  # tf2_msgs/TFMessage: map -> base_link -> camera_color_optical_frame
LABELS = "/camera/labels/image_raw"  # sensor_msgs/Image 16UC1 class ids (classes.py)
GT_INSTANCES = "/ground_truth/instances"  # sensor_msgs/Image 16UC1 instance ids (0 = none)

WORLD_FRAME = "map"
BASE_FRAME = "base_link"
CAMERA_FRAME = "camera_color_optical_frame"
