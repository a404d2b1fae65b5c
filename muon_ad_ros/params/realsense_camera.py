"""Parameters of the realsense_camera node (same names and defaults in config/edge.yaml)."""
from muon_ad_ros.params import Param
from muon_ad_ros.params.shared import DEPTH_COMPRESSED_PARAMS, check_tf, tf_params

PARAMS = (
    Param("serial", "", "Serial number of the RealSense device; empty = the first one found. A leading '_' "
          "is ignored, so `-p serial:=_123456789012` stays a string on the command line (as in realsense-ros). "
          "Changing it reopens the camera."),
    Param("recording", "", "Play this .db3/.bag recording instead of a device (`muon-ad make-recording` makes "
          "one from bundled photographs); empty = use a device. A missing file is reported and retried."),
    Param("width", 640, "Color and depth width requested from the device (recordings play as recorded).",
          min=16, max=4096),
    Param("height", 480, "Color and depth height requested from the device.", min=16, max=4096),
    Param("fps", 30.0, "Stream rate requested from the device, and the most frames per second published.",
          min=1.0, max=300.0),
    Param("enable_depth", True, "Stream depth as well as color."),
    Param("align_depth", True, "Align depth to the color image (aligned_depth_to_color/*, color frame id; "
          "aligned and published only while someone subscribes); false publishes depth/image_rect_raw in the "
          "depth optical frame."),
    Param("loop", True, "Replay a recording from the start when it ends; false = report ERROR at its end "
          "and keep running."),
    Param("realtime", True, "Play a recording at its recorded rate (paced by its hardware timestamps); "
          "false = as fast as `fps` allows, every frame."),
    Param("color_frame_id", "camera_color_optical_frame", "frame_id of color and aligned depth (REP-103 "
          "optical frame: z forward, x right, y down)."),
    Param("depth_frame_id", "camera_depth_optical_frame", "frame_id of unaligned depth."),
    Param("frame_timeout", 2.0, "Seconds without frames after which diagnostics go STALE and the camera "
          "is reopened.", min=0.2, max=60.0),
) + tf_params("camera_link") + DEPTH_COMPRESSED_PARAMS


def check(values: dict) -> str | None:
    """Returns why the combination is inconsistent, or None."""
    if values["serial"] and values["recording"]:
        return f"give serial ({values['serial']!r}) or recording ({values['recording']!r}), not both"
    rec = values["recording"]
    if rec and not rec.endswith((".db3", ".bag")):
        return f"recording {rec!r} must be a .db3 or .bag file"
    if values["align_depth"] and not values["enable_depth"]:
        return "align_depth needs enable_depth"
    for key in ("color_frame_id", "depth_frame_id"):
        if not values[key]:
            return f"{key} must not be empty"
    return check_tf(values)
