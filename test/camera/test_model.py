"""Calibration files in the camera_calibration / camera_info_manager format, and CameraModel."""
from pathlib import Path

import pytest
import yaml

from muon_ad_ros.camera.model import CameraModel, load_calibration, save_calibration

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "camera_info_example.yaml"


def write(tmp_path, doc) -> Path:
    path = tmp_path / "cam.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def test_shipped_example_loads_with_its_own_numbers():
    doc = yaml.safe_load(EXAMPLE.read_text())
    model = load_calibration(EXAMPLE)
    assert (model.width, model.height) == (doc["image_width"], doc["image_height"])
    assert list(model.k) == doc["camera_matrix"]["data"]
    assert list(model.p) == doc["projection_matrix"]["data"]
    assert model.distortion_model == "plumb_bob" and len(model.d) == 5


def test_round_trip_keeps_every_field(tmp_path):
    model = CameraModel.pinhole(1280, 720, 910.5, 912.25, 640.1, 359.7, d=(0.1, -0.2, 0.001, 0.002, 0.05),
                                name="front")
    back = load_calibration(save_calibration(model, tmp_path / "front.yaml"))
    assert back == model


def test_projection_defaults_from_k_when_absent(tmp_path):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["camera_matrix"]["data"] = [400.0, 0, 300.0, 0, 410.0, 200.0, 0, 0, 1]
    del doc["projection_matrix"], doc["rectification_matrix"]
    model = load_calibration(write(tmp_path, doc))
    assert model.p == (400.0, 0.0, 300.0, 0.0, 0.0, 410.0, 200.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert model.r == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize("edit, words", [
    (lambda d: d.pop("camera_matrix"), "lacks 'camera_matrix'"),
    (lambda d: d["camera_matrix"].update(data=[1.0] * 8), "has 8 values"),
    (lambda d: d["distortion_coefficients"].update(cols=4, data=[0.0] * 4), "plumb_bob needs 5"),
    (lambda d: d.update(distortion_model="fisheye_magic"), "'fisheye_magic' is not one of"),
    (lambda d: d.update(image_width="640"), "must be integers"),
    (lambda d: d["camera_matrix"].update(data=[0.0] * 9), "focal lengths"),
    (lambda d: d["projection_matrix"].update(rows=4), "expected 3x4"),
])
def test_bad_files_are_refused_naming_the_problem(tmp_path, edit, words):
    doc = yaml.safe_load(EXAMPLE.read_text())
    edit(doc)
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        load_calibration(write(tmp_path, doc))


def test_unreadable_and_non_yaml_files_name_the_path(tmp_path):
    with pytest.raises(ValueError, match="cannot read calibration file .*missing.yaml"):
        load_calibration(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_calibration(write(tmp_path, "image_width: [640\n"))
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_calibration(write(tmp_path, "- 1\n- 2\n"))


def test_scaling_to_another_size_of_the_same_aspect():
    model = CameraModel.pinhole(640, 480, 530.0, 531.0, 319.5, 239.5)
    half = model.scaled(320, 240)
    assert half.k[0] == pytest.approx(265.0) and half.k[4] == pytest.approx(265.5)
    assert half.k[2] == pytest.approx(159.75) and half.p[6] == pytest.approx(119.75)
    assert model.scaled(640, 480) is model
    with pytest.raises(ValueError, match="640x480.*1280x720.*aspect ratio"):
        model.scaled(1280, 720)
