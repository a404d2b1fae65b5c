"""Class names of a detector: from the model's metadata (Ultralytics stores `names`), a labels file
(one name per line), or the 80 COCO classes most YOLO exports are trained on."""
from __future__ import annotations

import ast
import os

from muon_ad_ros.detect.base import ModelError

COCO = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)


def names_from_metadata(metadata: dict[str, str]) -> tuple[str, ...] | None:
    """Returns the class names an exporter stored in ONNX metadata (`names`: a dict or list literal)."""
    text = metadata.get("names")
    if not text:
        return None
    try:
        value = ast.literal_eval(text)   # literal_eval: metadata is data, never code
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, dict) and all(isinstance(k, int) for k in value):
        return tuple(str(value[k]) for k in sorted(value))
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return None


def read_labels(path: str) -> tuple[str, ...]:
    """Returns the non-empty lines of a labels file; raises ModelError naming a missing/empty file."""
    full = os.path.abspath(os.path.expanduser(path))
    try:
        with open(full, encoding="utf-8") as f:
            names = tuple(line.strip() for line in f if line.strip())
    except OSError as exc:
        raise ModelError(f"labels file {full} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ModelError(f"labels file {full} is not UTF-8 text") from exc
    if not names:
        raise ModelError(f"labels file {full} holds no class names")
    return names


def class_names(count: int, metadata: dict[str, str], labels_path: str, model: str) -> tuple[str, ...]:
    """Returns `count` class names (count 0 = not known from the output shape); raises ModelError
    when a labels file or the metadata disagrees with the model's class count."""
    if labels_path:
        names, source = read_labels(labels_path), f"labels file {os.path.abspath(labels_path)}"
    else:
        names, source = names_from_metadata(metadata), f"metadata of {model}"
    if names is None:
        if count in (0, len(COCO)):
            return COCO
        return tuple(f"class_{i}" for i in range(count))
    if count and len(names) != count:
        raise ModelError(f"{source} names {len(names)} classes but {model} outputs {count}")
    return names
