"""Frames through OpenCV: a GStreamer pipeline (the Jetson CSI camera), a V4L2 device, a video file
or a folder of images, reopened with backoff when the source disappears."""
from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np

from muon_ad_ros.camera.model import CameraModel, load_calibration
from muon_ad_ros.camera.recording import pan_zoom
from muon_ad_ros.camera.source import (ENDED, STARTING, STREAMING, Backoff, Frame, Pacer,
                                       ReopeningSource, SourceError, StampMapper)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
GSTREAMER, V4L2, VIDEO, FOLDER = "gstreamer", "v4l2", "video", "folder"


def imx219_pipeline(width: int = 640, height: int = 480, fps: int = 30, sensor_id: int = 0, flip: int = 0) -> str:
    """Returns the GStreamer pipeline for a Raspberry Pi Camera v2 (IMX219) on a Jetson CSI port.

    nvarguscamerasrc captures through the ISP in a native sensor mode (1640x1232 is the full 4:3
    field of view at up to 30 fps, 1280x720 up to 60), nvvidconv scales on the VIC, and the appsink
    keeps only the newest buffer so a slow reader never sees old frames. Needs OpenCV built with
    GStreamer (JetPack's is; the opencv-python wheels are not)."""
    cw, ch = (1640, 1232) if fps <= 30 else (1280, 720)
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! "
            f"video/x-raw(memory:NVMM), width={cw}, height={ch}, framerate={int(fps)}/1, format=NV12 ! "
            f"nvvidconv flip-method={flip} ! video/x-raw, width={width}, height={height}, format=BGRx ! "
            "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false")


def gstreamer_available() -> bool:
    """Returns True when this OpenCV build can open GStreamer pipelines."""
    return bool(re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()))


def classify(uri: str) -> tuple[str, str | int]:
    """Returns (kind, target) for a source string: "" = the IMX219 pipeline, a string with '!' = a
    GStreamer pipeline, /dev/videoN or N = a V4L2 device, a directory = images, else a video file."""
    uri = uri.strip()
    if not uri or "!" in uri:
        return GSTREAMER, uri
    m = re.fullmatch(r"(?:/dev/video)?(\d+)", uri)
    if m:
        return V4L2, int(m.group(1))
    path = Path(uri).expanduser()
    # A path that does not exist (yet) is a video file if it has a suffix, else a folder; opening
    # then fails with "not found" and is retried, so a source that appears later is picked up.
    if path.is_dir() or (not path.exists() and not path.suffix):
        return FOLDER, str(path)
    return VIDEO, str(path)


def v4l2_stamp_ns(pos_msec: float, now_ns: int | None = None, mono_ns: int | None = None) -> int:
    """Returns the host-clock time (ns) of a V4L2 buffer: OpenCV's POS_MSEC is the driver's buffer
    timestamp, on CLOCK_MONOTONIC for nearly every driver, so it is moved to the realtime clock;
    a value not within a second of the monotonic clock cannot be that, and the arrival time is used."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    mono_ns = time.monotonic_ns() if mono_ns is None else mono_ns
    age_ns = mono_ns - int(pos_msec * 1e6)
    return now_ns - age_ns if pos_msec > 0 and 0 <= age_ns < 1_000_000_000 else now_ns


class OpenCVSource(ReopeningSource):
    """RGB frames from a GStreamer pipeline, a V4L2 device, a video file or an image folder.

    width/height: requested size (0 = as delivered; files and folders are resized to it).
    fps: pace files and folders (0 = a video's own rate; folders need it) and request it from V4L2.
    loop: restart files and folders at the end; otherwise the source reports ENDED.
    calibration: a camera_calibration YAML; scaled to the frame size (same aspect ratio).
    hold: folders: seconds each image is shown (at `fps`, so hold * fps frames; 0 = the next image every
    frame); a few photos shown one per frame flicker.
    pan_zoom: folders: a slow pan and zoom over each image while it is held, instead of a still."""

    def __init__(self, uri: str = "", width: int = 0, height: int = 0, fps: float = 30.0, loop: bool = True,
                 calibration: str | Path | None = None, hold: float = 0.0, pan_zoom: bool = False):
        self.uri, self.width, self.height, self.fps, self.loop = uri, int(width), int(height), float(fps), loop
        if hold < 0:
            raise ValueError(f"hold must be >= 0 seconds, got {hold}")
        self.per_image = max(1, int(round(hold * self.fps))) if self.fps > 0 else 1
        self.pan_zoom = bool(pan_zoom)
        self.kind, self.target = classify(uri)
        if self.kind == GSTREAMER and not self.target:
            self.target = imx219_pipeline(width or 640, height or 480, int(fps) or 30)
        if self.kind == FOLDER and self.fps <= 0:
            raise ValueError(f"an image folder ({uri}) needs fps > 0 to be paced, got {fps}")
        self.calibration = load_calibration(calibration) if calibration else None
        self.state, self.last_error = STARTING, ""
        self.frames = self.reconnects = self.opens = 0
        self.stamps = StampMapper()
        self.backoff = Backoff()
        self._cap: cv2.VideoCapture | None = None
        self._files: list[Path] = []
        self._index = 0
        self._image: np.ndarray | None = None     # the folder image being held
        self._shown = 0                            # frames of it produced so far
        self._tick = 0                             # frames produced in this pass over the folder
        self._pacer = Pacer(0)
        self._model_cache: tuple[tuple[int, int], CameraModel | None, str] | None = None

    @property
    def name(self) -> str:
        """Returns what the source reads, for logs and diagnostics."""
        return f"{self.kind} {self.target if self.kind != GSTREAMER else self.target.split(' ')[0]}"

    def camera_model(self, width: int, height: int) -> tuple[CameraModel | None, str]:
        """Returns (the calibration scaled to width x height or None, why it is None)."""
        if self.calibration is None:
            return None, "no calibration file given"
        if self._model_cache is None or self._model_cache[0] != (width, height):
            try:
                self._model_cache = ((width, height), self.calibration.scaled(width, height), "")
            except ValueError as exc:
                self._model_cache = ((width, height), None, str(exc))
        return self._model_cache[1], self._model_cache[2]

    # -- opening -------------------------------------------------------------------------------
    def _open(self):
        if self.kind == FOLDER:
            folder = Path(self.target)
            self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) \
                if folder.is_dir() else []
            if not self._files:
                raise SourceError(f"image folder {folder} is missing or holds no images ({', '.join(IMAGE_SUFFIXES)})")
            self._index, self._image, self._shown, self._tick = 0, None, 0, 0
            self._pacer = Pacer(self.fps)
        elif self.kind == GSTREAMER:
            if not gstreamer_available():
                raise SourceError("this OpenCV build has no GStreamer support (the opencv-python wheels do not; "
                                  "JetPack's OpenCV does), so the pipeline cannot be opened: " + self.target)
            self._cap = self._capture(cv2.VideoCapture(self.target, cv2.CAP_GSTREAMER))
        elif self.kind == V4L2:
            cap = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                                (cv2.CAP_PROP_FPS, self.fps)):
                if value > 0:
                    cap.set(prop, value)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)   # newest frame, not a driver queue of old ones
            self._cap = self._capture(cap)
        else:
            if not Path(self.target).is_file():
                raise SourceError(f"video file {self.target} not found")
            self._cap = self._capture(cv2.VideoCapture(self.target))
            rate = self.fps if self.fps > 0 else self._cap.get(cv2.CAP_PROP_FPS)
            self._pacer = Pacer(rate if rate and rate > 0 else 30.0)
        self.stamps.reset()
        self.opens += 1
        if self.opens > 1:
            self.reconnects += 1

    def _capture(self, cap: cv2.VideoCapture) -> cv2.VideoCapture:
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"OpenCV cannot open {self.kind} source {self.target}")
        return cap

    # -- reading -------------------------------------------------------------------------------
    def read(self, timeout: float = 0.5) -> Frame | None:
        """Returns the next frame, or None (the source is reconnecting or has ENDED; see `state`)."""
        if self.state == ENDED:
            time.sleep(timeout)
            return None
        if self._cap is None and not self._files:
            if not self._opened(timeout):
                return None
        try:
            got = self._read_folder() if self.kind == FOLDER else self._read_capture()
        except SourceError as exc:
            self._failed(str(exc))
            return None
        if got is None:
            return None
        image, source_ms, stamp_ns = got
        rgb = self._to_rgb(image)
        self.frames += 1
        self.state, self.last_error = STREAMING, ""
        self.backoff.reset()
        return Frame(rgb, stamp_ns, source_ms, self.frames - 1)

    def _read_folder(self):
        if self._image is None or self._shown >= self.per_image:
            if self._index >= len(self._files):
                if not self.loop:
                    return self._end()
                self._index, self._tick = 0, 0
            path = self._files[self._index]
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise SourceError(f"cannot read image {path} (deleted or not an image)")
            self._image, self._shown = image, 0
            self._index += 1
        image = self._image
        if self.pan_zoom:
            h, w = image.shape[:2]
            ow, oh = (self.width, self.height) if self.width > 0 and self.height > 0 else (w, h)
            affine = pan_zoom((h, w), ow, oh, self._shown / self.per_image, seed=self._index)
            image = cv2.warpAffine(image, affine, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        self._shown += 1
        self._pacer.wait()
        # A folder has no clock of its own: the media time of frame k of a pass is k / fps.
        source_ms = self._tick * 1000.0 / self.fps
        self._tick += 1
        return image, source_ms, self.stamps(source_ms)

    def _read_capture(self):
        ok, image = self._cap.read()
        if not ok:
            if self.kind == VIDEO:
                if not self.loop:
                    return self._end()
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self._cap.read()
            if not ok:
                raise SourceError(f"{self.name} stopped delivering frames")
        if self.kind == VIDEO:
            self._pacer.wait()
            source_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            return image, source_ms, self.stamps(source_ms)
        if self.kind == V4L2:
            pos = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            return image, pos, v4l2_stamp_ns(pos)
        # appsink does not hand buffer timestamps to OpenCV: the arrival time is the best we have.
        now = time.time_ns()
        return image, now / 1e6, now

    def _end(self):
        self.close()
        self.state, self.last_error = ENDED, f"{self.name} ended after {self.frames} frames (loop is off)"
        return None

    def _to_rgb(self, image: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        if self.kind in (VIDEO, FOLDER) and self.width > 0 and self.height > 0 and (w, h) != (self.width, self.height):
            rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return rgb

    def close(self):
        if self._cap is not None:
            self._cap.release()
        self._cap, self._files = None, []
