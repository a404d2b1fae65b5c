"""A RealSense camera or recording as a frame source: rs.pipeline, color + depth aligned to color
with rs.align, intrinsics as CameraInfo fields, hardware timestamps, reconnect with backoff."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
from muon_ad_ros.camera.librealsense import rs

from muon_ad_ros.camera.model import CameraModel
from muon_ad_ros.camera.source import (ENDED, STARTING, STREAMING, Backoff, Frame, Pacer,
                                       ReopeningSource, SourceError, StampMapper)

# librealsense color formats we accept -> cv2 conversion to RGB (None: already rgb8).
TO_RGB = {rs.format.rgb8: None, rs.format.bgr8: cv2.COLOR_BGR2RGB, rs.format.rgba8: cv2.COLOR_RGBA2RGB,
          rs.format.bgra8: cv2.COLOR_BGRA2RGB, rs.format.yuyv: cv2.COLOR_YUV2RGB_YUYV}
# The Brown-Conrady family maps to ROS's plumb_bob (same 5 coefficients k1 k2 p1 p2 k3), as
# realsense-ros does; D4xx imagers report zero coefficients, so the variants do not differ there.
PLUMB_BOB_MODELS = (rs.distortion.none, rs.distortion.brown_conrady, rs.distortion.modified_brown_conrady,
                    rs.distortion.inverse_brown_conrady)
HOST_CLOCK_DOMAINS = (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time)
PLAYBACK_SLICE_S = 0.02   # how often a read that waits for a recording checks whether it has ended
START_TRIES = 5           # starts of a recording that may lose their first frames before it counts as failed


def camera_model(intr: "rs.intrinsics", name: str = "") -> CameraModel:
    """Returns the CameraInfo fields of RealSense intrinsics (K, D, R = I, P with Tx = 0)."""
    if intr.model in PLUMB_BOB_MODELS:
        d, model = intr.coeffs[:5], "plumb_bob"
    elif intr.model == rs.distortion.kannala_brandt4:
        d, model = intr.coeffs[:4], "equidistant"
    else:
        raise ValueError(f"{name}: RealSense distortion {intr.model} has no ROS CameraInfo equivalent")
    return CameraModel.pinhole(intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy, d, model, name)


def first_color_key(recording: Path, probe) -> tuple[int, float]:
    """Returns the key of a recording's first color frame, probed once per file version: playing the color
    stream alone takes seconds for a long recording, and every start of it would pay that again. The keys
    live in ~/.cache/muon_ad_ros/recordings/first_color.json, by path, size and modification time."""
    import json
    import os
    st = recording.stat()
    name = f"{recording.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    cache = Path(os.environ.get("MUON_AD_ROS_CACHE", Path.home() / ".cache" / "muon_ad_ros")) / "recordings"
    path = cache / "first_color.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if name in known:
        return tuple(known[name])
    key = probe()
    known[name] = list(key)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        tmp.replace(path)       # atomic: several camera processes may write at once
    except OSError:
        pass                    # a read-only home only costs the probe at the next start
    return key


class RealSenseSource(ReopeningSource):
    """Color (rgb8) + depth (uint16 mm) frames from a RealSense device or a .db3/.bag recording.

    serial: a device serial (None = the first device). recording: play this file instead; it plays
    every frame in order (librealsense's non-real-time playback), paced by the frames' own
    timestamps when `realtime`, else as fast as they are read. Pacing by hardware timestamps rather
    than librealsense's real-time mode, which follows the recorder's arrival times: those are only
    right for files recorded live. width/height/fps choose the device's streams; a recording plays
    as it was recorded. loop: replay a recording from the start when it ends; otherwise the source
    reports ENDED."""

    def __init__(self, serial: str | None = None, recording: str | Path | None = None, width: int = 640,
                 height: int = 480, fps: int = 30, align_depth: bool = True, loop: bool = True,
                 realtime: bool = True, depth: bool = True, frame_timeout: float = 2.0):
        if serial and recording:
            raise ValueError(f"give a serial ({serial!r}) or a recording ({recording!r}), not both")
        self.serial, self.recording = serial or None, Path(recording) if recording else None
        self.width, self.height, self.fps = int(width), int(height), int(fps)
        self.align_depth, self.loop, self.realtime, self.want_depth = align_depth, loop, realtime, depth
        # Whether the next frames are to be aligned: the reader clears it while no one takes aligned depth,
        # and librealsense's alignment (the largest share of the camera node's CPU time) is skipped.
        self.align_wanted = True
        self.frame_timeout = frame_timeout
        self.state, self.last_error = STARTING, ""
        self.frames = self.reconnects = self.opens = 0
        self.color_model: CameraModel | None = None
        self.depth_model: CameraModel | None = None
        self.depth_to_color: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (R row-major, t m)
        self.device_name = ""
        self.timestamp_domain = ""
        # A recording read slower than it was made (a busy CPU) would otherwise stamp frames up to a
        # second behind their arrival; two frame periods of skew re-anchor it, as a live camera never lags.
        self.stamps = StampMapper(2.0 / max(1, self.fps) if self.recording else 1.0)
        self.backoff = Backoff()
        self._pipe = self._align = self._playback = None
        self._pending = self._head = self._first_color = None
        self._last_key = None
        self._last_frame_at = 0.0
        self._depth_scale_mm = 1.0
        self._pacer: Pacer | None = None

    @property
    def name(self) -> str:
        """Returns what the source reads, for logs and diagnostics."""
        if self.recording:
            return f"recording {self.recording}"
        return f"RealSense {self.serial}" if self.serial else "the first RealSense device"

    # -- opening -------------------------------------------------------------------------------
    def _open(self):
        self._first_color = None   # the file may have changed since the last open
        pipe, profile = self._start()
        self._read_profiles(profile)
        self._pipe = pipe
        self._align = rs.align(rs.stream.color) if self.align_depth and self.depth_model else None
        self._pacer = Pacer() if self._playback and self.realtime else None
        self.stamps.reset()
        self._pending, self._last_key = None, None
        self._last_frame_at = time.monotonic()
        self.opens += 1
        if self.opens > 1:
            self.reconnects += 1

    def _start(self):
        """Returns a started pipeline and its profile; sets `_playback`, and for a recording puts
        its first frameset in `_head`."""
        if not self.recording:
            found = {d.get_info(rs.camera_info.serial_number): d.get_info(rs.camera_info.name)
                     for d in rs.context().query_devices()}
            if not found or (self.serial and self.serial not in found):
                raise SourceError(f"{self.name} is not connected (connected: {found or 'none'})")
            cfg = rs.config()
            if self.serial:
                cfg.enable_device(self.serial)
            cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
            if self.want_depth:
                cfg.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
            pipe, profile, self._playback = self._start_pipeline(cfg)
            return pipe, profile
        # pipeline.start() starts the recording's sensors one after another, and the first start
        # already sets the playback reading; frames of a sensor not started yet are dropped, so a
        # busy CPU between the two starts loses the first color frames (and the pipeline's own
        # repeat restarts a looping file the same way). librealsense has no safe way to hold the
        # playback until every sensor runs (resume() waits for the reading thread, which can be
        # waiting for this thread to take a frame), so a start that lost frames is started again:
        # the color stream played alone loses nothing and tells which color frame comes first.
        if not self.recording.is_file():
            raise SourceError(f"recording {self.recording} not found")
        if self._first_color is None:
            self._first_color = first_color_key(self.recording, self._probe_first_color)
        for _ in range(START_TRIES):
            pipe, profile, self._playback = self._start_pipeline(self._file_config())
            head = self._first_frameset(pipe)
            if head is not None and self._color_key(head) == self._first_color:
                self._head = head
                return pipe, profile
            pipe.stop()
        raise SourceError(f"{self.name} lost its first frames in {START_TRIES} starts (a busy CPU?)")

    def _probe_first_color(self) -> tuple[int, float]:
        """Returns the key of the recording's first color frame, from the color stream played alone."""
        pipe, _, playback = self._start_pipeline(self._file_config(rs.stream.color))
        try:
            head = self._first_frameset(pipe)
            # Played to its end before it is stopped: stopping a non-real-time playback while its
            # reading thread waits for room in the pipeline's queue aborted the process under load.
            last = time.monotonic()
            while head is not None and playback.current_status() != rs.playback_status.stopped:
                ok, _ = pipe.try_wait_for_frames(int(PLAYBACK_SLICE_S * 1000))
                if ok:
                    last = time.monotonic()
                elif time.monotonic() - last > self.frame_timeout:
                    break
        except RuntimeError as exc:
            raise SourceError(f"cannot play {self.name}: {exc}") from None
        finally:
            pipe.stop()
        if head is None:
            raise SourceError(f"{self.name} has no color frames")
        return self._color_key(head)

    def _file_config(self, *streams):
        if not self.recording.is_file():
            raise SourceError(f"recording {self.recording} not found")
        cfg = rs.config()
        # The source replays the file itself (_replay), checking each pass's first frame.
        cfg.enable_device_from_file(str(self.recording), repeat_playback=False)
        for stream in streams:
            cfg.enable_stream(stream)
        return cfg

    def _start_pipeline(self, cfg):
        """Returns a started pipeline, its profile and its playback device (None for a camera)."""
        pipe = rs.pipeline()
        try:
            # Resolve first: for a recording this is the playback device the pipeline will use, and
            # real-time mode must be set before start() or a short file plays out at once.
            profile = cfg.resolve(rs.pipeline_wrapper(pipe))
            device = profile.get_device()
            playback = device.as_playback() if device.is_playback() else None
            if playback:
                playback.set_real_time(False)
            profile = pipe.start(cfg)
        except RuntimeError as exc:
            raise SourceError(f"cannot start {self.name}: {exc}") from None
        return pipe, profile, playback

    def _first_frameset(self, pipe):
        """Returns the first frameset of a started recording (None if none comes in frame_timeout)."""
        deadline = time.monotonic() + self.frame_timeout
        while time.monotonic() < deadline:
            try:
                ok, frameset = pipe.try_wait_for_frames(int(self.frame_timeout * 1000))
            except RuntimeError:
                return None
            if ok and frameset.get_color_frame():
                return frameset
        return None

    @staticmethod
    def _color_key(frameset) -> tuple[int, float]:
        color = frameset.get_color_frame()
        return color.get_frame_number(), color.get_timestamp()

    def _replay(self):
        """Plays the recording again from its first frame, keeping the stamp and pacing schedules."""
        self._stop_pipe()
        self._pipe = self._playback = None
        try:
            self._pipe, _ = self._start()
        except SourceError as exc:
            self._failed(str(exc))
            return
        self._pending, self._last_key = None, None
        self._last_frame_at = time.monotonic()

    def _read_profiles(self, profile):
        streams = {s.stream_type(): s.as_video_stream_profile() for s in profile.get_streams()
                   if s.is_video_stream_profile()}
        if rs.stream.color not in streams:
            raise SourceError(f"{self.name} has no color stream (streams: {sorted(str(s) for s in streams)})")
        color = streams[rs.stream.color]
        if color.format() not in TO_RGB:
            raise SourceError(f"{self.name}: color format {color.format()} not supported; use rgb8/bgr8/yuyv")
        self.color_model = camera_model(color.get_intrinsics(), "color")
        depth = streams.get(rs.stream.depth) if self.want_depth else None
        self.depth_model = camera_model(depth.get_intrinsics(), "depth") if depth else None
        if depth:
            e = depth.get_extrinsics_to(color)
            self.depth_to_color = (tuple(e.rotation), tuple(e.translation))
            sensor = profile.get_device().first_depth_sensor()
            self._depth_scale_mm = sensor.get_depth_scale() * 1000.0
        self.device_name = profile.get_device().get_info(rs.camera_info.name)
        self._color_format = color.format()
        self._period_ms = 1000.0 / max(1, color.fps())

    # -- reading -------------------------------------------------------------------------------
    def read(self, timeout: float = 0.5) -> Frame | None:
        """Returns the next color frame with its aligned depth, or None when none came within
        `timeout` seconds (the source is then reconnecting or has ENDED; see `state`)."""
        if self.state == ENDED:
            time.sleep(timeout)
            return None
        if self._pipe is None:
            if not self._opened(timeout):
                return None
        if self._head is not None:     # the frameset a recording's start was checked with
            frameset, self._head = self._head, None
            return self._choose(frameset)
        try:
            ok, frameset, played = self._wait(timeout)
        except RuntimeError as exc:  # the device went away mid-stream
            self._failed(f"{self.name} stopped: {exc}")
            return None
        if not ok:
            return self._on_silence(played)
        return self._choose(frameset)

    def _wait(self, timeout: float):
        """Returns (ok, frameset, played): the next frameset within `timeout` s, and whether a
        recording has played to its end with nothing of it left to read."""
        if self._playback is None:
            return *self._pipe.try_wait_for_frames(int(timeout * 1000)), False
        # Non-real-time playback hands each frame to the pipeline's queue, waits until it is taken
        # before reading on, and stops only after the last one is queued: once it is stopped, the
        # queue holds all that is left. The wait is cut into slices so the end is seen when it
        # comes (a loop then replays at once) rather than after the whole timeout.
        deadline = time.monotonic() + timeout
        while True:
            played = self._playback.current_status() == rs.playback_status.stopped
            left = 0.0 if played else min(PLAYBACK_SLICE_S, max(0.0, deadline - time.monotonic()))
            ok, frameset = self._pipe.try_wait_for_frames(int(left * 1000))
            if ok or played or time.monotonic() >= deadline:
                return ok, frameset, played

    def _choose(self, frameset) -> Frame | None:
        """Returns a frame for a new color frame; the syncer may first pair it with the previous
        depth frame and then with its own, so a mismatched pair is held for one more frameset."""
        color = frameset.get_color_frame()
        if not color:
            return None
        key = (color.get_frame_number(), color.get_timestamp())
        if key == self._last_key:
            return None
        depth = frameset.get_depth_frame() if self.depth_model else None
        matched = not depth or abs(depth.get_timestamp() - color.get_timestamp()) <= 0.5 * self._period_ms
        held, self._pending = self._pending, None
        if not matched:
            self._pending = (key, frameset)
            if held is None or held[0] == key:
                return None
            frameset, key = held[1], held[0]   # an older unmatched frame: publish it as it is
        self._last_key = key
        return self._make_frame(frameset)

    def _on_silence(self, played: bool = False) -> Frame | None:
        if self._pending is not None:   # no better match is coming
            (self._last_key, frameset), self._pending = self._pending, None
            return self._make_frame(frameset)
        if played and self.loop:
            self._replay()
            return None
        if played:
            self.close()
            self.state, self.last_error = ENDED, f"{self.name} ended after {self.frames} frames (loop is off)"
            return None
        if time.monotonic() - self._last_frame_at > self.frame_timeout:
            self._failed(f"no frames from {self.name} for {self.frame_timeout:.1f} s")
        return None

    def _make_frame(self, frameset) -> Frame:
        if self._pacer:
            self._pacer.wait(frameset.get_color_frame().get_timestamp())
        keep = frameset
        if self._align is not None and self.align_wanted:
            keep = self._align.process(frameset)
        # with alignment on but unwanted, no one takes this frame's depth: it is not copied out
        take_depth = self.depth_model and (self._align is None or self.align_wanted)
        color, depth = keep.get_color_frame(), keep.get_depth_frame() if take_depth else None
        # Copied out of librealsense's frame pool (~0.2 ms at 640x480): a reader that keeps frames
        # would otherwise starve the pool and the pipeline would silently drop frames.
        rgb = np.asanyarray(color.get_data())
        code = TO_RGB[self._color_format]
        rgb = np.array(rgb) if code is None else cv2.cvtColor(rgb, code)
        depth_mm = np.array(np.asanyarray(depth.get_data())) if depth else None
        if depth_mm is not None and abs(self._depth_scale_mm - 1.0) > 1e-6:
            # The convention is millimetres; some models (D405) default to 0.1 mm units.
            depth_mm = np.clip(depth_mm * self._depth_scale_mm, 0, 65535).astype(np.uint16)
        domain = color.get_frame_timestamp_domain()
        self.timestamp_domain = str(domain).rsplit(".", 1)[-1]
        # A recording's global-time stamps are from when it was recorded: map them like a device clock.
        host = domain in HOST_CLOCK_DOMAINS and self._playback is None
        ts = color.get_timestamp()
        self.frames += 1
        self._last_frame_at = time.monotonic()
        self.state, self.last_error = STREAMING, ""
        self.backoff.reset()
        return Frame(rgb, self.stamps(ts, host), ts, color.get_frame_number(), depth_mm)

    def _stop_pipe(self):
        if self._pipe is not None:
            try:
                self._pipe.stop()
            except RuntimeError:
                pass

    def close(self):
        self._stop_pipe()
        self._pipe = self._align = self._playback = self._pending = self._head = None

