"""Letterboxing and the decoding of YOLO-family outputs into boxes, shared by the onnxruntime and
TensorRT backends. Three output layouts cover the common exporters:

  yolov5   (1, N, 5+C)  rows [cx, cy, w, h, objectness, C class scores]   (YOLOv5/v7, YOLOX-style)
  yolov8   (1, 4+C, N)  columns [cx, cy, w, h, C class scores], no objectness (YOLOv8/v9/v11)
  end2end  (1, N, 6)    rows [x1, y1, x2, y2, score, class], NMS inside the model (YOLOv10/26,
                        Ultralytics nms=True exports)

Coordinates are network-input pixels; unletterbox() maps them back to the camera image.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from muon_ad_ros.detect.base import Box, Filters, ModelError, allowed_classes

PAD_VALUE = 114  # the grey Ultralytics and YOLOv5 pad with; the models were trained on it


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the network input: x_net = x_img * scale + left."""

    scale: float
    left: int
    top: int
    width: int     # source image size, for clipping
    height: int


def letterbox(rgb: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None
              ) -> tuple[np.ndarray, Letterbox]:
    """Returns (the image resized with its aspect kept and padded to size=(h, w), the mapping)."""
    h, w = rgb.shape[:2]
    net_h, net_w = size
    scale = min(net_h / h, net_w / w)
    new_w, new_h = int(round(w * scale)), int(round(h * scale))
    left, top = (net_w - new_w) // 2, (net_h - new_h) // 2
    if out is None:
        out = np.empty((net_h, net_w, 3), np.uint8)
    out[...] = PAD_VALUE
    region = out[top:top + new_h, left:left + new_w]
    if (new_w, new_h) == (w, h):
        region[...] = rgb
    else:
        cv2.resize(rgb, (new_w, new_h), dst=region, interpolation=cv2.INTER_LINEAR)
    return out, Letterbox(scale, left, top, w, h)


def unletterbox(xyxy: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Returns (N, 4) boxes mapped from network-input pixels back to the source image, clipped to it."""
    xyxy = xyxy.astype(np.float32, copy=True)
    xyxy[:, [0, 2]] = np.clip((xyxy[:, [0, 2]] - lb.left) / lb.scale, 0, lb.width)
    xyxy[:, [1, 3]] = np.clip((xyxy[:, [1, 3]] - lb.top) / lb.scale, 0, lb.height)
    return xyxy


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    """Returns (N, 4) corner boxes from (N, 4) centre/size boxes."""
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def resolve_layout(shape: tuple, requested: str = "auto", end2end_hint: bool | None = None) -> str:
    """Returns the output layout of a (1, a, b) output shape (symbolic dims as str/None); raises
    ModelError for shapes no supported layout has."""
    if len(shape) != 3:
        raise ModelError(f"detector output has shape {list(shape)}; expected rank 3 (1, N, 5+C), "
                         "(1, 4+C, N) or (1, N, 6)")
    _, a, b = (d if isinstance(d, int) and d > 0 else None for d in shape)
    if requested != "auto":
        return requested
    if b == 6 and end2end_hint is not False:
        # (1, N, 6) is also a one-class YOLOv5 head; end-to-end exports keep N small (max_det).
        return "end2end" if end2end_hint or (a is not None and a <= 1000) else "yolov5"
    if a is not None and b is not None:
        return "yolov8" if a < b else "yolov5"
    if a is not None:      # (1, 4+C, anchors): the class axis is static, the anchor axis dynamic
        return "yolov8"
    if b is not None:
        return "yolov5"
    raise ModelError(f"cannot tell the layout of output shape {list(shape)}; set output_layout")


def num_classes(shape: tuple, layout: str) -> int:
    """Returns the class count an output of `shape` has in `layout` (end2end: unknown, 0)."""
    _, a, b = shape
    if layout == "yolov8":
        return int(a) - 4
    if layout == "yolov5":
        return int(b) - 5
    return 0


def decode(output: np.ndarray, layout: str, score_threshold: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (xyxy (N,4), scores (N,), class ids (N,)) of one image's raw output (batch 1) with
    scores above the threshold, in network-input pixels, before NMS."""
    out = np.asarray(output, dtype=np.float32)[0]
    if layout == "end2end":
        xyxy, scores, cls = out[:, :4], out[:, 4], out[:, 5].astype(np.int64)
    elif layout == "yolov8":
        out = out.T                                        # (N, 4+C)
        cls_scores = out[:, 4:]
        cls = cls_scores.argmax(1)
        scores = cls_scores[np.arange(len(out)), cls]
        xyxy = out[:, :4]
    elif layout == "yolov5":
        keep = out[:, 4] > score_threshold                 # objectness bounds the score: cheap pre-filter
        out = out[keep]
        cls = out[:, 5:].argmax(1)
        scores = out[:, 4] * out[np.arange(len(out)), 5 + cls]
        xyxy = out[:, :4]
    else:
        raise ValueError(f"unknown output layout {layout!r}")
    keep = scores > score_threshold
    xyxy, scores, cls = xyxy[keep], scores[keep], cls[keep]
    if layout != "end2end":
        xyxy = cxcywh_to_xyxy(xyxy)
    return xyxy, scores.astype(np.float32), cls.astype(np.int64)


def nms(xyxy: np.ndarray, scores: np.ndarray, cls: np.ndarray, iou_threshold: float,
        top_k: int = 0) -> np.ndarray:
    """Returns the indices kept by per-class non-maximum suppression, best score first."""
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).astype(np.float64)
    # OpenCV's batched NMS: IoU = intersection / union of the rectangles, suppress when > threshold.
    keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.astype(float).tolist(), cls.astype(int).tolist(),
                                   0.0, float(iou_threshold), top_k=int(top_k))
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    return keep[np.argsort(-scores[keep], kind="stable")]


def postprocess(output: np.ndarray, layout: str, lb: Letterbox, filters: Filters,
                names: tuple[str, ...]) -> list[Box]:
    """Returns the final boxes in source-image pixels: decode, class filter, NMS, max detections."""
    xyxy, scores, cls = decode(output, layout, filters.score_threshold)
    valid = (cls >= 0) & (cls < len(names))
    xyxy, scores, cls = xyxy[valid], scores[valid], cls[valid]
    allowed = allowed_classes(filters, names)
    if allowed is not None:
        keep = allowed[cls]
        xyxy, scores, cls = xyxy[keep], scores[keep], cls[keep]
    if layout == "end2end":   # NMS ran inside the model
        order = np.argsort(-scores, kind="stable")
    else:
        order = nms(xyxy, scores, cls, filters.nms_threshold)
    order = order[:filters.max_detections]
    xyxy = unletterbox(xyxy[order], lb)
    return [Box(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(s), int(c), names[c])
            for b, s, c in zip(xyxy, scores[order], cls[order])]
