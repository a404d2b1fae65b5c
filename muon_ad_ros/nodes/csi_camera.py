"""csi_camera node: frames from a Jetson CSI camera (GStreamer), a V4L2 device, a video file or an
image folder through OpenCV, with CameraInfo from a calibration YAML."""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from muon_ad_ros.camera.model import load_calibration
from muon_ad_ros.camera.opencv_source import OpenCVSource, imx219_pipeline
from muon_ad_ros.camera.source import Frame
from muon_ad_ros.nodes import spin
from muon_ad_ros.nodes.camera_base import CameraNode, camera_info, header
from muon_ad_ros.nodes.diagnostics import OK, WARN
from muon_ad_ros.params import csi_camera as csi_params


class CsiCameraNode(CameraNode):
    params = csi_params.PARAMS
    live_params = ("frame_id", "frame_timeout", "base_frame_id", "parent_frame_id", "mount_pose", "jpeg_quality")

    def __init__(self):
        self.calibration_error = ""
        self._size: tuple[int, int] | None = None
        self._started = False
        super().__init__("csi_camera", self._check)
        self._started = True

    def _check(self, values: dict) -> str | None:
        reason = csi_params.check(values)
        if reason or not self._started or not values["calibration_file"]:
            return reason
        # A calibration set at run time is loaded now, so a bad file is refused with its reason.
        try:
            load_calibration(values["calibration_file"])
        except ValueError as exc:
            return str(exc)
        return None

    def setup(self):
        self.image_pub = self.publisher(Image, "image_raw")
        self.info_pub = self.publisher(CameraInfo, "camera_info")

    def make_source(self) -> OpenCVSource:
        v = self.values
        uri = v["source"] or imx219_pipeline(v["width"], v["height"], int(round(v["fps"])), v["sensor_id"],
                                             v["flip_method"])
        args = dict(uri=uri, width=v["width"], height=v["height"], fps=v["fps"], loop=v["loop"], hold=v["image_hold"],
                    pan_zoom=v["pan_zoom"])
        self.calibration_error = ""
        try:
            return OpenCVSource(**args, calibration=v["calibration_file"] or None)
        except ValueError as exc:  # a bad calibration must not stop the images
            self.calibration_error = str(exc)
            self.get_logger().error(f"calibration not used: {exc}")
            return OpenCVSource(**args)

    def lossless(self) -> bool:
        return False   # files and folders are paced by the source itself

    def publish(self, frame: Frame):
        hdr = header(frame.stamp_ns, self.values["frame_id"])
        h, w = frame.color.shape[:2]
        self._size = (w, h)
        self.publish_image(self.image_pub, "image_raw", frame.color, "rgb8", hdr)
        model, _ = self.source.camera_model(w, h)
        self.info_pub.publish(camera_info(model, w, h, hdr))

    def optical_frames(self) -> dict:
        return {self.values["frame_id"]: np.eye(4)}

    def calibration_state(self) -> tuple[str, str]:
        """Returns (calibration name or "", why there is none)."""
        if self.calibration_error:
            return "", self.calibration_error
        if self.source is None or self._size is None:
            return "", "no frame yet"
        model, why = self.source.camera_model(*self._size)
        return (model.name or "calibrated", "") if model else ("", why)

    def refine(self, level: int, message: str) -> tuple[int, str]:
        name, why = self.calibration_state()
        if level == OK and not name and self._size is not None:
            return WARN, f"{message}; CameraInfo uncalibrated: {why}"
        return level, message

    def describe(self) -> dict:
        name, why = self.calibration_state()
        return {"kind": self.source.kind if self.source else "", "calibration": name or f"none ({why})"}


def main(args=None) -> int:
    return spin.run_node(CsiCameraNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
