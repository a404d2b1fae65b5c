"""`<image topic>/compressed` beside a raw image topic, as image_transport's compressed plugin
publishes it (sensor_msgs/CompressedImage; format "rgb8; jpeg compressed bgr8" for colour, "16UC1; png
compressed mono16" for depth), so RViz, Foxglove and rqt_image_view over Wi-Fi take the small copy.
Encoded only while someone subscribes: a JPEG of 640x480 costs milliseconds per frame."""
from __future__ import annotations

import time

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage

# encoding -> (cv2 conversion to what the codec takes, or None; codec; target format in the format string)
CODECS = {
    "rgb8": (cv2.COLOR_RGB2BGR, ".jpg", "bgr8"), "bgr8": (None, ".jpg", "bgr8"),
    "rgba8": (cv2.COLOR_RGBA2BGR, ".jpg", "bgr8"), "bgra8": (cv2.COLOR_BGRA2BGR, ".jpg", "bgr8"),
    "mono8": (None, ".jpg", "mono8"), "16UC1": (None, ".png", "mono16"), "mono16": (None, ".png", "mono16"),
}


def encode(array: np.ndarray, encoding: str, jpeg_quality: int = 80, png_level: int = 1) -> tuple[bytes, str]:
    """Returns (compressed bytes, CompressedImage.format) of an (H, W[, C]) image; JPEG for 8-bit
    images, 16-bit PNG for depth."""
    if encoding not in CODECS:
        raise ValueError(f"no compressed form for encoding {encoding!r}; known: {sorted(CODECS)}")
    code, ext, target = CODECS[encoding]
    img = array if code is None else cv2.cvtColor(array, code)
    opts = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION,
                                                                                 int(png_level)]
    ok, buf = cv2.imencode(ext, img, opts)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {array.shape} {encoding} image as {ext}")
    kind = "jpeg" if ext == ".jpg" else "png"
    return buf.tobytes(), f"{encoding}; {kind} compressed {target}"


class CompressedTwin:
    """The `<topic>/compressed` publisher of one raw image topic; `values` is the node's live
    parameter dict (jpeg_quality, and png_level where the node publishes depth)."""

    def __init__(self, node, topic: str, qos, values: dict):
        self.topic = node.resolve_topic_name(topic) + "/compressed"
        self.pub = node.create_publisher(CompressedImage, self.topic, qos)
        self.values = values
        self.encoded = 0
        self.encode_s = 0.0

    def wanted(self) -> bool:
        """Returns whether anyone subscribes (nothing is encoded otherwise)."""
        return self.pub.get_subscription_count() > 0

    def publish(self, array: np.ndarray, encoding: str, header) -> bool:
        """Returns True after publishing the compressed copy; False when nobody subscribes."""
        if not self.wanted():
            return False
        t0 = time.perf_counter()
        data, fmt = encode(array, encoding, self.values["jpeg_quality"], self.values.get("png_level", 1))
        self.encode_s += time.perf_counter() - t0
        self.encoded += 1
        self.pub.publish(CompressedImage(header=header, format=fmt, data=data))
        return True

    def mean_ms(self) -> float:
        """Returns the mean encoding time per frame so far (NaN before the first)."""
        return self.encode_s / self.encoded * 1e3 if self.encoded else float("nan")


def twin_values(twins) -> dict:
    """Returns the diagnostic key/values of a node's compressed twins: frames encoded, mean ms each."""
    twins = list(twins)
    n = sum(t.encoded for t in twins)
    total = sum(t.encode_s for t in twins)
    return {"compressed_frames": n, "compressed_encode_ms": f"{total / n * 1e3:.2f}" if n else "nan"}
