"""A RealSense recording (.db3) made from bundled photographs through pyrealsense2's software
device and recorder, so the graph runs on "camera" data on machines without a camera.

Color: scikit-image's bundled photographs (astronaut, coffee, chelsea, rocket, the Middlebury
motorcycle) plus any people photographs in muon_ad_ros/data/, each shown as a slow pan/zoom.
Depth: the motorcycle's is real (Middlebury ground-truth disparity, converted with its
calibration); every other depth is SYNTHETIC: a smooth per-photo layout (a ground plane receding
towards the top and a nearer subject; in the people photos each person of data/people.json at the
distance their box height implies) so depth-driven level of detail has near and far content.
Depth is rendered as the depth camera sees it (its own intrinsics, 15 mm to the side of the color
camera), so rs.align has real work to do."""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CACHE_DIR = Path(os.environ.get("MUON_AD_ROS_CACHE", Path.home() / ".cache" / "muon_ad_ros")) / "recordings"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FORMAT_VERSION = 1           # bump when the rendering changes, so cached recordings are rebuilt
DEPTH_TO_COLOR_M = (0.015, 0.0, 0.0)   # a D435's color imager sits ~15 mm beside the depth origin
COMPRESS = True             # the recorder's LZ4: ~0.6 instead of 1.5 MiB per 640x480 frame
FRAMES_PER_PHOTO = 40       # 1.3 s per photograph at 30 fps
START_MS = 1000.0            # hardware clock of the first frame; device clocks start anywhere


@dataclass
class Scene:
    """A photograph and its depth layout (metres, same size; 0 = no data)."""

    name: str
    rgb: np.ndarray
    depth_m: np.ndarray


def layout_depth(shape: tuple[int, int], subject: tuple[float, float, float, float, float],
                 near: float = 1.5, far: float = 6.0) -> np.ndarray:
    """Returns a smooth synthetic depth map (metres): a ground plane from `far` at the top to `near`
    at the bottom, and a subject (cx, cy, sx, sy as image fractions, its distance in m) blended in."""
    h, w = shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = u / w, v / h
    plane = far + (near - far) * v
    cx, cy, sx, sy, dist = subject
    weight = np.exp(-0.5 * (((u - cx) / sx) ** 2 + ((v - cy) / sy) ** 2))
    return (plane + (dist - plane) * weight).astype(np.float32)


# Subject (cx, cy, sx, sy, distance m) of each bundled photograph, placed by looking at them.
SUBJECTS = {
    "astronaut": (0.45, 0.45, 0.22, 0.35, 1.2),
    "coffee": (0.45, 0.45, 0.25, 0.25, 0.5),
    "chelsea": (0.45, 0.55, 0.25, 0.3, 0.8),
    "rocket": (0.5, 0.45, 0.12, 0.4, 4.0),
}
PERSON_SUBJECT = (0.5, 0.5, 0.2, 0.35, 1.8)


def motorcycle_scene() -> Scene:
    """Returns the Middlebury motorcycle with real depth from its ground-truth disparity."""
    from skimage import data
    left, _, disp = data.stereo_motorcycle()
    # Calibration of skimage's 4x down-sampled copy (skimage.data.stereo_motorcycle docstring).
    f_px, baseline_m, doffs_px = 994.978, 0.193001, 31.086
    with np.errstate(invalid="ignore", divide="ignore"):
        depth = f_px * baseline_m / (disp + doffs_px)
    return Scene("motorcycle", left, np.where(np.isfinite(depth), depth, 0.0).astype(np.float32))


def bundled_scenes(data_dir: Path | None = DATA_DIR) -> list[Scene]:
    """Returns the photographs of the recording: skimage's bundled ones, then people photos in data_dir."""
    from skimage import data
    scenes = [Scene(n, getattr(data, n)(), np.empty(0)) for n in SUBJECTS]
    for s in scenes:
        s.depth_m = layout_depth(s.rgb.shape[:2], SUBJECTS[s.name])
    scenes.append(motorcycle_scene())
    boxes = people_boxes(data_dir)
    for path in people_photos(data_dir):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot decode photograph {path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        scenes.append(Scene(path.stem, rgb, people_depth(rgb.shape[:2], boxes.get(path.name, []))))
    return scenes


def people_boxes(data_dir: Path | None) -> dict[str, list[list[float]]]:
    """Returns photo name -> person boxes [x0, y0, x1, y1] from data_dir/people.json (the detection
    helper's hand-drawn boxes, whole and partial people), or {} without that file."""
    path = Path(data_dir) / "people.json" if data_dir else None
    if path is None or not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    return {name: list(v.get("people", [])) + list(v.get("partial", []))
            for name, v in doc.items() if isinstance(v, dict)}


def people_depth(shape: tuple[int, int], boxes: list[list[float]], height_m: float = 1.7) -> np.ndarray:
    """Returns a synthetic depth map (m) of a street photo: a ground plane, and each person at the
    distance a pinhole with the color camera's focal length (0.96 x width) gives their box height."""
    h, w = shape
    if not boxes:
        return layout_depth(shape, PERSON_SUBJECT)
    depth = layout_depth(shape, (0.5, 0.5, 1e-3, 1e-3, 8.0), near=3.0, far=12.0)
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    for x0, y0, x1, y1 in boxes:
        dist = float(np.clip(0.96 * w * height_m / max(1.0, y1 - y0), 0.6, 10.0))
        cx, cy, sx, sy = (x0 + x1) / 2, (y0 + y1) / 2, max(2.0, (x1 - x0) / 2), max(2.0, (y1 - y0) / 2)
        weight = np.exp(-0.5 * (((u - cx) / sx) ** 4 + ((v - cy) / sy) ** 4))  # flat-topped blob
        depth = np.minimum(depth, depth + (dist - depth) * weight)
    return depth.astype(np.float32)


def people_photos(data_dir: Path | None = DATA_DIR) -> list[Path]:
    """Returns the photographs the detection helper ships in data_dir (and its people/ folder), sorted."""
    if data_dir is None:
        return []
    found = []
    for folder in (Path(data_dir), Path(data_dir) / "people"):
        if folder.is_dir():
            found += [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(found)


@dataclass(frozen=True)
class Rig:
    """Intrinsics (pixels) of a D435-like color and depth camera pair at one resolution."""

    width: int
    height: int

    @property
    def color(self) -> tuple[float, float, float, float]:
        """Returns color (fx, fy, cx, cy): ~69 degrees horizontal field of view like a D435's RGB imager."""
        f = 0.96 * self.width
        return f, f, (self.width - 1) / 2, (self.height - 1) / 2

    @property
    def depth(self) -> tuple[float, float, float, float]:
        """Returns depth (fx, fy, cx, cy): ~87 degrees horizontal field of view like a D435's stereo pair."""
        f = 0.6 * self.width
        return f, f, (self.width - 1) / 2 + 0.5, (self.height - 1) / 2 - 0.5


def pan_zoom(photo_hw: tuple[int, int], width: int, height: int, t: float, seed: int) -> np.ndarray:
    """Returns the 2x3 affine from photo pixels to output pixels at time t in [0, 1] of a slow
    pan/zoom ("Ken Burns") over the photograph; `seed` picks its direction."""
    ph, pw = photo_hw
    rng = np.random.default_rng(seed)
    zoom0, zoom1 = (1.0, 0.8) if rng.random() < 0.5 else (0.8, 1.0)
    ease = 0.5 - 0.5 * np.cos(np.pi * t)
    zoom = zoom0 + (zoom1 - zoom0) * ease
    # The largest crop with the output's aspect ratio, shrunk by zoom; its centre drifts between
    # two points that keep the crop inside the photo.
    cw = min(pw, ph * width / height) * zoom
    ch = cw * height / width
    a, b = rng.random(2), rng.random(2)
    fx, fy = a + (b - a) * ease
    cx = cw / 2 + fx * (pw - cw)
    cy = ch / 2 + fy * (ph - ch)
    s = width / cw
    return np.array([[s, 0, width / 2 - s * cx], [0, s, height / 2 - s * cy]], np.float32)


def render(scene: Scene, affine: np.ndarray, rig: Rig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (color rgb8, depth in the color view (m), depth as the depth camera sees it (uint16 mm))."""
    w, h = rig.width, rig.height
    color = cv2.warpAffine(scene.rgb, affine, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # Depth uses nearest sampling: interpolating across an edge would invent points in mid-air.
    depth_color = cv2.warpAffine(scene.depth_m, affine, (w, h), flags=cv2.INTER_NEAREST,
                                 borderMode=cv2.BORDER_REFLECT)
    inv = cv2.invertAffineTransform(affine)
    fxd, fyd, cxd, cyd = rig.depth
    fxc, fyc, cxc, cyc = rig.color
    tx, ty, _ = DEPTH_TO_COLOR_M
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    rx, ry = (u - cxd) / fxd, (v - cyd) / fyd
    # Each depth pixel's ray hits the surface where its depth equals the color-view depth at the
    # point's projection into the color camera: a fixed point, reached in a few steps on smooth depth.
    z = np.full((h, w), float(np.median(scene.depth_m[scene.depth_m > 0])), np.float32)
    for _ in range(4):
        xc = fxc * (rx + tx / z) + cxc
        yc = fyc * (ry + ty / z) + cyc
        mx = inv[0, 0] * xc + inv[0, 1] * yc + inv[0, 2]
        my = inv[1, 0] * xc + inv[1, 1] * yc + inv[1, 2]
        found = cv2.remap(scene.depth_m, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
        z = np.where(found > 0, found, z)
    depth_mm = np.where(found > 0, np.clip(z * 1000.0, 0, 65535), 0).astype(np.uint16)
    return color, depth_color, depth_mm


def frame_plan(scenes: list[Scene], frames: int) -> list[tuple[int, float]]:
    """Returns (scene index, t in [0, 1]) for each frame: equal segments per photograph, cycled."""
    per = max(1, frames // len(scenes))
    return [((i // per) % len(scenes), (i % per) / max(1, per - 1)) for i in range(frames)]


def make_recording(path: str | Path, scenes: list[Scene] | None = None, width: int = 640, height: int = 480,
                   fps: int = 30, frames: int | None = None, paced: bool = False) -> Path:
    """Returns the path of a new .db3 RealSense recording (color rgb8 + depth z16) of the photographs.

    frames: total frames (default FRAMES_PER_PHOTO each). paced: inject at `fps` in wall time, so the
    file also plays at the right speed in librealsense's real-time playback (realsense-viewer,
    realsense-ros), which follows the recorder's arrival times; RealSenseSource paces by the
    frames' hardware timestamps and needs no pacing. Size: ~0.6 MiB per 640x480 frame."""
    from muon_ad_ros.camera.librealsense import rs
    path = Path(path)
    if path.suffix != ".db3":
        raise ValueError(f"recording path {path} must end in .db3 (pyrealsense2's recorder writes rosbag2 SQLite)")
    if width < 16 or height < 16 or fps <= 0:
        raise ValueError(f"recording size {width}x{height} @ {fps} fps is not usable")
    scenes = bundled_scenes() if scenes is None else scenes
    if not scenes:
        raise ValueError("no photographs to record")
    frames = FRAMES_PER_PHOTO * len(scenes) if frames is None else int(frames)
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    rig = Rig(width, height)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()

    dev = rs.software_device()
    dev.register_info(rs.camera_info.name, "muon_ad_ros synthetic D435 (photographs)")
    dev.register_info(rs.camera_info.serial_number, "000000000000")
    depth_sensor, color_sensor = dev.add_sensor("Stereo Module"), dev.add_sensor("RGB Camera")

    def stream(kind, uid, fmt, bpp, pinhole):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.fmt, vs.bpp = kind, 0, uid, fmt, bpp
        vs.width, vs.height, vs.fps = width, height, fps
        intr = rs.intrinsics()
        intr.width, intr.height = width, height
        intr.fx, intr.fy, intr.ppx, intr.ppy = pinhole
        intr.model, intr.coeffs = rs.distortion.brown_conrady, [0.0] * 5
        vs.intrinsics = intr
        return vs

    depth_profile = depth_sensor.add_video_stream(stream(rs.stream.depth, 0, rs.format.z16, 2, rig.depth), True)
    color_profile = color_sensor.add_video_stream(stream(rs.stream.color, 1, rs.format.rgb8, 3, rig.color), True)
    depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
    extr = rs.extrinsics()
    extr.rotation, extr.translation = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], list(DEPTH_TO_COLOR_M)
    depth_profile.register_extrinsics_to(color_profile, extr)

    recorder = rs.recorder(str(path), dev, COMPRESS)
    depth_sensor.open(depth_profile)
    color_sensor.open(color_profile)
    depth_sensor.start(lambda f: None)
    color_sensor.start(lambda f: None)

    def inject(sensor, profile, pixels, bpp, number, ts):
        f = rs.software_video_frame()
        f.pixels, f.bpp, f.stride = pixels, bpp, pixels.shape[1] * bpp
        f.timestamp, f.domain, f.frame_number = ts, rs.timestamp_domain.hardware_clock, number
        f.profile = profile.as_video_stream_profile()
        if bpp == 2:
            f.depth_units = 0.001
        sensor.on_video_frame(f)

    t0 = time.monotonic()
    for n, (k, t) in enumerate(frame_plan(scenes, frames)):
        scene = scenes[k]
        affine = pan_zoom(scene.rgb.shape[:2], width, height, t, seed=k)
        color, _, depth_mm = render(scene, affine, rig)
        if paced:
            time.sleep(max(0.0, t0 + n / fps - time.monotonic()))
        ts = START_MS + n * 1000.0 / fps
        inject(depth_sensor, depth_profile, depth_mm, 2, n, ts)
        inject(color_sensor, color_profile, color, 3, n, ts)
    for s in (depth_sensor, color_sensor):
        s.stop()
        s.close()
    # The recorder writes and closes the file when it and the device it wraps are destroyed.
    del recorder, depth_sensor, color_sensor, depth_profile, color_profile, dev
    gc.collect()
    return path


def cache_key(width: int, height: int, fps: int, frames: int | None, data_dir: Path | None = DATA_DIR) -> str:
    """Returns a short hash of everything the recording's content depends on."""
    h = hashlib.sha256(f"{FORMAT_VERSION} {width} {height} {fps} {frames}".encode())
    for p in people_photos(data_dir) + ([Path(data_dir) / "people.json"] if data_dir else []):
        if p.is_file():
            h.update(f"{p.name} {p.stat().st_size}".encode())
    return h.hexdigest()[:12]


def cached_recording(width: int = 640, height: int = 480, fps: int = 30, frames: int | None = None,
                     cache_dir: Path = CACHE_DIR, data_dir: Path | None = DATA_DIR) -> Path:
    """Returns the path of the demo recording, made on first use and reused while its inputs are unchanged."""
    path = Path(cache_dir) / f"photos_{width}x{height}_{fps}fps_{cache_key(width, height, fps, frames, data_dir)}.db3"
    if path.is_file() and path.stat().st_size > 0:
        return path
    # Write under a temporary name and rename, so an interrupted run never leaves a truncated cache.
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.db3")
    make_recording(tmp, bundled_scenes(data_dir), width, height, fps, frames)
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    """`muon-ad make-recording`: writes a RealSense recording of the bundled photographs."""
    ap = argparse.ArgumentParser(prog="muon-ad make-recording", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="output .db3 path (default: the demo's cached recording, made once and reused)")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--frames", type=int, default=None,
                    help=f"total frames (default {FRAMES_PER_PHOTO} per photograph)")
    ap.add_argument("--no-people", action="store_true", help="leave out the photographs in muon_ad_ros/data/")
    ap.add_argument("--paced", action="store_true", help="inject at fps in wall time, for librealsense's "
                    "real-time playback (realsense-viewer, realsense-ros); slower to make")
    args = ap.parse_args(argv)
    data_dir = None if args.no_people else DATA_DIR
    t0 = time.monotonic()
    try:
        if args.out is None:
            path = cached_recording(args.width, args.height, args.fps, args.frames, data_dir=data_dir)
        else:
            scenes = bundled_scenes(data_dir)
            path = make_recording(args.out, scenes, args.width, args.height, args.fps, args.frames,
                                  paced=args.paced)
    except (ValueError, OSError) as exc:
        print(f"make-recording: {exc}")
        return 2
    print(f"{path} ({path.stat().st_size / 2**20:.1f} MiB, {time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
