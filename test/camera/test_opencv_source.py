"""OpenCVSource on an image folder and a video file (written here with cv2.VideoWriter), source
strings, V4L2 timestamps, and sources that are missing or disappear."""
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from muon_ad_ros.camera.opencv_source import (FOLDER, GSTREAMER, V4L2, VIDEO, OpenCVSource, classify,
                                              gstreamer_available, imx219_pipeline, v4l2_stamp_ns)
from muon_ad_ros.camera.source import ENDED, RECONNECTING, STREAMING

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "camera_info_example.yaml"


def shades(n):
    """Returns n distinguishable BGR images (a solid shade and a bright square that moves)."""
    out = []
    for k in range(n):
        img = np.full((48, 64, 3), 20 * k + 10, np.uint8)
        img[8:16, 4 * k:4 * k + 8] = 255
        out.append(img)
    return out


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    # Written out of order: the source must sort by name.
    for k in (3, 0, 2, 1):
        cv2.imwrite(str(d / f"frame_{k:03d}.png"), shades(4)[k])
    (d / "notes.txt").write_text("not an image")
    return d


def read_n(src, n, timeout=0.5):
    frames = []
    deadline = time.monotonic() + 20
    while len(frames) < n and src.state != ENDED and time.monotonic() < deadline:
        f = src.read(timeout)
        if f is not None:
            frames.append(f)
    return frames


def test_folder_plays_sorted_rgb_and_loops(folder):
    src = OpenCVSource(str(folder), fps=50)
    frames = read_n(src, 6)
    expected = [cv2.cvtColor(img, cv2.COLOR_BGR2RGB) for img in shades(4)]
    for k, f in enumerate(frames):
        assert np.array_equal(f.color, expected[k % 4])
    assert [f.source_ms for f in frames] == pytest.approx([0, 20, 40, 60, 0, 20])
    assert src.state == STREAMING and src.kind == FOLDER


def test_folder_without_loop_ends_and_says_so(folder):
    src = OpenCVSource(str(folder), fps=100, loop=False)
    assert len(read_n(src, 10)) == 4
    assert src.state == ENDED and "ended after 4 frames" in src.last_error
    src.restart()
    assert len(read_n(src, 10)) == 4


def test_folder_is_paced_and_resized(folder):
    src = OpenCVSource(str(folder), width=32, height=24, fps=40, loop=False)
    t0 = time.monotonic()
    frames = read_n(src, 4)
    assert time.monotonic() - t0 >= 3 / 40 * 0.9
    assert all(f.color.shape == (24, 32, 3) for f in frames)
    assert all(b.stamp_ns > a.stamp_ns for a, b in zip(frames, frames[1:]))


def test_video_file_written_by_opencv_plays_and_loops(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for img in shades(5):
        writer.write(img)
    writer.release()
    src = OpenCVSource(str(path), fps=0)           # fps 0: the file's own 25 fps
    frames = read_n(src, 7)
    assert src.kind == VIDEO and len(frames) == 7
    means = [float(f.color[30:, :, 0].mean()) for f in frames]
    # MJPEG is lossy: compare shades, not bytes
    assert means[:5] == pytest.approx([20 * k + 10 for k in range(5)], abs=3)
    assert means[5:] == pytest.approx(means[:2], abs=0.5)        # looped to the start
    assert [f.source_ms for f in frames[:5]] == pytest.approx([0, 40, 80, 120, 160])


def test_missing_folder_is_retried_until_it_appears(folder, tmp_path):
    later = tmp_path / "later"
    src = OpenCVSource(str(later), fps=50)
    assert src.read(0.1) is None
    assert src.state == RECONNECTING and "later is missing or holds no images" in src.last_error
    shutil.copytree(folder, later)
    assert len(read_n(src, 1)) == 1 and src.state == STREAMING


def test_a_vanished_image_reconnects(folder):
    src = OpenCVSource(str(folder), fps=100)
    assert read_n(src, 1)
    (folder / "frame_001.png").unlink()
    while src.state == STREAMING:
        src.read(0.1)
    assert src.state == RECONNECTING and "frame_001.png" in src.last_error
    assert read_n(src, 1) and src.reconnects == 1


def test_source_strings():
    assert classify("") == (GSTREAMER, "")
    assert classify("videotestsrc ! appsink") == (GSTREAMER, "videotestsrc ! appsink")
    assert classify("/dev/video2") == (V4L2, 2) and classify("0") == (V4L2, 0)
    assert classify("/nowhere/clip.mp4")[0] == VIDEO and classify("/nowhere/frames")[0] == FOLDER


def test_default_pipeline_is_the_imx219_one_and_its_absence_is_explained():
    pipe = imx219_pipeline(640, 480, 30, sensor_id=1, flip=2)
    assert pipe.startswith("nvarguscamerasrc sensor-id=1 ") and "flip-method=2" in pipe
    assert "width=1640, height=1232" in pipe and "width=640, height=480" in pipe and "appsink drop=true" in pipe
    src = OpenCVSource("", 640, 480, 30)
    assert src.read(0.1) is None and src.state == RECONNECTING
    if not gstreamer_available():
        assert "no GStreamer support" in src.last_error
    else:
        assert "cannot open" in src.last_error      # no Jetson camera here either


def test_calibration_is_scaled_to_the_frames(folder):
    src = OpenCVSource(str(folder), fps=50, calibration=EXAMPLE)
    model, why = src.camera_model(320, 240)
    assert why == "" and model.k[0] == pytest.approx(src.calibration.k[0] / 2)
    model, why = src.camera_model(64, 64)
    assert model is None and "aspect ratio" in why
    with pytest.raises(ValueError, match="cannot read calibration file"):
        OpenCVSource(str(folder), calibration=folder / "none.yaml")


def test_v4l2_buffer_timestamps_move_to_the_host_clock():
    now, mono = 1_700_000_000_000_000_000, 5_000_000_000_000
    assert v4l2_stamp_ns(mono / 1e6 - 12.5, now, mono) == now - 12_500_000   # exposed 12.5 ms ago
    assert v4l2_stamp_ns(0.0, now, mono) == now                              # no timestamp
    assert v4l2_stamp_ns(123.0, now, mono) == now                            # not the monotonic clock


@pytest.mark.skipif(not Path("/dev/video0").exists(), reason="no V4L2 camera on this machine")
def test_v4l2_camera_delivers_frames():
    src = OpenCVSource("/dev/video0", 640, 480, 30)
    frames = read_n(src, 3, timeout=2.0)
    assert len(frames) == 3 and frames[0].color.ndim == 3
    assert abs(frames[-1].stamp_ns - time.time_ns()) < 1e9


def test_folder_holds_each_image_and_pans_when_asked(folder):
    n_files = len([p for p in folder.iterdir() if p.suffix == ".png"])
    src = OpenCVSource(str(folder), width=32, height=24, fps=100, hold=0.05)      # 5 frames per image
    frames = [src.read(1.0) for _ in range(10)]
    assert all(f is not None for f in frames)
    assert all(np.array_equal(frames[0].color, f.color) for f in frames[1:5])
    assert not np.array_equal(frames[4].color, frames[5].color) or n_files == 1
    assert [f.source_ms for f in frames] == pytest.approx([k * 10.0 for k in range(10)])
    src.close()
    moving = OpenCVSource(str(folder), width=32, height=24, fps=100, hold=0.05, pan_zoom=True)
    frames = [moving.read(1.0) for _ in range(5)]
    assert all(f.color.shape == (24, 32, 3) for f in frames)
    assert not np.array_equal(frames[0].color, frames[4].color)      # the same image, moving
    moving.close()
    with pytest.raises(ValueError, match="hold"):
        OpenCVSource(str(folder), hold=-1.0)
