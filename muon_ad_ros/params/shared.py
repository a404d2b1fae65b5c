"""Parameters several nodes declare alike: the camera's place in the TF tree, the compressed
copies of published images, and where TensorRT engines run and are cached."""
from __future__ import annotations

import math

from muon_ad_ros.params import Param


def tf_params(base_frame: str) -> tuple[Param, ...]:
    """Returns the TF parameters of a camera node whose body frame defaults to `base_frame`."""
    return (
        Param("base_frame_id", base_frame, "The camera's body frame (REP-103: x forward, y left, z up), root "
              "of its optical frames on /tf_static, as realsense-ros's camera_link."),
        Param("parent_frame_id", "base_link", "Frame the camera is mounted on (your robot's base_link); "
              "mount_pose places base_frame_id in it. Empty = publish no mounting transform (a URDF does)."),
        Param("mount_pose", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "Pose of base_frame_id in parent_frame_id: "
              "[x, y, z] in m, then [roll, pitch, yaw] in rad (REP-103, fixed axes X-Y-Z)."),
    )


def check_tf(values: dict) -> str | None:
    """Returns why the TF parameters are inconsistent, or None."""
    pose = values["mount_pose"]
    if len(pose) != 6 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                                 for x in pose):
        return f"mount_pose must be 6 finite numbers [x, y, z, roll, pitch, yaw], got {list(pose)!r}"
    if not values["base_frame_id"]:
        return "base_frame_id must not be empty"
    if values["parent_frame_id"] == values["base_frame_id"]:
        return f"parent_frame_id and base_frame_id are both {values['base_frame_id']!r}"
    return None


COMPRESSED_PARAMS = (
    Param("jpeg_quality", 80, "JPEG quality of the <image>/compressed topics (sensor_msgs/CompressedImage), "
          "encoded only while someone subscribes.", min=1, max=100),
)
DEPTH_COMPRESSED_PARAMS = COMPRESSED_PARAMS + (
    Param("png_level", 1, "PNG compression level of the compressed depth topics (16-bit PNG; 1 = fastest).",
          min=0, max=9),
)

TENSORRT_PARAMS = (
    Param("dla_core", -1, "tensorrt: run on this DLA core with GPU fallback (fp16/int8); -1 = GPU only.",
          min=-1, max=7),
    Param("engine_cache_dir", "", "tensorrt: engine cache folder; empty = ~/.cache/muon_ad_ros/engines."),
)


def check_dla(values: dict) -> str | None:
    """Returns why dla_core cannot apply to this backend and precision, or None."""
    if values["dla_core"] >= 0 and values["backend"] != "tensorrt":
        return "dla_core needs backend tensorrt"
    if values["dla_core"] >= 0 and values["precision"] == "fp32":
        return "the DLA runs fp16 or int8 only; precision fp32 cannot use dla_core"
    return None
