"""TensorRT backend: calibration preprocessing and CPU fallback run everywhere (the shared builder's
cache key is tested in test/runtime/test_tensorrt_engine.py); building and running an engine needs an
NVIDIA GPU with TensorRT and is skipped elsewhere."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from muon_ad_ros.detect import DetectorConfig, ModelError, make_detector
from muon_ad_ros.detect.synthetic import conv_yolo_model, fixed_output_model
from muon_ad_ros.detect.yolo_trt import letterboxed, onnx_io, ssd_resized
from muon_ad_ros.runtime import tensorrt_engine as te


DATA = Path(__file__).resolve().parents[2] / "muon_ad_ros" / "data"


def _gpu_and_tensorrt() -> bool:
    if importlib.util.find_spec("tensorrt") is None:
        return False
    import torch
    return torch.cuda.is_available()


needs_gpu = pytest.mark.skipif(not _gpu_and_tensorrt(), reason="no NVIDIA GPU / TensorRT on this machine")


@pytest.fixture
def model(tmp_path):
    out = np.zeros((1, 6, 8), np.float32)
    out[0, :, 0] = [20, 32, 10, 16, 0.9, 0.1]
    return fixed_output_model(str(tmp_path / "tiny.onnx"), out)


@pytest.mark.skipif(_gpu_and_tensorrt(), reason="this machine has TensorRT and a GPU: no fallback happens")
def test_tensorrt_without_gpu_falls_back_to_onnxruntime_with_the_reason(model):
    logged = []
    det = make_detector(DetectorConfig(backend="tensorrt", model_path=model, dla_core=0, precision="fp16"),
                        log=logged.append)
    assert det.name == "onnxruntime" and det.device == "CPU"
    assert det.fallback.startswith("tensorrt unavailable") and logged and "WARN" in logged[0]
    assert [round(b.score, 2) for b in det.detect(np.zeros((64, 64, 3), np.uint8))] == [0.9]


@pytest.mark.skipif(_gpu_and_tensorrt(), reason="this machine has TensorRT and a GPU")
def test_prebuilt_plan_without_tensorrt_is_a_clear_error(tmp_path):
    plan = tmp_path / "yolo.engine"
    plan.write_bytes(b"not really a plan")
    with pytest.raises(ModelError, match=r"yolo\.engine is a TensorRT plan and TensorRT cannot run here"):
        make_detector(DetectorConfig(backend="tensorrt", model_path=str(plan)))


def test_calibration_images_are_letterboxed_like_camera_frames(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((48, 64, 3), 200, np.uint8))
    batches, _ = te.calibration_source(str(tmp_path), (64, 64), letterboxed)
    [batch] = list(batches())
    assert batch.shape == (1, 3, 64, 64) and batch.dtype == np.float32
    assert batch[0, :, 0, 0] == pytest.approx(114 / 255) and batch[0, :, 32, 32] == pytest.approx(200 / 255)


@pytest.mark.skipif(_gpu_and_tensorrt(), reason="this machine has TensorRT and a GPU: no fallback happens")
def test_tensorrt_without_a_model_path_runs_the_bundled_coco_ssd_on_onnxruntime_here():
    det = make_detector(DetectorConfig(backend="tensorrt"), log=lambda m: None)
    assert (det.name, det.layout, det.model.endswith("ssd_mobilenet_v2_coco_int8.onnx")) == ("onnxruntime", "ssd", True)
    assert det.fallback.startswith("tensorrt unavailable")


def test_the_bundled_ssd_is_built_from_its_onnx_and_calibrated_with_its_own_preprocessing(tmp_path):
    from muon_ad_ros.detect.coco import SSD_ONNX
    name, shape, _, outputs = onnx_io(str(SSD_ONNX))
    assert (name, shape, outputs) == ("image", [1, 3, 300, 300], 2)
    cv2.imwrite(str(tmp_path / "a.png"), np.full((48, 64, 3), 200, np.uint8))
    batches, ssd_id = te.calibration_source(str(tmp_path), (300, 300), ssd_resized)
    [batch] = list(batches())
    assert batch.shape == (1, 3, 300, 300) and batch.min() == batch.max() == 200   # resized, 0..255, no padding
    assert ssd_id != te.calibration_source(str(tmp_path), (300, 300), letterboxed)[1]


def test_int8_without_calibration_images_names_the_folder(tmp_path, model):
    with pytest.raises(ModelError, match=f"{tmp_path} holds no"):
        make_detector(DetectorConfig(backend="tensorrt", model_path=model, precision="int8",
                                     calibration_dir=str(tmp_path)))


@needs_gpu
def test_engine_is_built_once_then_loaded_from_the_cache_and_matches_onnxruntime(tmp_path):
    onnx_path = str(tmp_path / "yolo.onnx")
    conv_yolo_model(onnx_path, size=320, classes=4, widths=(8, 16, 32, 64, 64), repeats=1)
    cfg = DetectorConfig(backend="tensorrt", model_path=onnx_path, precision="fp32",
                         engine_cache_dir=str(tmp_path / "cache"))
    first = make_detector(cfg)
    assert first.name == "tensorrt" and first.report.built
    second = make_detector(cfg)
    assert not second.report.built and second.report.key == first.report.key
    fp16 = make_detector(cfg.__class__(**{**cfg.__dict__, "precision": "fp16"}))
    assert fp16.report.built and fp16.report.key != first.report.key and fp16.precision == "fp16"
    image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    ort = make_detector(cfg.__class__(**{**cfg.__dict__, "backend": "onnxruntime"}))
    assert [b.class_id for b in first.detect(image)] == [b.class_id for b in ort.detect(image)]


@needs_gpu
def test_dla_build_reports_layers_that_fell_back(tmp_path):
    import tensorrt as trt
    if trt.Builder(trt.Logger()).num_DLA_cores == 0:
        pytest.skip("this GPU has no DLA core")
    onnx_path = str(tmp_path / "yolo.onnx")
    conv_yolo_model(onnx_path, size=320, classes=4, widths=(8, 16, 32, 64, 64), repeats=1)
    det = make_detector(DetectorConfig(backend="tensorrt", model_path=onnx_path, precision="fp16", dla_core=0,
                                       engine_cache_dir=str(tmp_path / "cache")))
    assert det.device == "DLA0" and det.report.dla_layers
    # Reshape/Concat of the head are not DLA layers: they must be reported, not hidden.
    assert det.fallback_layers and det.fallback


@needs_gpu
def test_bundled_coco_ssd_engine_matches_onnxruntime(tmp_path):
    image = cv2.cvtColor(cv2.imread(str(DATA / "street_600.jpg")), cv2.COLOR_BGR2RGB)
    trt_det = make_detector(DetectorConfig(backend="tensorrt", precision="fp16", engine_cache_dir=str(tmp_path)))
    ort_det = make_detector(DetectorConfig(backend="onnxruntime", device="cpu", precision="fp32"))
    assert trt_det.name == "tensorrt" and trt_det.layout == "ssd"
    a, b = trt_det.detect(image), ort_det.detect(image)
    assert [x.class_name for x in a] == [x.class_name for x in b] and a
    for x, y in zip(a, b):
        assert (x.x_min, x.y_min, x.x_max, x.y_max) == pytest.approx((y.x_min, y.y_min, y.x_max, y.y_max), abs=3)
