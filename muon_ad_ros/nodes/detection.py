"""detection node: detects objects (COCO's 80 classes with the bundled SSD by default) in the latest
camera frame and publishes detections (the package's message, and vision_msgs/Detection2DArray where
vision_msgs is installed), RViz markers and an annotated image, each with the source header unchanged.
It runs at normal scheduling with a nice value, below the style node's SCHED_FIFO (graph.DETECTION_NICE).

RViz markers: a LINE_STRIP rectangle and a TEXT_VIEW_FACING label per detection, in the image's
optical frame (header.frame_id; x right, y down, z forward, REP-103). Each box is the cross-section
of its viewing frustum at `marker_depth` metres, from the camera_info beside the image topic (or a
69.4 degree horizontal field of view, the D415 colour camera's, until one arrives). In RViz add a
MarkerArray display on detections/markers: the rectangles float `marker_depth` m in front of the
camera, and a Camera display on the image topic shows them over the picture. Every message starts
with DELETEALL, so boxes of the previous frame disappear; a 1 s lifetime clears them if the node stops.
"""
from __future__ import annotations

import importlib.util
import math
import os
import threading
import time
from dataclasses import replace

import numpy as np
from geometry_msgs.msg import Point
from rcl_interfaces.msg import SetParametersResult
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import Marker, MarkerArray

from muon_ad_ros.detect import DetectorConfig, Filters, make_detector
from muon_ad_ros.detect.draw import annotate, class_color
from muon_ad_ros.msg import Detection, DetectionArray
from muon_ad_ros.nodes import declare, diagnostics, frames, images, qos, spin
from muon_ad_ros.nodes.diagnostics import ERROR, OK, STALE, WARN
from muon_ad_ros.nodes.compressed import CompressedTwin, twin_values
from muon_ad_ros.nodes.links import LinkMonitor
from muon_ad_ros.params import detection as detection_params

FILTER_PARAMS = ("score_threshold", "nms_threshold", "class_filter", "max_detections", "class_thresholds",
                 "agnostic_nms_threshold")
RELOAD_PARAMS = ("backend", "model_path", "labels_path", "output_layout", "input_size", "precision", "device",
                 "dla_core", "calibration_dir", "engine_cache_dir", "threads")
DEFAULT_HFOV_DEG = 69.4
DEFAULT_INTRINSICS = f"default {DEFAULT_HFOV_DEG} deg horizontal field of view"   # for /diagnostics


def detector_config(values: dict) -> DetectorConfig:
    """Returns the DetectorConfig the node's parameter values describe."""
    return DetectorConfig(**{k: values[k] for k in RELOAD_PARAMS}, filters=filters(values))


def filters(values: dict) -> Filters:
    """Returns the post-processing filters of the node's parameter values."""
    return Filters(values["score_threshold"], values["nms_threshold"],
                   tuple(c for c in values["class_filter"] if c.strip()), values["max_detections"],
                   detection_params.parse_class_thresholds(values["class_thresholds"]),
                   values["agnostic_nms_threshold"])


def vision_msgs_types():
    """Returns (Detection2DArray, Detection2D, ObjectHypothesisWithPose) where vision_msgs is installed
    (the distribution's package, or vendor/vision_msgs built by `make build`), else None."""
    if importlib.util.find_spec("vision_msgs") is None:
        return None
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
    return Detection2DArray, Detection2D, ObjectHypothesisWithPose


def to_vision_msgs(types, header, boxes):
    """Returns a vision_msgs Detection2DArray of the boxes: bbox centre and size in pixels, one hypothesis
    per box whose class_id is the class name (vision_msgs' class_id is a string; yolo_ros and Isaac ROS
    consumers match on names)."""
    array_type, det_type, hyp_type = types
    out = array_type(header=header)
    for b in boxes:
        d = det_type(header=header)
        d.bbox.center.position.x = (b.x_min + b.x_max) / 2
        d.bbox.center.position.y = (b.y_min + b.y_max) / 2
        d.bbox.size_x, d.bbox.size_y = b.x_max - b.x_min, b.y_max - b.y_min
        hyp = hyp_type()
        hyp.hypothesis.class_id, hyp.hypothesis.score = b.class_name, b.score
        d.results = [hyp]
        out.detections.append(d)
    return out


def renice_process(nice: int) -> str:
    """Returns "" after giving every thread of this process the nice value, or why it failed. Linux
    keeps nice per thread; threads started later inherit it from their creator."""
    errors = []
    for tid in os.listdir("/proc/self/task"):
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)
        except OSError as exc:
            errors.append(f"{tid}: {exc.strerror}")
    return f"nice {nice} refused for threads {errors}" if errors else ""


class DetectionNode(Node):
    def __init__(self):
        super().__init__("detection")
        self.stats = frames.FrameStats()
        self.diag = diagnostics.Diagnostics(self)
        self.detector = None
        self.load_error = ""
        self.loading = ""
        self.rate_skipped = 0
        self._next_allowed = 0.0
        self.camera_info: CameraInfo | None = None
        self.marker_intrinsics = "none yet"   # what the last markers were projected with, for /diagnostics
        self.values = declare.declare_params(self, detection_params.PARAMS, detection_params.check, self._on_change)
        self.add_on_set_parameters_callback(self._check_paths)
        self.nice_note = renice_process(self.values["nice"])
        if self.nice_note:
            self.get_logger().warning(self.nice_note)

        self.qos = qos.image_qos()
        image_topic = self.resolve_topic_name("image")
        sub_cb, _ = qos.qos_event_callbacks(self, image_topic, self.qos)
        self.links = LinkMonitor(self, self.diag, lambda: self.values["stale_timeout"])
        self.links.subscription(Image, "image", self._on_image, self.qos, event_callbacks=sub_cb, expect_data=True)
        # camera_info beside the image (image_transport convention), whatever `image` is remapped to.
        self.create_subscription(CameraInfo, image_topic.rsplit("/", 1)[0] + "/camera_info",
                                 self._on_camera_info, self.qos)
        self.det_pub = self.links.publisher(DetectionArray, "detections", qos.reliable_qos())
        self.marker_pub = self.links.publisher(MarkerArray, "detections/markers", qos.reliable_qos())
        self.vision_types = vision_msgs_types()
        self.vision_pub = (self.links.publisher(self.vision_types[0], "detections/vision_msgs", qos.reliable_qos())
                           if self.vision_types else None)
        annotated = self.resolve_topic_name("detections/image_annotated")
        _, pub_cb = qos.qos_event_callbacks(self, annotated, self.qos)
        self.image_pub = self.links.publisher(Image, "detections/image_annotated", self.qos, event_callbacks=pub_cb)
        self.annotated_twin = CompressedTwin(self, "detections/image_annotated", self.qos, self.values)
        self.diag.add_provider(self._report)

        self.slot = frames.LatestFrame()
        self.to_rgb = images.RgbConverter()
        self._running = True
        self._reload = threading.Event()
        self._reload.set()
        self.loader = threading.Thread(target=self._load_loop, name="detector_loader", daemon=True)
        self.worker = threading.Thread(target=self._work, name="detection", daemon=True)
        self.loader.start()
        self.worker.start()

    # -- parameters ---------------------------------------------------------------------------
    def _check_paths(self, params) -> SetParametersResult:
        """Rejects, at set time, paths that do not exist; a corrupt file is found by the loader."""
        for p in params:
            if p.name in ("model_path", "labels_path") and p.value and not os.path.isfile(os.path.expanduser(p.value)):
                return SetParametersResult(successful=False, reason=f"{p.name}: file {p.value} does not exist")
            if p.name == "calibration_dir" and p.value and not os.path.isdir(os.path.expanduser(p.value)):
                return SetParametersResult(successful=False, reason=f"calibration_dir: {p.value} is not a folder")
        return SetParametersResult(successful=True)

    def _on_change(self, name: str, value):
        if name in RELOAD_PARAMS:
            self._reload.set()
        elif name in FILTER_PARAMS and self.detector is not None:
            # Filters are read once per frame; swapping the whole object takes effect on the next one.
            self.detector.filters = filters(self.values)

    def _load_loop(self):
        """Builds detectors in the background (a TensorRT build takes minutes) while the previous one serves."""
        while self._running:
            if not self._reload.wait(0.5) or not self._running:
                continue
            self._reload.clear()
            cfg = detector_config(self.values)
            self.loading = f"{cfg.backend} {cfg.model_path}".strip()
            try:
                detector = make_detector(cfg, log=self.get_logger().info)
            except Exception as exc:   # the node must outlive any model file
                self.load_error = str(exc)
                kept = self.detector.describe() if self.detector else "opencv_hog (fallback)"
                self.get_logger().error(f"detector not loaded: {exc}; keeping {kept}")
                self.loading = ""
                if self.detector is not None:
                    continue
                try:   # nothing ran before: serve with the bundled people detector meanwhile
                    detector = make_detector(replace(cfg, backend="opencv_hog", precision="auto"))
                    detector.fallback = f"{cfg.backend} failed to load"
                except Exception as exc2:
                    self.load_error += f"; opencv_hog fallback failed too: {exc2}"
                    continue
            else:
                self.load_error = ""
                # one severity per call site: rclpy refuses a call site's second severity (ValueError)
                if detector.fallback:
                    self.get_logger().warning(f"detector ready: {detector.describe()} model {detector.model}")
                else:
                    self.get_logger().info(f"detector ready: {detector.describe()} model {detector.model}")
            detector.filters = filters(self.values)
            self.detector = detector
            self.loading = ""
            unknown = detector.unknown_classes()
            if unknown:
                self.get_logger().warning(f"class_filter/class_thresholds entries {unknown} name no class of "
                                          f"{detector.model}")

    # -- frames -------------------------------------------------------------------------------
    def _on_camera_info(self, msg: CameraInfo):
        self.camera_info = msg

    def _on_image(self, msg: Image):
        self.stats.on_input()
        try:
            view = images.image_view(msg, tuple(images.TO_RGB), self.values["max_image_dim"])
        except images.ImageError as exc:
            self.stats.on_bad(exc.reason)
            return
        rate = self.values["rate_limit"]
        if rate > 0:
            now, period = time.monotonic(), 1.0 / rate
            if now < self._next_allowed:
                self.rate_skipped += 1
                return
            # Advance by whole periods from the last slot, so camera jitter does not lower the rate.
            self._next_allowed = max(self._next_allowed + period, now - period / 2)
        if self.slot.put((msg, view)):
            self.stats.on_dropped()

    def _work(self):
        while self._running:
            item = self.slot.take(0.2)
            detector = self.detector
            if item is None:
                continue
            if detector is None:
                self.stats.on_bad("no_detector")
                continue
            msg, view = item
            try:
                rgb = self.to_rgb(view, msg.encoding)
                boxes = detector.detect(np.ascontiguousarray(rgb))
            except Exception as exc:
                self.stats.on_bad("inference")
                self.get_logger().error(f"detection failed on a {msg.width}x{msg.height} {msg.encoding} frame: "
                                        f"{exc}", throttle_duration_sec=5.0)
                continue
            try:
                self._publish(msg, rgb, boxes, detector.name)
            except Exception as exc:
                if not self._running or not self.context.ok():
                    break   # shutting down: the publishers are gone
                self.stats.on_bad("publish")
                self.get_logger().error(f"publishing failed: {exc}", throttle_duration_sec=5.0)
                continue
            self.stats.on_output(images.stamp_seconds(msg.header.stamp))

    def _publish(self, msg: Image, rgb: np.ndarray, boxes, backend: str):
        self.det_pub.publish(DetectionArray(header=msg.header, backend=backend, detections=[
            Detection(x_min=b.x_min, y_min=b.y_min, x_max=b.x_max, y_max=b.y_max, class_id=b.class_id,
                      class_name=b.class_name, score=b.score) for b in boxes]))
        if self.vision_pub is not None:
            self.vision_pub.publish(to_vision_msgs(self.vision_types, msg.header, boxes))
        self.marker_pub.publish(self._markers(msg, boxes))
        if self.values["publish_annotated"] and (self.image_pub.get_subscription_count() > 0 or
                                                 self.annotated_twin.wanted()):
            drawn = annotate(rgb, boxes)
            if self.image_pub.get_subscription_count() > 0:
                self.image_pub.publish(images.fill_image(Image(), drawn, "rgb8", msg.header))
            self.annotated_twin.publish(drawn, "rgb8", msg.header)

    def _markers(self, msg: Image, boxes) -> MarkerArray:
        """Returns DELETEALL plus a rectangle and a label per box, at marker_depth in the optical frame."""
        fx, fy, cx, cy = self._intrinsics(msg.width, msg.height)
        depth = self.values["marker_depth"]
        out = MarkerArray(markers=[Marker(header=msg.header, ns="detections", action=Marker.DELETEALL)])

        def point(u, v):
            return Point(x=(u - cx) / fx * depth, y=(v - cy) / fy * depth, z=depth)

        for i, b in enumerate(boxes):
            r, g, bl = (c / 255.0 for c in class_color(b.class_id))
            rect = Marker(header=msg.header, ns="detections", id=2 * i, type=Marker.LINE_STRIP, action=Marker.ADD,
                          lifetime=Duration(seconds=1.0).to_msg(), frame_locked=False)
            rect.pose.orientation.w = 1.0
            rect.scale.x = 0.005 * depth
            rect.color.r, rect.color.g, rect.color.b, rect.color.a = r, g, bl, 1.0
            rect.points = [point(b.x_min, b.y_min), point(b.x_max, b.y_min), point(b.x_max, b.y_max),
                           point(b.x_min, b.y_max), point(b.x_min, b.y_min)]
            label = Marker(header=msg.header, ns="detections", id=2 * i + 1, type=Marker.TEXT_VIEW_FACING,
                           action=Marker.ADD, lifetime=Duration(seconds=1.0).to_msg(),
                           text=f"{b.class_name} {b.score:.2f}")
            label.pose.position = point(b.x_min, b.y_min - 8)
            label.pose.orientation.w = 1.0
            label.scale.z = 0.04 * depth
            label.color.r, label.color.g, label.color.b, label.color.a = r, g, bl, 1.0
            out.markers += [rect, label]
        return out

    def _intrinsics(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Returns (fx, fy, cx, cy) from camera_info of this image size, else from the default field of view."""
        info = self.camera_info
        if info is not None and (info.width, info.height) == (width, height) and info.k[0] > 0 and info.k[4] > 0:
            self.marker_intrinsics = "camera_info"
            return info.k[0], info.k[4], info.k[2], info.k[5]
        self.marker_intrinsics = DEFAULT_INTRINSICS
        f = width / (2 * math.tan(math.radians(DEFAULT_HFOV_DEG) / 2))
        return f, f, width / 2, height / 2

    # -- diagnostics --------------------------------------------------------------------------
    def _report(self):
        d = self.detector
        values = self.stats.key_values()
        values += diagnostics.kv(backend=d.name if d else "none", precision=d.precision if d else "none",
                            device=d.device if d else "none", model=d.model if d else "",
                            fallback=d.fallback if d else "",
                            fallback_layers=len(d.fallback_layers) if d else 0,
                            fallback_layer_names=", ".join(d.fallback_layers[:20]) if d else "",
                            requested_backend=self.values["backend"], requested_model=self.values["model_path"],
                            load_error=self.load_error, loading=self.loading, frames_rate_limited=self.rate_skipped,
                            rate_limit=self.values["rate_limit"], marker_intrinsics=self.marker_intrinsics,
                            vision_msgs="detections/vision_msgs" if self.vision_pub else "not installed",
                            nice=os.getpriority(os.PRIO_PROCESS, 0),
                            **twin_values([self.annotated_twin]))
        stale = self.stats.stale_reason(self.values["stale_timeout"])
        unknown = d.unknown_classes() if d else []
        if d is None:
            level, message = ERROR, f"no detector yet ({self.loading or 'loading'})"
        elif self.load_error:
            level, message = ERROR, f"{self.load_error}; still running {d.describe()}"
        elif stale:
            level, message = STALE, stale
        elif d.fallback or unknown or self.nice_note:
            notes = [d.describe() if d.fallback else "",
                     f"class_filter/class_thresholds {unknown} match no class" if unknown else "", self.nice_note]
            level, message = WARN, "; ".join(n for n in notes if n)
        else:
            level, message = OK, f"{d.describe()} at {self.stats.rate():.1f} Hz"
        self.diag.status("detection", level, message, values)

    def close(self):
        self._running = False
        self._reload.set()
        self.worker.join(timeout=2.0)
        self.loader.join(timeout=2.0)
        # The detector (an ONNX Runtime session or TensorRT engine) ends before DDS and the interpreter do.
        detector, self.detector = self.detector, None
        if detector is not None and not self.worker.is_alive():
            getattr(detector, "close", lambda: None)()


def main(args=None) -> int:
    return spin.run_node(DetectionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
