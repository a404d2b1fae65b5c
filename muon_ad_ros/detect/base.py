"""What every detector backend shares: the box type, the configuration, the post-processing filters
and the interface the detection node calls (no ROS)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from muon_ad_ros.errors import BackendUnavailable, ModelError  # noqa: F401  (raised by every detector)

BACKENDS = ("onnxruntime", "tensorrt", "opencv_dnn", "opencv_hog")
LAYOUTS = ("auto", "yolov5", "yolov8", "end2end", "ssd")
PRECISIONS = ("auto", "fp32", "fp16", "int8")


@dataclass(frozen=True)
class Box:
    """One detection in pixel coordinates of the image given to detect()."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    score: float
    class_id: int
    class_name: str


@dataclass(frozen=True)
class Filters:
    """Post-processing settings that change without reloading a model."""

    score_threshold: float = 0.5
    nms_threshold: float = 0.45
    class_filter: tuple[str, ...] = ()     # class names or integer ids; empty = every class
    max_detections: int = 100
    class_thresholds: tuple[tuple[str, float], ...] = ()   # (class name or id, score) beside score_threshold
    # Boxes of different classes overlapping more than this are one object (SSD gives one car two boxes,
    # car and truck): the lower-scored one goes. 1.0 keeps both.
    agnostic_nms_threshold: float = 0.7


@dataclass(frozen=True)
class DetectorConfig:
    """Everything that selects and loads a detector; a change of any field but `filters` means a reload."""

    backend: str = "onnxruntime"
    model_path: str = ""                   # "" = the bundled COCO SSD (onnxruntime, tensorrt, opencv_dnn)
    labels_path: str = ""
    output_layout: str = "auto"
    input_size: int = 0                    # 0 = the model's own (HOG: the image's own) size
    precision: str = "auto"
    device: str = "auto"                   # auto | cpu | gpu (onnxruntime)
    dla_core: int = -1                     # -1 = GPU only (tensorrt)
    calibration_dir: str = ""              # INT8 calibration images (tensorrt)
    engine_cache_dir: str = ""             # "" = ~/.cache/muon_ad_ros/engines
    threads: int = 0                       # intra-op threads; 0 = the library's default
    filters: Filters = field(default_factory=Filters)


class Detector:
    """The interface of every backend: detect(rgb) plus what actually runs, for diagnostics."""

    name = "detector"
    precision = "fp32"                     # what runs, not what was asked for
    device = "CPU"                         # CPU | GPU | DLA<n>
    fallback = ""                          # why something runs elsewhere than asked ("" = as asked)
    fallback_layers: tuple[str, ...] = ()  # layers that left the DLA for the GPU
    model = ""
    class_names: tuple[str, ...] = ()

    def __init__(self, filters: Filters = Filters()):
        self.filters = filters             # swapped whole by the node; read once per frame

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Returns the detections in an HxWx3 uint8 RGB image."""
        raise NotImplementedError

    def unknown_classes(self) -> list[str]:
        """Returns the class_filter and class_thresholds entries that name no class of this model."""
        entries = [*self.filters.class_filter, *(c for c, _ in self.filters.class_thresholds)]
        return [c for c in entries if class_ids(c, self.class_names) is None]

    def close(self) -> None:
        """Releases what runs inference (an ONNX Runtime session, a TensorRT engine and its context);
        the detector is unusable afterwards."""
        for attr in ("session", "context", "engine", "runner"):
            if attr in self.__dict__:
                setattr(self, attr, None)

    def describe(self) -> str:
        """Returns a one-line summary of what runs (backend, precision, device, fallback)."""
        text = f"{self.name} {self.precision} on {self.device}"
        return f"{text} ({self.fallback})" if self.fallback else text


def class_ids(entry: str, names: tuple[str, ...]) -> int | None:
    """Returns the class id a class_filter entry (a name or an integer id) selects, or None."""
    entry = entry.strip()
    if entry.lstrip("-").isdigit():
        i = int(entry)
        return i if 0 <= i < len(names) else None
    return names.index(entry) if entry in names else None


def allowed_classes(filters: Filters, names: tuple[str, ...]) -> np.ndarray | None:
    """Returns the boolean mask of classes kept by the filter, or None when every class is kept."""
    if not filters.class_filter:
        return None
    keep = np.zeros(len(names), dtype=bool)
    for entry in filters.class_filter:
        i = class_ids(entry, names)
        if i is not None:
            keep[i] = True
    return keep


def score_thresholds(filters: Filters, names: tuple[str, ...]) -> np.ndarray:
    """Returns the per-class minimum scores: score_threshold, replaced by class_thresholds' entries."""
    out = np.full(len(names), filters.score_threshold, np.float32)
    for entry, score in filters.class_thresholds:
        i = class_ids(entry, names)
        if i is not None:
            out[i] = score
    return out


def score_floor(filters: Filters) -> float:
    """Returns the lowest score any class keeps (the pre-filter before per-class thresholds)."""
    return float(min([filters.score_threshold, *(score for _, score in filters.class_thresholds)]))


def check_model_file(path: str, suffixes: tuple[str, ...]) -> str:
    """Returns the absolute path of a readable, non-empty model file; raises ModelError naming it."""
    if not path:
        raise ModelError(f"no model file given (model_path is empty); expected {'/'.join(suffixes)}")
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(full):
        raise ModelError(f"model file {full} does not exist or is not a regular file")
    if not full.lower().endswith(suffixes):
        raise ModelError(f"model file {full} does not end in {' or '.join(suffixes)}")
    if os.path.getsize(full) == 0:
        raise ModelError(f"model file {full} is empty")
    return full
