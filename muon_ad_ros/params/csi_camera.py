"""Parameters of the csi_camera node (same names and defaults in config/edge.yaml)."""
from muon_ad_ros.params import Param
from muon_ad_ros.params.shared import COMPRESSED_PARAMS, check_tf, tf_params

PARAMS = (
    Param("source", "", "A GStreamer pipeline (contains '!'), a V4L2 device (/dev/videoN or N), a video file or "
          "an image folder; empty = the IMX219 CSI camera through nvarguscamerasrc (Jetson)."),
    Param("width", 640, "Frame width (V4L2 request, GStreamer default pipeline, files and folders are resized).",
          min=16, max=4096),
    Param("height", 480, "Frame height.", min=16, max=4096),
    Param("fps", 30.0, "Frame rate: requested from the camera, pacing of files and folders, and the most "
          "frames per second published.", min=1.0, max=300.0),
    Param("sensor_id", 0, "CSI port of the default IMX219 pipeline.", min=0, max=7),
    Param("flip_method", 0, "nvvidconv flip-method of the default pipeline (0 none, 2 rotate 180).", min=0, max=7),
    Param("loop", True, "Restart a video file or image folder at its end; false = report ERROR and keep running."),
    Param("image_hold", 2.0, "Image folders: seconds each image is shown (at `fps`); 0 = the next image every "
          "frame (a few photos then flicker).", min=0.0, max=3600.0),
    Param("pan_zoom", False, "Image folders: a slow pan and zoom over each image while it is shown, instead of "
          "a still."),
    Param("calibration_file", "", "camera_calibration / camera_info_manager YAML giving CameraInfo; empty = "
          "publish an uncalibrated CameraInfo (K all zero) and report WARN."),
    Param("frame_id", "csi_optical_frame", "frame_id of the image and CameraInfo (REP-103 optical frame)."),
    Param("frame_timeout", 2.0, "Seconds without frames after which diagnostics go STALE and the source "
          "is reopened.", min=0.2, max=60.0),
) + tf_params("csi_link") + COMPRESSED_PARAMS


def check(values: dict) -> str | None:
    """Returns why the combination is inconsistent, or None."""
    cal = values["calibration_file"]
    if cal and not cal.endswith((".yaml", ".yml")):
        return f"calibration_file {cal!r} must be a .yaml file"
    if not values["frame_id"]:
        return "frame_id must not be empty"
    return check_tf(values)
