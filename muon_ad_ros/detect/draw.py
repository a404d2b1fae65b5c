"""Drawing detections onto an image for the annotated output topic."""
from __future__ import annotations

import cv2
import numpy as np

from muon_ad_ros.detect.base import Box


def class_color(class_id: int) -> tuple[int, int, int]:
    """Returns a stable, saturated RGB colour for a class id."""
    hue = (class_id * 47) % 180          # 47 is coprime with 180: neighbouring ids get distant hues
    rgb = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(int(c) for c in rgb)


def annotate(rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """Returns a copy of the RGB image with each box, its class name and score drawn on it."""
    out = np.array(rgb, copy=True, order="C")
    thick = max(1, round(max(out.shape[:2]) / 320))
    for b in boxes:
        color = class_color(b.class_id)
        p1, p2 = (int(b.x_min), int(b.y_min)), (int(b.x_max), int(b.y_max))
        cv2.rectangle(out, p1, p2, color, thick)
        label = f"{b.class_name} {b.score:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        y = max(p1[1], th + base)
        cv2.rectangle(out, (p1[0], y - th - base), (p1[0] + tw, y), color, -1)
        cv2.putText(out, label, (p1[0], y - base), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out
