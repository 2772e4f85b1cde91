"""Launch the spatial memory node (ros2 launch spatial_ttt_ros spatial_ttt.launch.py).

Arguments:
  params_file      parameters (default: the package's config/spatial_ttt.yaml)
  namespace        namespace of the node (its ~/ services and topics move with it)
  node_name        node name (default spatial_ttt)
  color_topic, compressed_topic, depth_topic, camera_info_topic, labels_topic,
  pose_topic, odom_topic
                   where the node's inputs come from (remappings; defaults are the
                   names the simulator's bags use, spatial_ttt_ros/topics.py)
  use_sim_time     follow /clock (true when replaying a bag with --clock)
  log_level        rclcpp/rclpy log level (info)

Example: ros2 launch spatial_ttt_ros spatial_ttt.launch.py namespace:=robot1 \
  color_topic:=camera/camera/color/image_raw depth_topic:=camera/camera/aligned_depth_to_color/image_raw
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "spatial_ttt_ros"
EXECUTABLE = "spatial_ttt_node"
PARAMS_FILE = os.path.join("config", "spatial_ttt.yaml")

# launch argument -> (topic the node subscribes to, description). The node's input names are
# relative (topics.py without the leading slash), so with namespace:=robot1 they resolve under
# /robot1; a relative argument value stays in the namespace, an absolute one ("/camera/...") leaves it.
INPUT_TOPICS = {
    "color_topic": ("camera/color/image_raw", "colour image (sensor_msgs/Image)"),
    "compressed_topic": ("camera/color/image_raw/compressed", "compressed colour (use_compressed: true)"),
    "depth_topic": ("camera/depth/image_raw", "depth image, 16UC1 mm or 32FC1 m"),
    "camera_info_topic": ("camera/color/camera_info", "camera intrinsics"),
    "labels_topic": ("camera/labels/image_raw", "label image of class ids (detector: labels)"),
    "pose_topic": ("camera/pose", "camera pose (geometry_msgs/PoseStamped)"),
    "odom_topic": ("odom", "odometry (nav_msgs/Odometry)"),
}


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory(PACKAGE), PARAMS_FILE)
    args = [
        DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters (YAML)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("node_name", default_value="spatial_ttt", description="name of the node"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock (bag replay)"),
        DeclareLaunchArgument("log_level", default_value="info", description="log level"),
    ]
    args += [
        DeclareLaunchArgument(name, default_value=topic, description=f"input: {what}")
        for name, (topic, what) in INPUT_TOPICS.items()
    ]
    node = Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=LaunchConfiguration("node_name"),
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)},
        ],
        remappings=[(topic, LaunchConfiguration(name)) for name, (topic, _) in INPUT_TOPICS.items()],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
    )
    return LaunchDescription([*args, node])
