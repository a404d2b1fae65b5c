"""realsense_camera node: color, depth aligned to color and CameraInfo from a RealSense device or a
recording, stamped with the camera's hardware timestamps, in realsense-ros's topic layout."""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from muon_ad_ros.nodes import spin
from muon_ad_ros.nodes.camera_base import CameraNode, camera_info, header
from muon_ad_ros.nodes.tf import optical_in_optical
from muon_ad_ros.params import realsense_camera as rs_params
from muon_ad_ros.camera.realsense import RealSenseSource  # noqa: I001 (after rclpy: camera/librealsense.py)
from muon_ad_ros.camera.source import Frame


class RealSenseCameraNode(CameraNode):
    params = rs_params.PARAMS
    live_params = ("color_frame_id", "depth_frame_id", "base_frame_id", "parent_frame_id", "mount_pose",
                   "jpeg_quality", "png_level")

    def __init__(self):
        super().__init__("realsense_camera", rs_params.check)

    def setup(self):
        self.color_pub = self.publisher(Image, "color/image_raw")
        self.color_info_pub = self.publisher(CameraInfo, "color/camera_info")
        self.aligned_pub = self.publisher(Image, "aligned_depth_to_color/image_raw")
        self.aligned_info_pub = self.publisher(CameraInfo, "aligned_depth_to_color/camera_info")
        self.depth_pub = self.publisher(Image, "depth/image_rect_raw")
        self.depth_info_pub = self.publisher(CameraInfo, "depth/camera_info")

    def make_source(self) -> RealSenseSource:
        v = self.values
        return RealSenseSource(serial=v["serial"].lstrip("_") or None, recording=v["recording"] or None, width=v["width"],
                               height=v["height"], fps=int(round(v["fps"])), align_depth=v["align_depth"],
                               loop=v["loop"], realtime=v["realtime"], depth=v["enable_depth"],
                               frame_timeout=v["frame_timeout"])

    def lossless(self) -> bool:
        return bool(self.source and self.source.recording and not self.source.realtime)

    def publish(self, frame: Frame):
        src, v = self.source, self.values
        hdr = header(frame.stamp_ns, v["color_frame_id"])
        h, w = frame.color.shape[:2]
        self.publish_image(self.color_pub, "color/image_raw", frame.color, "rgb8", hdr)
        self.color_info_pub.publish(camera_info(src.color_model.scaled(w, h), w, h, hdr))
        if src.align_depth:
            # aligned only while someone takes it (image, its compressed twin or its camera_info)
            src.align_wanted = (self.aligned_pub.get_subscription_count() > 0
                                or self.aligned_info_pub.get_subscription_count() > 0
                                or self.twins["aligned_depth_to_color/image_raw"].wanted())
        if frame.depth is None:
            return
        dh, dw = frame.depth.shape
        if src.align_depth:
            # Aligned depth lives in the color camera's geometry and frame, like realsense-ros's.
            self.publish_image(self.aligned_pub, "aligned_depth_to_color/image_raw", frame.depth, "16UC1", hdr)
            self.aligned_info_pub.publish(camera_info(src.color_model.scaled(dw, dh), dw, dh, hdr))
        else:
            dhdr = header(frame.stamp_ns, v["depth_frame_id"])
            self.publish_image(self.depth_pub, "depth/image_rect_raw", frame.depth, "16UC1", dhdr)
            self.depth_info_pub.publish(camera_info(src.depth_model, dw, dh, dhdr))

    def optical_frames(self) -> dict:
        # camera_link sits at the depth sensor (as in realsense-ros); colour is placed by the
        # device's depth->colour extrinsics (identity until the source reports them).
        v, src = self.values, self.source
        frames = {v["depth_frame_id"]: np.eye(4)}
        ext = src.depth_to_color if src is not None else None
        frames[v["color_frame_id"]] = optical_in_optical(*ext) if ext else np.eye(4)
        return frames

    def describe(self) -> dict:
        src = self.source
        if src is None or src.color_model is None:
            return {}
        c = src.color_model
        out = {"device": src.device_name, "color": f"{c.width}x{c.height} fx={c.k[0]:.1f} fy={c.k[4]:.1f}",
               "depth": ("aligned to color" if src.align_depth else "unaligned") if src.depth_model else "off",
               "timestamp_domain": src.timestamp_domain}
        if src.align_depth and src.depth_model:
            out["depth_aligning"] = src.align_wanted   # False while no one takes aligned depth
        if src.depth_to_color:
            out["depth_to_color_t_m"] = " ".join(f"{t:.4f}" for t in src.depth_to_color[1])
        return out


def main(args=None) -> int:
    return spin.run_node(RealSenseCameraNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
