"""Detector backends behind one interface (no ROS): make_detector(cfg).detect(rgb) -> [Box].

  onnxruntime  the bundled SSD MobileNet-v2 COCO (the default: 80 classes, nothing downloaded) or
               YOLO-family ONNX models (YOLOv5/v8/v11/end-to-end layouts), CPU or CUDA, FP32/FP16
  tensorrt     the same ONNX models as cached TensorRT engines, GPU or DLA (Jetson), FP16/INT8
  opencv_dnn   the same SSD from its installed TensorFlow graph through OpenCV DNN (CPU)
  opencv_hog   OpenCV's bundled HOG people detector (the fallback when the SSD cannot load)
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from muon_ad_ros.detect.base import (BACKENDS, BackendUnavailable, Box, Detector, DetectorConfig, Filters,
                                     ModelError)

__all__ = ["BACKENDS", "Box", "Detector", "DetectorConfig", "Filters", "ModelError", "BackendUnavailable",
           "make_detector"]


def make_detector(cfg: DetectorConfig, log: Callable[[str], None] = print) -> Detector:
    """Returns the detector `cfg` selects. When TensorRT or its GPU is absent, the same ONNX model
    runs on onnxruntime instead, with the reason in `detector.fallback`; a bad model file raises
    ModelError naming it. An empty model_path means the bundled COCO SSD (onnxruntime, tensorrt)."""
    if cfg.backend == "opencv_hog":
        from muon_ad_ros.detect.hog import HogPeopleDetector
        return HogPeopleDetector(cfg)
    if cfg.backend == "opencv_dnn":
        from muon_ad_ros.detect.opencv_dnn import OpenCvSsdDetector
        return OpenCvSsdDetector(cfg)
    if cfg.backend == "onnxruntime":
        from muon_ad_ros.detect.yolo_ort import OnnxYoloDetector
        return OnnxYoloDetector(cfg)
    if cfg.backend == "tensorrt":
        from muon_ad_ros.detect.yolo_ort import OnnxYoloDetector
        from muon_ad_ros.detect.yolo_trt import TrtYoloDetector
        from muon_ad_ros.runtime.tensorrt_engine import TensorRTUnavailable
        try:
            return TrtYoloDetector(cfg, log)
        except TensorRTUnavailable as exc:
            if cfg.model_path and not cfg.model_path.lower().endswith(".onnx"):
                raise ModelError(f"{cfg.model_path} is a TensorRT plan and TensorRT cannot run here ({exc}); "
                                 "give the ONNX model to fall back to onnxruntime") from exc
            precision = cfg.precision if cfg.precision in ("auto", "fp32", "fp16") else "auto"
            detector = OnnxYoloDetector(replace(cfg, backend="onnxruntime", precision=precision, dla_core=-1))
            detector.fallback = f"tensorrt unavailable: {exc}; running onnxruntime on {detector.device}"
            log(f"WARN: {detector.fallback}")
            return detector
    raise ValueError(f"unknown detector backend {cfg.backend!r}; known: {BACKENDS}")
