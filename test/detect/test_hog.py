"""OpenCV's bundled HOG people detector on the bundled photographs (muon_ad_ros/data, people
annotated by hand in people.json) and on real photographs without people (scikit-image)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from muon_ad_ros.detect import DetectorConfig, Filters, ModelError, make_detector

DATA = Path(__file__).resolve().parents[2] / "muon_ad_ros" / "data"
ANNOTATIONS = json.loads((DATA / "people.json").read_text())
PHOTOS = sorted(k for k in ANNOTATIONS if not k.startswith("_"))


def load_rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(DATA / name)), cv2.COLOR_BGR2RGB)


def intersection(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a, b) -> float:
    inter = intersection(a, b)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def match(boxes, people, partial):
    """Returns (annotated people found, detections on nobody). A detection lying mostly on a person cut
    by the border (or too small to annotate) is neither."""
    found, stray = set(), 0
    for b in boxes:
        xyxy = (b.x_min, b.y_min, b.x_max, b.y_max)
        hits = [i for i, p in enumerate(people) if iou(xyxy, p) >= 0.3]
        if hits:
            found.update(hits)
        elif not any(intersection(xyxy, p) >= 0.5 * (xyxy[2] - xyxy[0]) * (xyxy[3] - xyxy[1]) for p in partial):
            stray += 1
    return found, stray


def test_photos_are_640x480_and_annotated():
    assert len(PHOTOS) >= 4
    for name in PHOTOS:
        assert load_rgb(name).shape == (480, 640, 3)
        assert ANNOTATIONS[name]["people"]


def test_hog_finds_the_people_in_the_bundled_photos():
    det = make_detector(DetectorConfig(backend="opencv_hog", input_size=960))
    total = found_total = stray_total = 0
    for name in PHOTOS:
        people = ANNOTATIONS[name]["people"]
        boxes = det.detect(load_rgb(name))
        found, stray = match(boxes, people, ANNOTATIONS[name]["partial"])
        assert found, f"no annotated person found in {name}"
        assert all(b.class_name == "person" and 0.5 < b.score < 1.0 for b in boxes)
        total, found_total, stray_total = total + len(people), found_total + len(found), stray_total + stray
    assert found_total >= 0.8 * total, f"found {found_total} of {total} annotated people"
    assert stray_total <= len(PHOTOS), f"{stray_total} detections overlap no annotated person"


def test_hog_at_camera_resolution_finds_the_near_person():
    name = "indoor_basketball.jpg"
    det = make_detector(DetectorConfig(backend="opencv_hog"))
    found, stray = match(det.detect(load_rgb(name)), ANNOTATIONS[name]["people"], ANNOTATIONS[name]["partial"])
    assert found == {0} and stray == 0


@pytest.mark.parametrize("photo", ["coffee", "chelsea", "rocket"])
def test_hog_finds_nobody_in_photos_without_people(photo):
    import skimage.data
    image = cv2.resize(getattr(skimage.data, photo)(), (640, 480), interpolation=cv2.INTER_AREA)
    assert make_detector(DetectorConfig(backend="opencv_hog")).detect(image) == []


def test_hog_filters_apply_per_frame():
    image = load_rgb("street_750.jpg")
    det = make_detector(DetectorConfig(backend="opencv_hog", input_size=960))
    everyone = det.detect(image)
    det.filters = Filters(score_threshold=0.9)
    confident = det.detect(image)
    assert 0 < len(confident) < len(everyone) and min(b.score for b in confident) >= 0.9
    det.filters = Filters(max_detections=2)
    assert len(det.detect(image)) == 2
    det.filters = Filters(class_filter=("car",))
    assert det.detect(image) == [] and det.unknown_classes() == ["car"]
    det.filters = Filters(class_filter=("person",))
    assert len(det.detect(image)) == len(everyone)


def test_hog_refuses_precisions_it_cannot_run():
    with pytest.raises(ModelError, match="fp32 only"):
        make_detector(DetectorConfig(backend="opencv_hog", precision="fp16"))
