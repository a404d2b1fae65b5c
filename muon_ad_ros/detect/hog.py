"""OpenCV's pretrained HOG + linear SVM people detector (Dalal & Triggs): bundled with OpenCV, so
the package detects people with zero downloads. OpenCV 5 ships it only in the contrib build
(opencv-contrib-python-headless); OpenCV 4 has it in the main build."""
from __future__ import annotations

import math

import cv2
import numpy as np

from muon_ad_ros.detect.base import Box, Detector, DetectorConfig, ModelError, allowed_classes, score_thresholds
from muon_ad_ros.detect.boxes import nms

# Speed at 640x480 (measured in detect/bench.py): a pyramid step of 1.1 instead of OpenCV's 1.05
# halves the number of levels at about the same recall on the bundled photos; an 8-pixel stride
# (one HOG cell) keeps recall on upright people; 8 pixels of padding find people at the border.
WIN_STRIDE = (8, 8)
PADDING = (8, 8)
PYRAMID_SCALE = 1.1
GROUP_THRESHOLD = 2    # OpenCV groups overlapping hits; a hit needs 2+ neighbours (fewer false positives)
NAMES = ("person",)    # class 0, as in COCO, so filters and labels match YOLO models


def margin_to_score(margin: np.ndarray) -> np.ndarray:
    """Returns scores in (0, 1) from SVM margins: the logistic function, so margin 0 (the SVM's own
    decision boundary) is score 0.5."""
    return 1.0 / (1.0 + np.exp(-np.asarray(margin, dtype=np.float64)))


def score_to_margin(score: float) -> float:
    """Returns the SVM margin whose score is `score` (the inverse of margin_to_score)."""
    score = min(max(score, 1e-6), 1 - 1e-6)
    return math.log(score / (1 - score))


class HogPeopleDetector(Detector):
    """OpenCV's default people detector; input_size scales the image's longer side before the scan
    (larger finds smaller people, smaller is faster)."""

    name = "opencv_hog"
    class_names = NAMES

    def __init__(self, cfg: DetectorConfig):
        super().__init__(cfg.filters)
        if not hasattr(cv2, "HOGDescriptor"):
            raise ModelError(f"OpenCV {cv2.__version__} at {cv2.__file__} has no HOGDescriptor: OpenCV 5 moved "
                             "it to the contrib build; install opencv-contrib-python-headless")
        if cfg.precision not in ("auto", "fp32"):
            raise ModelError(f"opencv_hog computes in fp32 only; precision {cfg.precision} cannot apply")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.input_size = cfg.input_size
        self.model = "cv2.HOGDescriptor_getDefaultPeopleDetector"
        cv2.setNumThreads(cfg.threads or -1)   # process-wide in OpenCV; -1 restores its default

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Returns the people found in an HxWx3 uint8 RGB image."""
        filters = self.filters
        allowed = allowed_classes(filters, NAMES)
        if allowed is not None and not allowed[0]:
            return []
        h, w = rgb.shape[:2]
        scale = self.input_size / max(h, w) if self.input_size else 1.0
        image = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)),
                                                     interpolation=cv2.INTER_LINEAR)
        if min(image.shape[:2]) < 128:   # smaller than one 64x128 window at any pyramid level
            return []
        # Thresholds above 0.5 filter the grouped detections afterwards: raising the SVM's own hit
        # threshold instead would thin the raw hits that grouping needs and lose confident people.
        margin = score_to_margin(float(score_thresholds(filters, NAMES)[0]))
        rects, margins = self.hog.detectMultiScale(
            image, hitThreshold=min(margin, 0.0), winStride=WIN_STRIDE, padding=PADDING, scale=PYRAMID_SCALE,
            groupThreshold=GROUP_THRESHOLD)
        margins = np.asarray(margins, dtype=np.float64).reshape(-1)
        keep = margins >= margin
        if not keep.any():
            return []
        xywh = np.asarray(rects, dtype=np.float32).reshape(-1, 4)[keep] / scale
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h)
        scores = margin_to_score(margins[keep]).astype(np.float32)
        keep = nms(xyxy, scores, np.zeros(len(scores), np.int64), filters.nms_threshold)
        keep = keep[:filters.max_detections]
        return [Box(*map(float, xyxy[i]), float(scores[i]), 0, NAMES[0]) for i in keep]
