"""bench/accuracy.py's matching against hand-computed cases, and the labelled frames' images read from the
installed packages."""
import numpy as np

from muon_ad_ros.bench import accuracy
from muon_ad_ros.detect.base import Box


def box(x1, y1, x2, y2, score, name):
    return Box(x1, y1, x2, y2, score, 0, name)


FRAME = accuracy.Frame("f", np.zeros((100, 200, 3), np.uint8),
                       [{"class": "person", "box": [10, 10, 30, 60]}, {"class": "person", "box": [50, 10, 70, 60]},
                        {"class": "car", "box": [100, 10, 180, 50], "also": ["truck"]}],
                       ignore=[[0, 70, 200, 100]])


def test_matching_counts_duplicates_and_wrong_classes_as_false_positives_and_ignores_regions():
    detections = [box(10, 10, 30, 60, 0.9, "person"),     # TP
                  box(11, 10, 31, 60, 0.8, "person"),     # the same person again (IoU 0.9): FP
                  box(100, 10, 180, 50, 0.7, "truck"),    # the car under a name `also` allows: TP (as car)
                  box(50, 10, 70, 60, 0.6, "dog"),        # a labelled person called dog: FP for dog
                  box(20, 75, 40, 95, 0.9, "person"),     # inside the ignore region: neither
                  box(150, 60, 170, 72, 0.5, "person")]   # 1/6 inside the ignore region: FP
    counts, labelled = accuracy.match(detections, FRAME)
    assert counts == {"person": [1, 2], "car": [1, 0], "dog": [0, 1]} and labelled == {"person": 2, "car": 1}
    r = accuracy.evaluate([detections], [FRAME])
    assert r["classes"]["person"] == {"labelled": 2, "tp": 1, "fp": 2, "precision": 0.333, "recall": 0.5}
    assert r["all"] == {"labelled": 3, "tp": 2, "fp": 3, "precision": 0.4, "recall": 0.667}


def test_a_loose_box_counts_at_iou_0_3_only():
    loose = [box(0, 0, 40, 75, 0.9, "person")]   # IoU 1000 / 3000 = 0.33
    assert accuracy.match(loose, FRAME)[0] == {"person": [0, 1]}
    assert accuracy.match(loose, FRAME, 0.3)[0] == {"person": [1, 0]}


def test_labelled_frames_are_read_from_the_installed_packages():
    frames = accuracy.labelled_frames()
    assert len(frames) >= 30 and sum(len(f.objects) for f in frames) >= 150
    for f in frames:
        assert f.rgb.dtype == np.uint8 and f.rgb.ndim == 3 and f.rgb.shape[2] == 3
        h, w = f.rgb.shape[:2]
        assert all(0 <= o["box"][0] < o["box"][2] <= w and 0 <= o["box"][1] < o["box"][3] <= h for o in f.objects), f.name
