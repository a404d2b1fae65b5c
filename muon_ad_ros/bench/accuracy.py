"""Detection accuracy on the hand-labelled frames of muon_ad_ros/data/coco_eval.json: precision and recall
per class at IoU 0.5, for `muon-ad bench detect`. The frames are read from the packages the project
already installs (Debian's opencv-doc sample data and video, scikit-image's sample data); nothing is
copied or downloaded. How the boxes were placed: data/SOURCES.md."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from muon_ad_ros.detect.base import Box
from muon_ad_ros.detect.boxes import iou
from muon_ad_ros.train.data import OPENCV_DATA, load_image, skimage_path

LABELS = Path(__file__).resolve().parent.parent / "data" / "coco_eval.json"
IOU = 0.5
IGNORED_AREA = 0.5   # an unmatched detection with this much of its area in an ignore region counts neither way


@dataclass
class Frame:
    name: str
    rgb: np.ndarray
    objects: list[dict]              # {"class", "box", "also"?}
    ignore: list[list[float]] = field(default_factory=list)


def video_frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """Returns {index: RGB frame} of the wanted frame indices of a video, read in order."""
    cap, out, i = cv2.VideoCapture(str(path)), {}, 0
    try:
        while len(out) < len(wanted):
            ok, bgr = cap.read()
            if not ok:
                break
            if i in wanted:
                out[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()
    missing = wanted - set(out)
    if missing:
        raise FileNotFoundError(f"{path} has no frames {sorted(missing)} (is Debian's opencv-doc installed?)")
    return out


def labelled_frames(labels: Path = LABELS) -> list[Frame]:
    """Returns the labelled frames with their images, in the labels file's order."""
    spec = json.loads(labels.read_text())["frames"]
    videos: dict[str, set[int]] = {}
    for f in spec:
        if "frame" in f["source"]:
            videos.setdefault(f["source"]["opencv_doc"], set()).add(f["source"]["frame"])
    decoded = {name: video_frames(OPENCV_DATA / name, idx) for name, idx in videos.items()}
    out = []
    for f in spec:
        src = f["source"]
        if "frame" in src:
            rgb = decoded[src["opencv_doc"]][src["frame"]]
        elif "skimage" in src:
            rgb = load_image(skimage_path(src["skimage"]))
        else:
            rgb = load_image(OPENCV_DATA / src["opencv_doc"])
        out.append(Frame(f["name"], np.ascontiguousarray(rgb), f["objects"], f.get("ignore", [])))
    return out


def match(boxes: list[Box], frame: Frame, iou_threshold: float = IOU) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Returns ({class: [true positives, false positives]}, {class: labelled objects}) of one frame's
    detections: best score first, each takes the unmatched labelled object of its class (or an `also`
    name) it overlaps most at IoU >= iou_threshold; an unmatched one mostly inside an ignore region counts
    neither way."""
    counts: dict[str, list[int]] = {}
    labelled: dict[str, int] = {}
    for o in frame.objects:
        labelled[o["class"]] = labelled.get(o["class"], 0) + 1
    gt = np.asarray([o["box"] for o in frame.objects], np.float32).reshape(-1, 4)
    ignore = np.asarray(frame.ignore, np.float32).reshape(-1, 4)
    taken = np.zeros(len(gt), bool)
    for b in sorted(boxes, key=lambda b: -b.score):
        det = np.float32([b.x_min, b.y_min, b.x_max, b.y_max])
        same = np.asarray([o["class"] == b.class_name or b.class_name in o.get("also", ()) for o in frame.objects],
                          bool)
        overlaps = iou(det, gt) if len(gt) else np.zeros(0)
        free = np.flatnonzero(same & ~taken & (overlaps >= iou_threshold))
        if len(free):
            best = free[np.argmax(overlaps[free])]
            taken[best] = True
            counts.setdefault(frame.objects[best]["class"], [0, 0])[0] += 1
            continue
        if len(ignore) and inside(det, ignore) >= IGNORED_AREA:
            continue
        counts.setdefault(b.class_name, [0, 0])[1] += 1
    return counts, labelled


def inside(box: np.ndarray, regions: np.ndarray) -> float:
    """Returns the largest fraction of the box's area inside one of the regions."""
    wh = np.clip(np.minimum(box[2:], regions[:, 2:]) - np.maximum(box[:2], regions[:, :2]), 0, None)
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-9)
    return float((wh[:, 0] * wh[:, 1]).max() / area)


def evaluate(detections: list[list[Box]], frames: list[Frame], iou_threshold: float = IOU) -> dict:
    """Returns {"classes": {name: {labelled, tp, fp, precision, recall}}, "all": {...}, "frames"} of the
    detections of each frame (in the frames' order); classes are those labelled plus those detected."""
    tp: dict[str, int] = {}
    fp: dict[str, int] = {}
    labelled: dict[str, int] = {}
    for boxes, f in zip(detections, frames, strict=True):
        counts, n = match(boxes, f, iou_threshold)
        for c, k in n.items():
            labelled[c] = labelled.get(c, 0) + k
        for c, (t, p) in counts.items():
            tp[c], fp[c] = tp.get(c, 0) + t, fp.get(c, 0) + p
    out = {c: summary(labelled.get(c, 0), tp.get(c, 0), fp.get(c, 0)) for c in sorted(set(labelled) | set(tp) | set(fp))}
    total = summary(sum(labelled.values()), sum(tp.values()), sum(fp.values()))
    return {"classes": out, "all": total, "frames": len(frames)}


def summary(labelled: int, tp: int, fp: int) -> dict:
    return {"labelled": labelled, "tp": tp, "fp": fp,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / labelled, 3) if labelled else None}
