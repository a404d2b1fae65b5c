"""The detection node's parameter cross-checks (no ROS needed): impossible combinations are
rejected with a reason that names them."""
import pytest

from muon_ad_ros.params import validate_all


@pytest.mark.parametrize("values, reason", [
    ({"backend": "opencv_hog", "precision": "fp16"}, "opencv_hog computes in fp32 only"),
    ({"backend": "opencv_dnn", "precision": "fp16"}, "opencv_dnn computes in fp32 only"),
    ({"backend": "opencv_dnn", "input_size": 320}, "fixed 300x300 input"),
    ({"class_thresholds": ["person"]}, "is not 'class:score'"),
    ({"class_thresholds": ["person:1.5"]}, "is not 'class:score'"),
    ({"class_thresholds": [":0.5"]}, "is not 'class:score'"),
    ({"agnostic_nms_threshold": 1.1}, "above the maximum"),
    ({"backend": "onnxruntime", "model_path": "/m/yolo.engine"}, "needs an .onnx model_path"),
    ({"backend": "tensorrt", "model_path": "/m/yolo.pt"}, "needs an .onnx, .engine or .plan"),
    ({"backend": "onnxruntime", "model_path": "/m/y.onnx", "precision": "int8"}, "int8 needs backend tensorrt"),
    ({"backend": "tensorrt", "model_path": "/m/y.onnx", "precision": "int8"}, "needs calibration_dir"),
    ({"backend": "tensorrt", "precision": "int8"}, "needs calibration_dir"),      # the bundled SSD's ONNX
    ({"backend": "opencv_dnn", "precision": "int8"}, "computes in fp32 only"),
    ({"backend": "onnxruntime", "model_path": "/m/y.onnx", "dla_core": 0}, "dla_core needs backend tensorrt"),
    ({"backend": "tensorrt", "model_path": "/m/y.onnx", "dla_core": 0, "precision": "fp32"}, "fp16 or int8 only"),
    ({"backend": "onnxruntime", "model_path": "/m/y.onnx", "input_size": 600}, "not a multiple of 32"),
    ({"backend": "opencv_hog", "input_size": 64}, "below 128"),
    ({"input_size": 100}, "not a multiple of 32"),
    ({"backend": "yolo"}, "not one of"),
    ({"score_threshold": -0.1}, "below the minimum"),
])
def test_inconsistent_values_are_rejected_with_a_reason(values, reason):
    assert reason in (validate_all("detection", values) or "")


@pytest.mark.parametrize("values", [
    {},
    {"class_filter": ["person", "car"], "class_thresholds": ["person:0.4", "2:0.6", ""]},
    {"backend": "tensorrt"},
    {"precision": "int8"},                                   # onnxruntime's bundled SSD, quantized
    {"backend": "opencv_dnn", "input_size": 300},
    {"backend": "opencv_hog", "input_size": 960, "class_filter": ["person"]},
    {"backend": "onnxruntime", "model_path": "/m/y.onnx", "precision": "fp16", "input_size": 640},
    {"backend": "tensorrt", "model_path": "/m/y.onnx", "precision": "int8", "calibration_dir": "/c", "dla_core": 0},
    {"backend": "tensorrt", "model_path": "/m/y.engine", "precision": "int8"},
])
def test_consistent_values_pass(values):
    assert validate_all("detection", values) is None
