"""sensor_msgs/Image in and out: the encodings subscribers accept, a checked zero-copy view of a
message's data, and filling a message from an array."""
from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np
from sensor_msgs.msg import Image


# encoding -> (channels, numpy dtype); the whitelist every subscriber validates against.
ENCODINGS = {
    "rgb8": (3, np.uint8), "bgr8": (3, np.uint8), "rgba8": (4, np.uint8), "bgra8": (4, np.uint8),
    "mono8": (1, np.uint8), "mono16": (1, np.uint16), "16UC1": (1, np.uint16), "32FC1": (1, np.float32),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
# cv2 conversion into an rgb8 buffer, per accepted colour encoding (None: already rgb8)
TO_RGB = {"rgb8": None, "bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
          "mono8": cv2.COLOR_GRAY2RGB}


class ImageError(ValueError):
    """A malformed image; `reason` is the short key it is counted under in diagnostics."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def image_view(msg: Image, allowed: Iterable[str] = COLOR_ENCODINGS, max_dim: int = 4096) -> np.ndarray:
    """Returns a zero-copy (H, W[, C]) view of msg.data after checking every field that could make
    the view wrong; raises ImageError otherwise."""
    if msg.encoding not in allowed or msg.encoding not in ENCODINGS:
        raise ImageError("encoding", f"{msg.encoding!r} not in {sorted(allowed)}")
    h, w = msg.height, msg.width
    if not (0 < h <= max_dim and 0 < w <= max_dim):
        raise ImageError("size", f"{w}x{h} outside 1..{max_dim}")
    channels, dtype = ENCODINGS[msg.encoding]
    itemsize = np.dtype(dtype).itemsize
    row = w * channels * itemsize
    if msg.step < row:
        raise ImageError("step", f"step {msg.step} < width*channels*bytes {row}")
    if len(msg.data) != h * msg.step:
        raise ImageError("data_length", f"len(data) {len(msg.data)} != height*step {h * msg.step}")
    if itemsize > 1 and msg.step % itemsize:
        raise ImageError("step", f"step {msg.step} not a multiple of {itemsize}")
    if itemsize > 1 and msg.is_bigendian:
        raise ImageError("endianness", "big-endian data on a little-endian host")
    # Rows may be padded (step > row): slice them off; the last axis stays contiguous, so
    # viewing it as a wider dtype needs no copy.
    view = np.frombuffer(msg.data, np.uint8).reshape(h, msg.step)[:, :row]
    if itemsize > 1:
        view = view.view(dtype)
    return view.reshape(h, w, channels) if channels > 1 else view.reshape(h, w)


class RgbConverter:
    """Turns a checked colour view (image_view) into an (H, W, 3) rgb8 frame: the view itself for rgb8, else one
    OpenCV conversion into a buffer reused while the frame size stays (valid until the next call)."""

    def __init__(self):
        self.buf = np.empty((0, 0, 3), np.uint8)

    def __call__(self, view: np.ndarray, encoding: str) -> np.ndarray:
        code = TO_RGB[encoding]
        if code is None:
            return view
        if self.buf.shape[:2] != view.shape[:2]:
            self.buf = np.empty(view.shape[:2] + (3,), np.uint8)
        return cv2.cvtColor(view, code, dst=self.buf)


def fill_image(msg: Image, array: np.ndarray, encoding: str, header) -> Image:
    """Returns `msg` filled from a contiguous (H, W[, C]) array; one tobytes() copy, never element-wise."""
    msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    array = np.ascontiguousarray(array)
    msg.step = int(array.strides[0])
    msg.data = array.tobytes()
    return msg


def stamp_seconds(stamp) -> float:
    """Returns a builtin_interfaces/Time as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9
