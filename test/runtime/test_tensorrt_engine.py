"""The shared TensorRT builder: the cache key, request checks and INT8 calibration sources run
everywhere; building an engine needs an NVIDIA GPU with TensorRT and is tested in test/detect,
test/train/test_export.py and test/runtime/test_style.py (skipped elsewhere)."""
import importlib.util
import os

import cv2
import numpy as np
import pytest
import torch

from muon_ad_ros.detect.synthetic import fixed_output_model
from muon_ad_ros.runtime import tensorrt_engine as te

HAS_TRT = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


@pytest.fixture
def onnx_model(tmp_path):
    return fixed_output_model(str(tmp_path / "tiny.onnx"), np.zeros((1, 6, 8), np.float32))


def test_cache_key_changes_with_everything_that_invalidates_a_plan():
    base = dict(model_sha256="ab" * 32, tensorrt_version="10.3.0", cuda_version="12.6", gpu="Orin (8.7)",
                dla_core=-1, precision="fp16", input_shapes={"images": (1, 3, 640, 640)}, retention=1.0)
    key = te.cache_key(**base)
    assert key == te.cache_key(**base)   # stable: no rebuild when nothing changed
    changes = dict(model_sha256="cd" * 32, tensorrt_version="10.7.0", cuda_version="12.8", gpu="Orin NX (8.7)",
                   dla_core=0, precision="int8", input_shapes={"images": (1, 3, 480, 640)}, retention=0.4)
    keys = {te.cache_key(**(base | {k: v})) for k, v in changes.items()}
    assert len(keys) == len(changes) and key not in keys
    assert te.cache_key(**(base | {"retention": None})) != key   # a detector (no retention) differs too
    int8 = base | {"precision": "int8"}
    assert te.cache_key(**int8, calibration_id="a") != te.cache_key(**int8, calibration_id="b")
    assert te.cache_key(**base, calibration_id="a") == key   # calibration only matters for int8
    assert te.engine_path("/c", "/m/yolo.onnx", key) == f"/c/yolo-{key}.engine"
    with pytest.raises(ValueError, match="bf8"):
        te.cache_key(**(base | {"precision": "bf8"}))


@pytest.mark.parametrize("change, message", [
    ({"precision": "bf8"}, "bf8"),
    ({"dla_core": 0, "precision": "fp32"}, "DLA runs FP16 or INT8 only"),
    ({"precision": "int8"}, "needs calibration images"),
    ({"retention": 1.5}, "1.5"),
    ({"onnx_path": "/nonexistent/model.onnx"}, "/nonexistent/model.onnx"),
])
def test_bad_request_is_a_value_error_naming_the_value_even_without_tensorrt(onnx_model, change, message):
    req = te.EngineRequest(**({"onnx_path": onnx_model} | change))
    with pytest.raises(ValueError, match=message):
        te.build_or_load(req, log=lambda _: None)


@pytest.mark.skipif(HAS_TRT, reason="checks the message when TensorRT is absent")
def test_build_without_tensorrt_says_why(onnx_model):
    with pytest.raises(te.TensorRTUnavailable, match="TensorRT|CUDA"):
        te.build_or_load(te.EngineRequest(onnx_model), log=lambda _: None)


def test_calibration_from_a_folder_is_resized_to_the_engine_input_in_0_1(tmp_path):
    with pytest.raises(ValueError, match="holds no"):
        te.calibration_source(str(tmp_path), (64, 96))
    with pytest.raises(ValueError, match="none was given"):
        te.calibration_source("", (64, 96))
    with pytest.raises(ValueError, match=f"{tmp_path / 'missing'} not found"):
        te.calibration_source(tmp_path / "missing", (64, 96))
    bgr = np.zeros((120, 160, 3), np.uint8)
    bgr[:, :, 2] = 255   # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    (tmp_path / "notes.txt").write_text("not an image")
    batches, first_id = te.calibration_source(str(tmp_path), (64, 96))
    [batch] = list(batches())
    assert batch.shape == (1, 3, 64, 96) and batch.dtype == np.float32
    assert batch[0, 0].min() == pytest.approx(1.0) and batch[0, 1:].max() == 0.0   # RGB, scaled to [0, 1]
    assert list(batches())[0].tobytes() == batch.tobytes()   # the builder may iterate it again
    assert te.calibration_source(str(tmp_path), (64, 96))[1] == first_id
    assert te.calibration_source(str(tmp_path), (480, 640))[1] != first_id
    cv2.imwrite(str(tmp_path / "b.jpg"), bgr)
    assert te.calibration_source(str(tmp_path), (64, 96))[1] != first_id   # another set: another engine
    os.utime(tmp_path / "b.jpg", (0, 0))
    assert len(list(te.calibration_source(str(tmp_path), (64, 96))[0]())) == 2


def test_calibration_from_arrays_uses_the_given_preprocessing():
    images = [np.full((48, 64, 3), v, np.uint8) for v in (0, 51)]
    batches, ident = te.calibration_source(images, (32, 32))
    assert [float(b.max()) for b in batches()] == pytest.approx([0.0, 0.2])
    assert te.calibration_source(images[:1], (32, 32))[1] != ident

    def half(rgb, hw):
        return te.resized(rgb, hw) / 2

    assert [float(b.max()) for b in te.calibration_source(images, (32, 32), half)[0]()] == pytest.approx([0, 0.1])
    assert te.calibration_source(images, (32, 32), half)[1] != ident
    with pytest.raises(ValueError, match="empty"):
        te.calibration_source([], (32, 32))
