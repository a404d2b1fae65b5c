"""ros2 launch muon_ad_ros edge.launch.py [cameras:=realsense,csi] [recording:=/path.db3] ...

Starts the edge graph described in muon_ad_ros.graph (the same description the launch-free runner
and the tests use): camera sources, style_transfer (SCHED_FIFO), detection (below it), controller.
Every node gets config/edge.yaml (or params_file:=...) and then this graph's own settings.
"""
from launch import LaunchDescription
import tempfile

from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node

from muon_ad_ros import graph

ARGS = {
    "cameras": ("realsense", "Comma list of camera sources: realsense, csi, or none (use style_input). With both, "
                "both are stylized (csi on stylized/image_raw_1); detection and depth use realsense."),
    "namespace": ("", "Namespace for every node and topic."),
    "recording": ("", "RealSense recording (.db3/.bag) to play instead of a device."),
    "realsense_serial": ("", "Serial number of the RealSense device; empty = first found."),
    "csi_source": ("", "GStreamer pipeline, /dev/videoN, video file or image folder; empty = IMX219 via "
                       "nvarguscamerasrc."),
    "style_input": ("", "Existing image topic to stylize (e.g. /camera/camera/color/image_raw of "
                        "realsense2_camera) when cameras:=none."),
    "fps": ("30.0", "Camera frame rate."),
    "style_model": ("", "Style model bundle directory; empty = the shipped default style."),
    "style_backend": ("onnxruntime", "onnxruntime | torch | tensorrt"),
    "style_priority": (str(graph.STYLE_PRIORITY), "SCHED_FIFO priority of the style inference thread (0 = off)."),
    "detection": ("true", "Run the detection node."),
    "detection_backend": (graph.DETECTION_BACKEND, "onnxruntime | tensorrt | opencv_dnn | opencv_hog"),
    "detection_model": ("", "ONNX model for onnxruntime/tensorrt detection; empty = the bundled COCO SSD."),
    "detection_rate": (str(graph.DETECTION_RATE), "Most frames per second the detection node processes "
                                                  "(its rate_limit; 0 = every frame it can take)."),
    "controller_mode": ("manual", "manual | target_fps | depth_lod"),
    "target_fps": ("24.0", "Stylized frame rate the controller holds in target_fps mode."),
    "params_file": ("", "Parameters YAML applied to every node before the graph's own settings; "
                        "empty = the package's config/edge.yaml."),
    "rviz": ("false", "Start RViz with config/edge.rviz adapted to this graph's namespace and camera (skipped "
                      "with a message when rviz2 is not installed)."),
}


def _nodes(context):
    arg = {k: LaunchConfiguration(k).perform(context) for k in ARGS}
    cams = tuple(c for c in arg["cameras"].split(",") if c and c != "none")
    specs = graph.edge_graph(
        cams, namespace=arg["namespace"], recording=arg["recording"], realsense_serial=arg["realsense_serial"],
        csi_source=arg["csi_source"], camera_fps=float(arg["fps"]), style_model=arg["style_model"],
        style_backend=arg["style_backend"], style_priority=int(arg["style_priority"]),
        detection=arg["detection"].lower() in ("1", "true", "yes"), detection_backend=arg["detection_backend"],
        detection_model=arg["detection_model"], detection_rate=float(arg["detection_rate"]),
        controller_mode=arg["controller_mode"],
        target_fps=float(arg["target_fps"]), style_input=arg["style_input"])
    params_file = arg["params_file"]
    if not params_file:
        from ament_index_python.packages import get_package_share_directory
        params_file = f"{get_package_share_directory('muon_ad_ros')}/config/edge.yaml"
    nodes = [Node(package="muon_ad_ros", executable=s.executable, name=s.name, namespace=s.namespace,
                  parameters=[params_file, s.parameters], remappings=list(s.remaps), output="screen",
                  emulate_tty=True)
             for s in specs]
    if arg["rviz"].lower() in ("1", "true", "yes"):
        nodes.append(_rviz(arg["namespace"], cams, arg["style_input"]))
    return nodes


def _rviz(namespace: str, cameras: tuple, style_input: str):
    """Returns the RViz node with the graph's config (topics in the namespace), or a message when
    rviz2 is not installed (the graph runs without it)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        return LogInfo(msg="rviz:=true but rviz2 is not installed (apt install ros-$ROS_DISTRO-rviz2); "
                           "the graph runs without it")
    with tempfile.NamedTemporaryFile("w", prefix="muon_ad_ros_", suffix=".rviz", delete=False) as f:
        f.write(graph.rviz_config(namespace, cameras, style_input))
    return Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", f.name], output="screen")


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(k, default_value=v, description=d) for k, (v, d) in ARGS.items()]
        # The graph's Fast DDS profile (graph.transport_profile) unless the user's shell names one.
        + [SetEnvironmentVariable(k, EnvironmentVariable(k, default_value=v)) for k, v in graph.transport_env().items()]
        + [OpaqueFunction(function=_nodes)])
