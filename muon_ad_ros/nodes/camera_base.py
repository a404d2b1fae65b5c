"""What the camera nodes share: a capture thread that reads a ROS-free source (muon_ad_ros.camera)
and publishes Image + CameraInfo stamped with the source's own timestamps, a source rebuilt when
its parameters change, and diagnostics on the source's state."""
from __future__ import annotations

import threading
import time

from builtin_interfaces.msg import Time
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from muon_ad_ros.camera.model import CameraModel
from muon_ad_ros.camera.source import ENDED, RECONNECTING, STARTING, Frame, Pacer
from muon_ad_ros.nodes import declare, diagnostics, frames, images, qos
from muon_ad_ros.nodes.compressed import CompressedTwin, twin_values
from muon_ad_ros.nodes.diagnostics import ERROR, OK, STALE, WARN
from muon_ad_ros.nodes.links import LinkMonitor
from muon_ad_ros.nodes.tf import StaticTf, camera_transforms


def header(stamp_ns: int, frame_id: str) -> Header:
    """Returns a header with the source's stamp (ns since the epoch) and frame id."""
    return Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)


def camera_info(model: CameraModel | None, width: int, height: int, hdr: Header) -> CameraInfo:
    """Returns the CameraInfo of `model`, or an uncalibrated one (K all zero, as camera_info_manager
    publishes without calibration) when model is None."""
    msg = CameraInfo(header=hdr, width=width, height=height)
    if model is not None:
        msg.distortion_model = model.distortion_model
        msg.d, msg.k, msg.r, msg.p = list(model.d), list(model.k), list(model.r), list(model.p)
    return msg


class CameraNode(Node):
    """Base of the camera nodes: subclasses give make_source(), publish(frame), lossless() and describe()."""

    params: tuple = ()
    live_params: tuple[str, ...] = ()   # parameters applied without reopening the source

    def __init__(self, name: str, check):
        super().__init__(name)
        self.stats = frames.FrameStats()
        self.diag = diagnostics.Diagnostics(self)
        self.values = declare.declare_params(self, self.params, check, self._on_change)
        self.qos = qos.image_qos()
        self.links = LinkMonitor(self, self.diag, lambda: self.values["frame_timeout"])
        self.source = None
        self.source_error = ""
        self.throttled = 0
        self._rebuild = True
        self._last_pub = 0.0
        self._pacer = Pacer(0)
        self.twins: dict[str, CompressedTwin] = {}
        self.setup()
        self.tf = StaticTf(self)
        self._publish_tf()
        self.create_timer(1.0, self._publish_tf)     # parameter and extrinsics changes
        self.diag.add_provider(self._report)
        self._running = True
        self.thread = threading.Thread(target=self._capture, name=f"{name}_capture", daemon=True)
        self.thread.start()

    def publisher(self, msg_type, topic: str):
        """Returns a sensor-data QoS publisher that logs incompatible-QoS events and is recreated when
        DDS leaves a listed subscriber unmatched (nodes.links); an Image topic gets its
        `<topic>/compressed` twin."""
        _, pub_cb = qos.qos_event_callbacks(self, self.resolve_topic_name(topic), self.qos)
        if msg_type is Image:
            self.twins[topic] = CompressedTwin(self, topic, self.qos, self.values)
        return self.links.publisher(msg_type, topic, self.qos, event_callbacks=pub_cb)

    def publish_image(self, pub, topic: str, array, encoding: str, hdr: Header):
        """Publishes an image and, while someone subscribes to it, its compressed copy."""
        pub.publish(image_msg(array, encoding, hdr))
        self.twins[topic].publish(array, encoding, hdr)

    def _publish_tf(self):
        v = self.values
        self.tf.publish(camera_transforms(v["base_frame_id"], self.optical_frames(), v["parent_frame_id"],
                                          v["mount_pose"]))

    def _on_change(self, name: str, value):
        if name not in self.live_params:
            self._rebuild = True

    # -- capture thread -------------------------------------------------------------------------
    def _capture(self):
        while self._running:
            if self._rebuild:
                self._open_source()
            if self.source is None:
                time.sleep(0.5)
                continue
            frame = self.source.read(0.25)
            if frame is None or not self._running:
                continue
            if not self._due():
                self.throttled += 1
                continue
            try:
                self.publish(frame)
            except Exception as exc:  # a publishing failure must not end the capture thread
                self.stats.on_bad("publish")
                self.get_logger().error(f"cannot publish frame {frame.number}: {exc}", throttle_duration_sec=5.0)
                continue
            self.stats.on_input()
            self.stats.on_output(frame.stamp_ns / 1e9)

    def _open_source(self):
        self._rebuild = False
        if self.source is not None:
            self.source.close()
        fps = self.values["fps"]
        self._pacer = Pacer(fps)
        try:
            self.source = self.make_source()
            self.source_error = ""
            self.get_logger().info(f"reading {self.source.name}")
        except (ValueError, RuntimeError) as exc:
            self.source, self.source_error = None, str(exc)
            self.get_logger().error(f"cannot create the camera source: {exc}")

    def _due(self) -> bool:
        """Returns whether this frame is published: lossless sources are paced to `fps`, live ones
        drop frames that come sooner than 0.9 / fps after the previous one."""
        if self.lossless():
            self._pacer.wait()
            return True
        now = time.monotonic()
        if now - self._last_pub < 0.9 / self.values["fps"]:
            return False
        self._last_pub = now
        return True

    # -- diagnostics ----------------------------------------------------------------------------
    def _report(self):
        src = self.source
        silent = self.stats.seconds_since_input()
        timeout = self.values["frame_timeout"]
        if src is None:
            level, msg = ERROR, f"no camera source: {self.source_error}"
        elif src.state == ENDED:
            level, msg = ERROR, src.last_error
        elif src.state == RECONNECTING:
            # After frames have flowed, a lost source is being reconnected (WARN); one that never
            # opened is misconfigured or absent (ERROR).
            level = WARN if src.frames else ERROR
            msg = f"reconnecting (next try in {max(0.0, src.backoff.next_try - time.monotonic()):.1f} s): " \
                  f"{src.last_error}"
        elif src.state == STARTING:
            level, msg = (STALE, f"opening {src.name}") if silent > timeout else (OK, f"opening {src.name}")
        elif silent > timeout:
            level, msg = STALE, f"no frames published for {silent:.1f} s"
        else:
            level, msg = OK, f"streaming {src.name}"
        level, msg = self.refine(level, msg)
        values = self.stats.key_values() + diagnostics.kv(
            state=src.state if src else "none", source=src.name if src else "", frames_read=src.frames if src else 0,
            reconnects=src.reconnects if src else 0, throttled=self.throttled,
            last_error=(src.last_error if src else self.source_error) or "", fps_limit=self.values["fps"],
            timestamps="source clock mapped to host time (offset from the least-delayed frame)",
            **twin_values(self.twins.values()),
            **self.describe())
        self.diag.status("camera", level, msg, values)

    def close(self):
        self._running = False
        self.thread.join(timeout=2.0)
        if self.source is not None:
            self.source.close()

    # -- subclass hooks -------------------------------------------------------------------------
    def setup(self):
        """Creates the publishers (called before the capture thread starts)."""

    def make_source(self):
        raise NotImplementedError

    def publish(self, frame: Frame):
        raise NotImplementedError

    def optical_frames(self) -> dict:
        """Returns {optical frame: 4x4 pose in the first optical frame} of the published streams."""
        raise NotImplementedError

    def lossless(self) -> bool:
        """Returns True when the source hands over every frame and the node must pace it."""
        return False

    def describe(self) -> dict:
        """Returns extra diagnostic key/values."""
        return {}

    def refine(self, level: int, message: str) -> tuple[int, str]:
        """Returns the status level and message, adjusted for what only the subclass knows."""
        return level, message


def image_msg(array, encoding: str, hdr: Header) -> Image:
    """Returns an Image of `array` (one tobytes copy, never element-wise)."""
    return images.fill_image(Image(), array, encoding, hdr)

