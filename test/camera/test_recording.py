"""The recording maker: photographs, depth layouts, pan/zoom, the .db3 file and its cache."""
import json

import numpy as np
import pytest

from muon_ad_ros.camera import recording as rec


def test_bundled_photographs_load_without_downloads():
    scenes = rec.bundled_scenes(data_dir=None)
    assert [s.name for s in scenes] == [*rec.SUBJECTS, "motorcycle"]
    for s in scenes:
        assert s.rgb.dtype == np.uint8 and s.rgb.ndim == 3
        assert s.depth_m.shape == s.rgb.shape[:2]


def test_synthetic_layout_puts_the_subject_nearer_than_the_floor_behind_it():
    depth = rec.layout_depth((200, 300), (0.5, 0.5, 0.1, 0.1, 1.0), near=2.0, far=8.0)
    assert depth[100, 150] == pytest.approx(1.0, abs=1e-3)
    assert depth[0, 10] > depth[-1, 10] > depth[100, 150]


def test_motorcycle_depth_is_the_middlebury_ground_truth():
    scene = rec.motorcycle_scene()
    valid = scene.depth_m > 0
    assert 0.7 < valid.mean() < 1.0                        # occluded pixels have no ground truth
    assert 1.0 < np.median(scene.depth_m[valid]) < 6.0     # a motorcycle a few metres away


def test_people_stand_at_the_distance_their_box_height_implies(tmp_path):
    boxes = [[100, 100, 140, 220]]     # a 120 px tall person
    depth = rec.people_depth((480, 640), boxes)
    expected = 0.96 * 640 * 1.7 / 120
    assert depth[160, 120] == pytest.approx(expected, rel=0.02)
    assert depth[160, 400] > depth[160, 120]
    # people.json of the detection helper is read, partial people included
    (tmp_path / "people.json").write_text(json.dumps({"a.jpg": {"people": [[0, 0, 1, 2]], "partial": [[5, 5, 6, 9]]}}))
    assert rec.people_boxes(tmp_path) == {"a.jpg": [[0, 0, 1, 2], [5, 5, 6, 9]]}


def test_pan_zoom_stays_inside_the_photo_and_moves():
    for t in np.linspace(0, 1, 5):
        a = rec.pan_zoom((400, 600), 160, 120, t, seed=3)
        inv = np.vstack([np.linalg.inv(np.vstack([a, [0, 0, 1]]))[:2]])
        corners = inv @ np.array([[0, 160, 0, 160], [0, 0, 120, 120], [1, 1, 1, 1]])
        assert corners[0].min() >= -0.5 and corners[0].max() <= 600.5
        assert corners[1].min() >= -0.5 and corners[1].max() <= 400.5
    assert not np.allclose(rec.pan_zoom((400, 600), 160, 120, 0.0, 3), rec.pan_zoom((400, 600), 160, 120, 1.0, 3))


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="x.bag must end in .db3"):
        rec.make_recording(tmp_path / "x.bag", frames=1)
    with pytest.raises(ValueError, match="frames must be >= 1"):
        rec.make_recording(tmp_path / "x.db3", rec.bundled_scenes(None)[:1], 32, 24, 30, 0)


def test_cached_recording_is_made_once(tmp_path):
    first = rec.cached_recording(48, 32, 30, frames=5, cache_dir=tmp_path, data_dir=None)
    stamp = first.stat().st_mtime_ns
    again = rec.cached_recording(48, 32, 30, frames=5, cache_dir=tmp_path, data_dir=None)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]    # no temporary file left behind
    other = rec.cached_recording(48, 32, 15, frames=5, cache_dir=tmp_path, data_dir=None)
    assert other != first


def test_command_line_writes_a_recording(tmp_path, capsys):
    out = tmp_path / "cli.db3"
    assert rec.main(["--out", str(out), "--width", "32", "--height", "24", "--frames", "3", "--no-people"]) == 0
    assert out.stat().st_size > 0 and str(out) in capsys.readouterr().out
    assert rec.main(["--out", str(tmp_path / "cli.bag"), "--frames", "1", "--no-people"]) == 2
