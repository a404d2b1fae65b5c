"""Preprocessing and the decoding of detector outputs into boxes, shared by the onnxruntime and
TensorRT backends (selection and NMS by every backend). Four output layouts:

  yolov5   (1, N, 5+C)  rows [cx, cy, w, h, objectness, C class scores]   (YOLOv5/v7, YOLOX-style)
  yolov8   (1, 4+C, N)  columns [cx, cy, w, h, C class scores], no objectness (YOLOv8/v9/v11)
  end2end  (1, N, 6)    rows [x1, y1, x2, y2, score, class], NMS inside the model (YOLOv10/26,
                        Ultralytics nms=True exports)
  ssd      two outputs: boxes (1, N, 4) [x1, y1, x2, y2] in 0..1 and scores (1, N, C) per class
                        (the bundled SSD MobileNet-v2 COCO, tools/ssd_onnx.py)

YOLO models take the frame letterboxed (aspect kept, grey padding) and scaled to 0..1, with
coordinates in network-input pixels that unletterbox() maps back to the camera image; SSD takes it
resized to the input (aspect not kept, as it was trained) in 0..255, with coordinates relative to it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from muon_ad_ros.detect.base import Box, Filters, ModelError, allowed_classes, score_floor, score_thresholds

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


def resolve_outputs(shapes: list[tuple], requested: str = "auto", end2end_hint: bool | None = None
                    ) -> tuple[str, int]:
    """Returns (layout, class count; 0 = unknown) of a model's output shapes; raises ModelError for
    outputs no supported layout has."""
    if len(shapes) == 2 or requested == "ssd":
        box, score = (list(s) for s in (shapes + [()])[:2])
        if len(box) != 3 or len(score) != 3 or box[2] != 4 or box[1] != score[1] or requested not in ("auto", "ssd"):
            raise ModelError(f"detector outputs have shapes {[list(s) for s in shapes]}; two outputs must be ssd "
                             "boxes (1, N, 4) and scores (1, N, C)")
        return "ssd", int(score[2])
    layout = resolve_layout(shapes[0], requested, end2end_hint)
    return layout, num_classes(shapes[0], layout)


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


def select(xyxy: np.ndarray, scores: np.ndarray, cls: np.ndarray, filters: Filters, names: tuple[str, ...],
           per_class_nms: bool = True) -> np.ndarray:
    """Returns the indices of the candidates to publish, best first: known classes kept by class_filter
    and above their class's threshold, then per-class NMS (unless the model ran it), the class-agnostic
    suppression of one object's boxes under several labels, and max_detections."""
    keep = (cls >= 0) & (cls < len(names))
    keep[keep] = scores[keep] > score_thresholds(filters, names)[cls[keep]]
    allowed = allowed_classes(filters, names)
    if allowed is not None:
        keep[keep] = allowed[cls[keep]]
    idx = np.flatnonzero(keep)
    if per_class_nms:
        idx = idx[nms(xyxy[idx], scores[idx], cls[idx], filters.nms_threshold)]
    else:
        idx = idx[np.argsort(-scores[idx], kind="stable")]
    if filters.agnostic_nms_threshold < 1.0 and len(idx) > 1:
        idx = idx[across_classes(xyxy[idx], cls[idx], filters.agnostic_nms_threshold)]
    return idx[:filters.max_detections]


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Returns the IoU of one (4,) xyxy box with each of (N, 4) boxes."""
    wh = np.clip(np.minimum(box[2:], others[:, 2:]) - np.maximum(box[:2], others[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(box) + area(others) - inter, 1e-12)


def across_classes(xyxy: np.ndarray, cls: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Returns the positions (in the given best-first order) of the boxes that no better box of another
    class overlaps by more than iou_threshold: one object keeps one label. Boxes of one class are left
    to the per-class NMS (or the model's own, end-to-end)."""
    kept: list[int] = []
    for i in range(len(cls)):
        if kept:
            k = np.asarray(kept)
            other = cls[k] != cls[i]
            if other.any() and (iou(xyxy[i], xyxy[k[other]]) > iou_threshold).any():
                continue
        kept.append(i)
    return np.asarray(kept, np.int64)


def to_boxes(xyxy: np.ndarray, scores: np.ndarray, cls: np.ndarray, names: tuple[str, ...]) -> list[Box]:
    """Returns Box objects of (N, 4) pixel boxes, their scores and class indices."""
    return [Box(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(s), int(c), names[c])
            for b, s, c in zip(xyxy, scores, cls)]


def postprocess(output: np.ndarray, layout: str, lb: Letterbox, filters: Filters,
                names: tuple[str, ...]) -> list[Box]:
    """Returns the final boxes of a YOLO output in source-image pixels: decode, then select()."""
    xyxy, scores, cls = decode(output, layout, score_floor(filters))
    order = select(xyxy, scores, cls, filters, names, per_class_nms=layout != "end2end")
    return to_boxes(unletterbox(xyxy[order], lb), scores[order], cls[order], names)


def ssd_candidates(boxes: np.ndarray, scores: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (xyxy (M,4) in 0..1, scores (M,), class ids (M,)): every (anchor, class) pair of an ssd
    output above `floor`. An anchor may give several classes, as in the network's own post-processing;
    select() sorts them out."""
    anchor, cls = np.nonzero(scores[0] > floor)
    return boxes[0][anchor], scores[0][anchor, cls].astype(np.float32), cls.astype(np.int64)


def ssd_postprocess(boxes: np.ndarray, scores: np.ndarray, size: tuple[int, int], filters: Filters,
                    names: tuple[str, ...]) -> list[Box]:
    """Returns the final boxes of an ssd output in pixels of an image of size (w, h)."""
    xyxy, sc, cls = ssd_candidates(np.asarray(boxes, np.float32), np.asarray(scores, np.float32),
                                   score_floor(filters))
    order = select(xyxy, sc, cls, filters, names)
    return to_boxes(scale_boxes(xyxy[order], size), sc[order], cls[order], names)


def scale_boxes(xyxy01: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Returns (N, 4) boxes in 0..1 scaled to pixels of an image of size (w, h), clipped to it."""
    w, h = size
    return np.clip(xyxy01, 0.0, 1.0) * np.float32([w, h, w, h])


def ssd_input(rgb: np.ndarray, size: tuple[int, int], canvas: np.ndarray, blob: np.ndarray) -> None:
    """Fills blob (1, 3, H, W) with the frame resized to size=(h, w), RGB in 0..255 (the ssd layout)."""
    cv2.resize(rgb, (size[1], size[0]), dst=canvas, interpolation=cv2.INTER_LINEAR)
    np.copyto(blob[0], canvas.transpose(2, 0, 1), casting="unsafe")


class ModelIO:
    """A detector model's per-frame input and output handling, for its layout: reused input buffers,
    the frame in (letterboxed YOLO or resized SSD), boxes in camera pixels out."""

    def __init__(self, layout: str, size: tuple[int, int], dtype, names: tuple[str, ...]):
        self.layout, self.size, self.names = layout, size, names
        self.canvas = np.empty((*size, 3), np.uint8)
        self.blob = np.zeros((1, 3, *size), dtype)

    def fill(self, rgb: np.ndarray):
        """Writes the frame into self.blob; returns what finish() needs to map boxes back."""
        if self.layout == "ssd":
            ssd_input(rgb, self.size, self.canvas, self.blob)
            return rgb.shape[1], rgb.shape[0]
        canvas, lb = letterbox(rgb, self.size, self.canvas)
        np.multiply(canvas.transpose(2, 0, 1), np.float32(1 / 255), out=self.blob[0], casting="unsafe")
        return lb

    def finish(self, outputs: list[np.ndarray], mapping, filters: Filters) -> list[Box]:
        """Returns the boxes of the model's outputs (in output order) for the frame fill() mapped."""
        if self.layout == "ssd":
            return ssd_postprocess(outputs[0], outputs[1], mapping, filters, self.names)
        return postprocess(outputs[0], self.layout, mapping, filters, self.names)
